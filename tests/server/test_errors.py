"""Bad input and overload answered with a clear 4xx/5xx JSON error, against a real server."""

from __future__ import annotations

import base64
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.server.conftest import API_KEY, MAX_INPUTS, MAX_LENGTH

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def post(server, path: str, body=None, content: bytes | None = None, headers=None):
    headers = AUTH if headers is None else headers
    return httpx.post(
        f"{server.url}{path}", json=body, content=content, headers=headers, timeout=30
    )


def assert_error(answer: httpx.Response, status: int, error_type: str, *words: str) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error_type"] == error_type
    for word in words:
        assert word in body["error"], body["error"]


def metric(server, name: str, **labels) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


@pytest.mark.parametrize(
    "body, content, status, words",
    [
        (None, b'{"inputs": "unclosed', 400, ["not valid JSON"]),
        (None, b'["a list"]', 422, ["must be a JSON object"]),
        ({"text": "no inputs"}, None, 422, ["no 'inputs' field"]),
        ({"inputs": 5}, None, 422, ["inputs must be a string or a list of strings"]),
        ({"inputs": ["ok", 3]}, None, 422, ["inputs[1] must be a string"]),
        ({"inputs": "ok", "normalize": "yes"}, None, 422, ["normalize must be true or false"]),
        ({"inputs": "ok", "truncation_direction": "up"}, None, 422, ["truncation_direction"]),
        ({"inputs": ["a"] * (MAX_INPUTS + 1)}, None, 413, ["batch size 9 > maximum allowed"]),
        ({"inputs": "word " * 300}, None, 413, ["at most 256 tokens, given 302", "truncate"]),
    ],
)
def test_embed_rejects_bad_requests(servers, body, content, status, words):
    answer = post(servers["embed"], "/embed", body, content)
    assert_error(answer, status, "validation", *words)


def test_a_body_over_the_payload_limit_is_413(servers):
    answer = post(servers["tight"], "/predict", content=b" " * 5000)
    assert_error(answer, 413, "validation", "more than the limit of 4096")


def test_empty_batch_is_400(servers):
    assert_error(post(servers["embed"], "/embed", {"inputs": []}), 400, "empty", "cannot be empty")


def test_api_key_is_required_except_for_health_and_metrics(servers):
    server = servers["embed"]
    missing = post(server, "/embed", {"inputs": "hi"}, headers={})
    assert_error(missing, 401, "unauthorized", "no Authorization header")
    wrong = post(server, "/embed", {"inputs": "hi"}, headers={"Authorization": "Bearer nope"})
    assert_error(wrong, 401, "unauthorized", "wrong API key")
    assert_error(httpx.get(f"{server.url}/info"), 401, "unauthorized")
    assert httpx.get(f"{server.url}/health").status_code == 200
    assert httpx.get(f"{server.url}/metrics").status_code == 200


def test_openai_errors_have_openai_shape(servers):
    answer = post(servers["embed"], "/v1/embeddings", {"input": "x", "encoding_format": "hex"})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["type"] == "validation" and "encoding_format must be one of" in error["message"]


def test_routes_the_model_cannot_serve_are_424(servers):
    assert_error(post(servers["classify"], "/embed", {"inputs": "x"}), 424, "backend", "feature")
    body = {"query": "q", "texts": ["a"]}
    assert_error(post(servers["classify"], "/rerank", body), 424, "backend", "re-ranker")


def test_classifier_input_limits(servers):
    server = servers["classify"]
    long = "movie " * 40
    answer = post(server, "/predict", {"inputs": [["ok"], [long]]})
    assert_error(answer, 413, "validation", f"inputs[1] must have at most {MAX_LENGTH} tokens")
    assert post(server, "/predict", {"inputs": long, "truncate": True}).status_code == 200
    answer = post(server, "/predict", {"inputs": ["a", "b", "c"]})
    assert_error(answer, 422, "validation", "one text or one pair")
    answer = post(server, "/rerank", {"query": "q", "texts": "not a list"})
    assert answer.status_code == 424  # a 3-label model is refused before the body is read


def test_pipeline_parameters_are_checked(servers):
    server = servers["classify"]
    answer = post(server, "/pipeline", {"inputs": "ok", "parameters": {"top_k": -1}})
    assert_error(answer, 422, "validation", "top_k must be a positive int")
    answer = post(server, "/pipeline", {"inputs": "ok", "parameters": {"batch_size": 4}})
    assert_error(answer, 422, "validation", "batch_size")
    answer = post(server, "/pipeline", {"inputs": "ok", "parameters": [1]})
    assert_error(answer, 422, "validation", "parameters must be an object")
    answer = post(server, "/pipeline", {"inputs": ["ok", {"text": 5}]})
    assert_error(answer, 422, "validation", "input 1", "must be strings")


def test_media_inputs_are_only_base64_or_allowed_files(servers, tmp_path):
    server = servers["image"]
    answer = post(server, "/pipeline", {"inputs": "https://example.com/cat.png"})
    assert_error(answer, 422, "validation", "does not fetch URLs")
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"not even an image")
    answer = post(server, "/pipeline", {"inputs": f"file://{outside}"})
    assert_error(answer, 403, "forbidden", "outside the allowed directories")
    answer = post(server, "/pipeline", {"inputs": "%%% not base64"})
    assert_error(answer, 422, "validation", "not base64")
    not_image = base64.b64encode(b"plain text").decode()
    assert_error(
        post(server, "/pipeline", {"inputs": not_image}), 422, "validation", "not an image"
    )


def wait_for_empty_queue(server) -> None:
    for _ in range(100):
        if metric(server, "pipejit_queue_depth") == 0:
            return
        time.sleep(0.05)
    raise AssertionError("the queue did not empty")


def test_full_queue_is_503_with_retry_after(servers):
    server = servers["tight"]  # one queue slot, a 400 ms batching window
    wait_for_empty_queue(server)
    answer = post(server, "/predict", {"inputs": [["first"], ["second"]]})
    assert_error(answer, 503, "overloaded", "queue is full")
    assert answer.headers["Retry-After"] == "1"
    assert metric(server, "pipejit_requests_rejected_total") >= 1


def test_missed_deadline_is_504(servers):
    server = servers["tight"]  # a lone input waits 400 ms for company; its deadline is 100 ms
    wait_for_empty_queue(server)
    answer = post(server, "/predict", {"inputs": "too late"})
    assert_error(answer, 504, "timeout", "deadline")


def test_a_client_that_disconnects_has_its_queued_input_cancelled(servers):
    server = servers["tight"]
    wait_for_empty_queue(server)
    before = metric(server, "pipejit_requests_cancelled_total")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/predict", json={"inputs": "gone"}, timeout=0.05)
    for _ in range(100):  # the batch window closes 400 ms after the submit
        if metric(server, "pipejit_requests_cancelled_total") > before:
            break
        time.sleep(0.05)
    assert metric(server, "pipejit_requests_cancelled_total") == before + 1
    assert metric(server, "pipejit_http_errors_total", error_type="client_closed") >= 1
