"""Every route of a real ``pipejit serve`` process, compared with the in-process pipeline."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest

from tests.models import sentences
from tests.server.conftest import API_KEY
from tests.vision_models import images

AUTH = {"Authorization": f"Bearer {API_KEY}"}
TEXTS = sentences(6, seed=3, max_words=10)


def post(server, path: str, body, headers=None) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=30)


def embedding(pipe, text: str, normalize: bool = True, **params) -> np.ndarray:
    return np.asarray(pipe(text, pooling="mean", normalize=normalize, **params)[0])


def test_embed_pools_as_the_sentence_transformers_config_says(servers, local):
    answer = post(servers["embed"], "/embed", {"inputs": TEXTS}, AUTH)
    assert answer.status_code == 200, answer.text
    vectors = np.asarray(answer.json())
    assert vectors.shape == (len(TEXTS), 384)
    expected = np.stack([embedding(local["embed"], t) for t in TEXTS])
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_embed_one_string_and_normalize_false(servers, local):
    answer = post(servers["embed"], "/embed", {"inputs": TEXTS[0], "normalize": False}, AUTH)
    (vector,) = answer.json()
    expected = embedding(local["embed"], TEXTS[0], normalize=False)
    np.testing.assert_allclose(vector, expected, atol=1e-5)
    assert abs(np.linalg.norm(vector) - 1) > 1e-3


def test_embed_truncates_right_and_left(servers, local):
    pipe = local["embed"]
    text = "start " + "word " * 300 + "end"  # 303 tokens, MiniLM takes 256
    right = post(servers["embed"], "/embed", {"inputs": text, "truncate": True}, AUTH).json()[0]
    cut = {"truncation": True, "max_length": 256}
    np.testing.assert_allclose(right, embedding(pipe, text, tokenize_kwargs=cut), atol=1e-5)
    body = {"inputs": text, "truncate": True, "truncation_direction": "left"}
    left = post(servers["embed"], "/embed", body, AUTH).json()[0]
    # the last 254 words fit beside [CLS] and [SEP]
    np.testing.assert_allclose(left, embedding(pipe, "word " * 253 + "end"), atol=1e-5)


def test_openai_embeddings_float_and_base64_with_usage(servers, local):
    pipe = local["embed"]
    body = {"input": TEXTS[:3], "model": "minilm"}
    answer = post(servers["embed"], "/v1/embeddings", body, AUTH).json()
    assert answer["object"] == "list" and answer["model"] == "minilm"
    assert [d["index"] for d in answer["data"]] == [0, 1, 2]
    tokens = sum(len(pipe.tokenizer(t)["input_ids"]) for t in TEXTS[:3])
    assert answer["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    for item, text in zip(answer["data"], TEXTS):
        np.testing.assert_allclose(item["embedding"], embedding(pipe, text), atol=1e-5)
    body = {"input": TEXTS[0], "encoding_format": "base64"}
    encoded = post(servers["embed"], "/v1/embeddings", body, AUTH).json()["data"][0]["embedding"]
    decoded = np.frombuffer(base64.b64decode(encoded), dtype="<f4")
    np.testing.assert_allclose(decoded, embedding(pipe, TEXTS[0]), atol=1e-5)


def assert_ranked(actual: list[dict], expected: list[dict]) -> None:
    assert [a["label"] for a in actual] == [e["label"] for e in expected]
    np.testing.assert_allclose(
        [a["score"] for a in actual], [e["score"] for e in expected], atol=1e-5
    )


def test_predict_single_pair_batch_and_raw_scores(servers, local):
    pipe, server = local["classify"], servers["classify"]
    assert_ranked(post(server, "/predict", {"inputs": TEXTS[0]}).json(), pipe(TEXTS[0], top_k=None))
    pair = {"text": TEXTS[1], "text_pair": TEXTS[2]}
    answer = post(server, "/predict", {"inputs": [TEXTS[1], TEXTS[2]]}).json()
    assert_ranked(answer, pipe(pair, top_k=None))
    batch = post(server, "/predict", {"inputs": [[t] for t in TEXTS], "raw_scores": True}).json()
    assert len(batch) == len(TEXTS)
    for answer, text in zip(batch, TEXTS):
        assert_ranked(answer, pipe(text, top_k=None, function_to_apply="none"))


def test_rerank_scores_pairs_best_first(servers, local):
    pipe = local["rerank"]
    query, texts = "good food", TEXTS[:5]
    body = {"query": query, "texts": texts, "return_text": True}
    ranks = post(servers["rerank"], "/rerank", body).json()
    scores = [pipe({"text": query, "text_pair": t}, top_k=None)[0]["score"] for t in texts]
    assert [r["index"] for r in ranks] == sorted(range(5), key=lambda i: -scores[i])
    for rank in ranks:
        assert rank["text"] == texts[rank["index"]]
        assert rank["score"] == pytest.approx(scores[rank["index"]], abs=1e-5)
    raw = post(servers["rerank"], "/rerank", {"query": query, "texts": texts, "raw_scores": True})
    logits = [
        pipe({"text": query, "text_pair": t}, top_k=None, function_to_apply="none")[0]["score"]
        for t in texts
    ]
    assert {r["index"]: r["score"] for r in raw.json()} == pytest.approx(
        dict(enumerate(logits)), abs=1e-5
    )
    assert "text" not in raw.json()[0]


def test_pipeline_route_with_parameters(servers, local):
    pipe, server = local["classify"], servers["classify"]
    answer = post(server, "/pipeline", {"inputs": TEXTS[0], "parameters": {"top_k": 2}}).json()
    assert_ranked(answer, pipe(TEXTS[0], top_k=2))
    answer = post(server, "/pipeline", {"inputs": TEXTS[:3]}).json()
    for got, text in zip(answer, TEXTS):
        assert_ranked(got, pipe(text))


def png_base64(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_pipeline_route_images_as_base64_and_allowed_files(servers, local, media_dir):
    pipe, server = local["image"], servers["image"]
    first, second = images(2, seed=5)
    path = media_dir / "second.png"
    second.save(path)
    body = {"inputs": [png_base64(first), f"file://{path}"], "parameters": {"top_k": 3}}
    answer = post(server, "/pipeline", body)
    assert answer.status_code == 200, answer.text
    for got, image in zip(answer.json(), (first, second)):
        assert_ranked(got, pipe(image, top_k=3))
    data_uri = "data:image/png;base64," + png_base64(first)
    assert_ranked(post(server, "/pipeline", {"inputs": data_uri}).json(), pipe(first))


def test_health_info_and_metrics(servers):
    server = servers["embed"]
    assert httpx.get(f"{server.url}/health").status_code == 200
    info = httpx.get(f"{server.url}/info", headers=AUTH).json()
    assert info["task"] == "feature-extraction" and info["pooling"] == "mean"
    assert info["max_input_length"] == 256 and info["model_dtype"] == "float32"
    assert info["device"] == "cpu" and info["max_client_batch_size"] == 8
    assert info["version"]
