"""Under load: 2,000 requests from 64 connections with bad ones mixed in, none lost or
mismatched; SIGTERM under load answers every accepted request; /metrics parses."""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from tests.models import sentences
from tests.server.harness import START_TIMEOUT_S, launch

REQUESTS = 2000
CONNECTIONS = 64
TEXTS = sentences(200, seed=11, max_words=12)


def expected_answers(pipe) -> dict[str, list]:
    outputs = pipe(TEXTS, top_k=None)
    return dict(zip(TEXTS, outputs))


def make_requests(seed: int) -> list[tuple[str, str, bytes, object]]:
    """(kind, path, body, text) in a random mix: mostly good, about one in five bad."""
    rng = random.Random(seed)
    out = []
    for _ in range(REQUESTS):
        text = rng.choice(TEXTS)
        roll = rng.random()
        if roll < 0.6:
            out.append(("good", "/predict", json.dumps({"inputs": text}).encode(), text))
        elif roll < 0.8:
            body = {"inputs": text, "parameters": {"top_k": None}}
            out.append(("good", "/pipeline", json.dumps(body).encode(), text))
        elif roll < 0.87:
            # fails in the micro-batcher's worker, in a batch with good inputs
            body = {"inputs": {"text": text, "text_pair": 7}}
            out.append(("bad-item", "/pipeline", json.dumps(body).encode(), None))
        elif roll < 0.94:
            out.append(("bad-json", "/predict", b'{"inputs": ', None))
        else:
            body = {"inputs": [[text]] * 9}
            out.append(("too-many", "/predict", json.dumps(body).encode(), None))
    return out


EXPECTED_STATUS = {"good": 200, "bad-item": 422, "bad-json": 400, "too-many": 413}


async def fire(url: str, requests: list, connections: int, stop_after: float | None = None):
    """Send ``requests`` from ``connections`` concurrent clients; answers in request order."""
    answers: list = [None] * len(requests)
    cursor = iter(range(len(requests)))
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker() -> None:
            for index in cursor:
                _, path, body, _ = requests[index]
                try:
                    response = await client.post(
                        path, content=body, headers={"content-type": "application/json"}
                    )
                    answers[index] = (response.status_code, response.json())
                except httpx.TransportError as error:
                    answers[index] = error

        await asyncio.gather(*(worker() for _ in range(connections)))
    return answers


def completed_inputs(metrics: str) -> float:
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == "pipejit_requests_completed_total":
                return sample.value
    return 0.0


def assert_ranked(actual: list[dict], expected: list[dict]) -> None:
    assert [a["label"] for a in actual] == [e["label"] for e in expected]
    np.testing.assert_allclose(
        [a["score"] for a in actual], [e["score"] for e in expected], atol=1e-5
    )


def scrape(server) -> dict:
    text = httpx.get(f"{server.url}/metrics").text
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(families: dict, family: str, suffix: str, *labels: str) -> dict:
    return {
        tuple(s.labels[k] for k in labels): s.value
        for s in families[family].samples
        if s.name.endswith(suffix)
    }


def test_2000_requests_from_64_connections_with_bad_ones_mixed_in(servers, local):
    server = servers["classify"]
    expected = expected_answers(local["classify"])
    requests = make_requests(seed=1)
    before = scrape(server)
    answers = asyncio.run(fire(server.url, requests, CONNECTIONS))
    after = scrape(server)
    kinds = {}
    for (kind, _, _, text), answer in zip(requests, answers):
        assert not isinstance(answer, Exception), answer
        status, body = answer
        assert status == EXPECTED_STATUS[kind], (kind, body)
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind == "good":
            assert_ranked(body, expected[text])
        else:
            assert body["error_type"] == "validation"
    assert set(kinds) == set(EXPECTED_STATUS)

    def grew(family: str, suffix: str, *labels: str) -> dict:
        old = samples(before, family, suffix, *labels) if family in before else {}
        return {k: v - old.get(k, 0) for k, v in samples(after, family, suffix, *labels).items()}

    inputs = grew("pipejit_batch_size", "_sum")[()]
    batches = grew("pipejit_batch_size", "_count")[()]
    assert inputs == kinds["good"] + kinds["bad-item"]
    assert inputs / batches > 1.5, f"{inputs} inputs in {batches} batches: no sharing"
    latency = grew("pipejit_http_request_duration_seconds", "_count", "route", "status")
    assert latency[("/predict", "200")] + latency[("/pipeline", "200")] == kinds["good"]
    assert latency[("/pipeline", "422")] == kinds["bad-item"]
    assert latency[("/predict", "400")] == kinds["bad-json"]
    errors = grew("pipejit_http_errors", "_total", "route", "error_type")
    assert errors[("/pipeline", "validation")] == kinds["bad-item"]
    assert errors[("/predict", "validation")] == kinds["bad-json"] + kinds["too-many"]
    for name in ("pipejit_queue_depth", "pipejit_compiles", "pipejit_captures"):
        assert name in after, sorted(after)
    assert 0 <= samples(after, "pipejit_padding_ratio", "")[()] < 1


def test_sigterm_under_load_answers_every_accepted_request(model_folder, local, tmp_path):
    server = launch("text-classification", model_folder("text-classification"), tmp_path)
    server.wait_ready(START_TIMEOUT_S)
    expected = expected_answers(local["classify"])
    rng = random.Random(2)
    texts = [rng.choice(TEXTS) for _ in range(REQUESTS)]
    requests = [("good", "/predict", json.dumps({"inputs": t}).encode(), t) for t in texts]

    async def load_then_stop():
        load = asyncio.create_task(fire(server.url, requests, 32))
        async with httpx.AsyncClient(base_url=server.url) as client:
            for _ in range(600):  # SIGTERM once the load is well under way
                await asyncio.sleep(0.05)
                metrics = (await client.get("/metrics")).text
                if completed_inputs(metrics) >= 100:
                    break
        server.process.send_signal(signal.SIGTERM)
        return await load

    answers = asyncio.run(load_then_stop())
    # uvicorn re-raises the SIGTERM it handled once it has shut down gracefully
    assert server.process.wait(60) in (0, -signal.SIGTERM)
    answered = [(a, t) for a, t in zip(answers, texts) if not isinstance(a, Exception)]
    refused = [a for a in answers if isinstance(a, Exception)]
    assert answered and refused, "the SIGTERM should land mid-load"
    for (status, body), text in answered:
        assert status == 200, body
        assert_ranked(body, expected[text])
    log = server.text()
    completed = int(re.search(r"drained and stopped \(inputs completed (\d+)", log).group(1))
    # every input the server accepted was answered, and every answer reached its client
    assert completed == len(answered)
    assert "Finished server process" in log
