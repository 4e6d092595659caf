"""text-embeddings-inference's routes: ``/embed``, ``/predict`` and ``/rerank``.

Request and response shapes are TEI's: ``/embed`` answers one pooled vector per
input (pooled as the model's sentence-transformers config says, normalised unless
``normalize`` is false); ``/predict`` every label's score, best first, for a text, a
pair ``[text, text_pair]`` or a batch of them; ``/rerank`` the query scored against
each text by a one-label cross-encoder, best first.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from pipejit.server.errors import ApiError, invalid
from pipejit.server.fields import check_count, get_bool, get_choice, get_str, get_texts
from pipejit.server.service import Service
from pipejit.server.texts import DIRECTIONS


async def embed(service: Service, request: Request, body: dict[str, Any]) -> list[list[float]]:
    service.require_task("feature-extraction")
    texts, _ = get_texts(body, "inputs", service.limits.max_inputs_per_request)
    normalize = get_bool(body, "normalize", True)
    truncate = get_bool(body, "truncate", False)
    direction = get_choice(body, "truncation_direction", DIRECTIONS, "Right")
    vectors, _ = await embed_texts(service, request, texts, normalize, truncate, direction)
    return vectors


async def embed_texts(
    service: Service,
    request: Request,
    texts: list[str],
    normalize: bool,
    truncate: bool,
    direction: str = "Right",
    name: str = "inputs",
) -> tuple[list[list[float]], list[int]]:
    """Pooled vectors of ``texts`` and each text's token count."""
    texts, counts = service.texts.prepare(texts, truncate, direction, name)
    params: dict[str, Any] = {"pooling": service.pooling, "normalize": normalize}
    if truncate:
        params["tokenize_kwargs"] = service.texts.truncation_params()
    outputs = await service.run(request, texts, params)
    return [output[0] for output in outputs], counts


async def predict(service: Service, request: Request, body: dict[str, Any]) -> list:
    service.require_task("text-classification")
    sequences, single = _predict_inputs(body, service.limits.max_inputs_per_request)
    truncate = get_bool(body, "truncate", False)
    direction = get_choice(body, "truncation_direction", DIRECTIONS, "Right")
    raw_scores = get_bool(body, "raw_scores", False)
    items = []
    for index, sequence in enumerate(sequences):
        name = "inputs" if single else f"inputs[{index}]"
        if len(sequence) == 1:
            (text,), _ = service.texts.prepare(sequence, truncate, direction, name)
            items.append(text)
        else:
            service.texts.check_pairs(sequence[0], sequence[1:], truncate, name)
            items.append({"text": sequence[0], "text_pair": sequence[1]})
    outputs = await service.run(request, items, _classify_params(service, truncate, raw_scores))
    ranked = [[{"score": o["score"], "label": o["label"]} for o in output] for output in outputs]
    return ranked[0] if single else ranked


async def rerank(service: Service, request: Request, body: dict[str, Any]) -> list[dict]:
    service.require_task("text-classification")
    if service.pipe.model.config.num_labels != 1:
        raise ApiError(
            424,
            "model is not a re-ranker model: /rerank needs a cross-encoder with one output "
            f"label, this one has {service.pipe.model.config.num_labels}",
            "backend",
        )
    query = get_str(body, "query")
    if "texts" not in body:
        raise invalid("the request has no 'texts' field")
    texts = body["texts"]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise invalid("texts must be a list of strings")
    check_count("texts", len(texts), service.limits.max_inputs_per_request)
    truncate = get_bool(body, "truncate", False)
    get_choice(body, "truncation_direction", DIRECTIONS, "Right")
    raw_scores = get_bool(body, "raw_scores", False)
    return_text = get_bool(body, "return_text", False)
    service.texts.check_pairs(query, texts, truncate, "texts")
    items = [{"text": query, "text_pair": text} for text in texts]
    outputs = await service.run(request, items, _classify_params(service, truncate, raw_scores))
    ranks = []
    for index, (text, output) in enumerate(zip(texts, outputs)):
        rank = {"index": index, "score": output[0]["score"]}
        if return_text:
            rank["text"] = text
        ranks.append(rank)
    return sorted(ranks, key=lambda rank: -rank["score"])


def _classify_params(service: Service, truncate: bool, raw_scores: bool) -> dict[str, Any]:
    params: dict[str, Any] = {"top_k": None}
    if raw_scores:
        params["function_to_apply"] = "none"
    if truncate:
        params.update(service.texts.truncation_params())
    return params


def _predict_inputs(body: dict[str, Any], max_inputs: int) -> tuple[list[list[str]], bool]:
    """TEI's ``inputs`` for /predict: a string, a pair ``[a, b]`` (a list of strings is one
    sequence), or a batch of such lists. Returns (sequences, whether one was sent)."""
    if "inputs" not in body:
        raise invalid("the request has no 'inputs' field")
    value = body["inputs"]
    shape = "a string, a pair [text, text_pair], or a batch [[text], [text, text_pair], ...]"
    if isinstance(value, str):
        return [[value]], True
    if not isinstance(value, list):
        raise invalid(f"inputs must be {shape}")
    check_count("inputs", len(value), max_inputs)
    if all(isinstance(v, str) for v in value):
        if len(value) > 2:
            raise invalid(f"a list of strings is one text or one pair; inputs must be {shape}")
        return [value], True
    for index, sequence in enumerate(value):
        ok = isinstance(sequence, list) and len(sequence) in (1, 2)
        if not ok or not all(isinstance(s, str) for s in sequence):
            raise invalid(f"inputs[{index}] must be [text] or [text, text_pair]")
    return value, False
