"""OpenAI's ``POST /v1/embeddings``: ``input`` a string or a list, float or base64 vectors.

Vectors are pooled and normalised as ``/embed`` makes them; ``usage`` counts the
tokens each input ran with (special tokens included). Base64 is the little-endian
float32 bytes of each vector, as OpenAI's clients decode it.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from starlette.requests import Request

from pipejit.server.fields import get_choice, get_str, get_texts
from pipejit.server.routes_tei import embed_texts
from pipejit.server.service import Service

ENCODINGS = ("float", "base64")


async def embeddings(service: Service, request: Request, body: dict[str, Any]) -> dict[str, Any]:
    service.require_task("feature-extraction")
    texts, _ = get_texts(body, "input", service.limits.max_inputs_per_request)
    model = get_str(body, "model", None)
    get_str(body, "user", None)
    encoding = get_choice(body, "encoding_format", ENCODINGS, "float")
    vectors, counts = await embed_texts(
        service, request, texts, normalize=True, truncate=False, name="input"
    )
    data = [
        {"object": "embedding", "embedding": _encode(vector, encoding), "index": index}
        for index, vector in enumerate(vectors)
    ]
    tokens = sum(counts)
    return {
        "object": "list",
        "data": data,
        "model": model or service.model_id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "float":
        return vector
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
