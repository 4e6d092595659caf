"""The micro-batcher's promises: every caller its own answer, isolation, backpressure, drain."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
import pytest
import torch

import pipejit
from pipejit import MicroBatcher
from pipejit.engine.serve import QueueFullError, ServerClosedError
from tests.models import sentences
from tests.parity import assert_same

PARAMS = ({}, {"top_k": 2}, {"function_to_apply": "sigmoid"})
REQUESTS = [(text, PARAMS[i % 3]) for i, text in enumerate(sentences(1000, seed=8))]


@pytest.fixture(scope="module")
def pipe(model_folder):
    folder = str(model_folder("text-classification"))
    return pipejit.pipeline("text-classification", model=folder, compile=False)


@pytest.fixture(scope="module")
def direct(pipe):
    """Each request's answer from a direct one-input call."""
    return [pipe(text, **params) for text, params in REQUESTS]


@pytest.fixture
def forward_hook(pipe):
    """``forward_hook(fn)``: run ``fn(input_ids)`` before every model forward."""
    model = pipe.modules.runner("model").model
    original = model.forward

    def install(fn):
        def forward(**inputs):
            fn(inputs["input_ids"])
            return original(**inputs)

        model.forward = forward

    yield install
    model.forward = original


def token_id(pipe, word: str) -> int:
    return pipe.tokenizer.convert_tokens_to_ids(word)


def test_1000_requests_from_32_threads_each_get_their_own_answer(pipe, direct):
    with pipe.serve(max_wait_ms=2) as server:

        def call(index):
            text, params = REQUESTS[index]
            return server.submit(text, **params).result(timeout=60)

        with ThreadPoolExecutor(32) as callers:
            answers = list(callers.map(call, range(len(REQUESTS))))
        stats = server.stats()
    for index, (answer, expected) in enumerate(zip(answers, direct)):
        assert_same(answer, expected, path=f"request {index}")
    assert stats["submitted"] == stats["completed"] == len(REQUESTS)
    assert stats["failed"] == stats["timed_out"] == stats["queue_depth"] == 0
    assert sum(size * n for size, n in stats["batch_sizes"].items()) == len(REQUESTS)
    assert max(stats["batch_sizes"]) > 1, "concurrent requests were never batched together"
    assert stats["latency_ms"]["p50"] <= stats["latency_ms"]["p99"]


def test_1000_requests_from_200_asyncio_tasks(pipe, direct):
    async def main():
        with MicroBatcher(pipe, max_wait_ms=2) as server:

            async def caller(first):
                return [
                    (i, await server.asubmit(REQUESTS[i][0], **REQUESTS[i][1]))
                    for i in range(first, len(REQUESTS), 200)
                ]

            done = await asyncio.gather(*(caller(first) for first in range(200)))
            return dict(pair for answers in done for pair in answers), server.stats()

    answers, stats = asyncio.run(main())
    assert sorted(answers) == list(range(len(REQUESTS)))
    for index, expected in enumerate(direct):
        assert_same(answers[index], expected, path=f"request {index}")
    assert max(stats["batch_sizes"]) > 1


BAD = [
    (None, ValueError, "received None as input"),
    (7, ValueError, "takes a string or a text-pair dict, got int"),
    (b"bytes", ValueError, "got bytes"),
    ("word " * 5_000, ValueError, "more than the model's maximum of 128; pass truncation=True"),
    ([["nested", "list"]], ValueError, "received a list as one input"),
    (np.array([np.nan, 1.0]), ValueError, "got ndarray"),
    ({"txt": "wrong key"}, ValueError, "a text pair is a dict with the keys 'text'"),
]


def test_bad_inputs_fail_alone_among_good_ones(pipe):
    good = sentences(40, seed=3) + [""]  # an empty text is valid: transformers answers it
    items = []
    for index, text in enumerate(good):
        items.append(("good", text))
        if index < len(BAD):
            items.append(("bad", BAD[index]))
    with pipe.serve(max_wait_ms=50) as server:
        futures = [server.submit(item if kind == "good" else item[0]) for kind, item in items]
        wait(futures, timeout=60)
        stats = server.stats()
    for (kind, item), future in zip(items, futures):
        if kind == "good":
            assert_same(future.result(), pipe(item))
        else:
            _, error, message = item
            with pytest.raises(error, match=message.replace("(", r"\(")):
                future.result()
    assert stats["failed"] == len(BAD) and stats["completed"] == len(good)
    assert max(stats["batch_sizes"]) > len(BAD), "bad and good inputs never shared a batch"


@pytest.mark.parametrize(
    "error, message",
    [
        (RuntimeError("injected forward failure"), "injected"),
        # the engine's OOM backoff splits (the one retry policy), then names the item that
        # cannot fit alone; isolation fails that input without splitting again
        (torch.OutOfMemoryError("injected OOM"), "out of device memory running a single item"),
    ],
)
def test_forward_failure_fails_only_its_input_and_serving_goes_on(
    pipe, forward_hook, error, message
):
    poison = token_id(pipe, "hospital")

    def fail_on_poison(input_ids):
        if (input_ids == poison).any():
            raise type(error)(str(error))

    forward_hook(fail_on_poison)
    texts = [t for t in sentences(40, seed=5, max_words=6) if "hospital" not in t.lower()][:30]
    texts[4] = texts[17] = "the hospital was good"
    with pipe.serve(max_wait_ms=50) as server:
        futures = [server.submit(text) for text in texts]
        wait(futures, timeout=60)
        for index, (text, future) in enumerate(zip(texts, futures)):
            if index in (4, 17):
                with pytest.raises(type(error), match=message):
                    future.result()
            else:
                assert_same(future.result(), pipe(text))
        if isinstance(error, torch.OutOfMemoryError):
            assert server.stats()["splits"] == 0 and pipe.stats()["oom_splits"] > 0
        else:
            assert server.stats()["splits"] > 0
        # the worker survived: later requests are served
        later = [t for t in sentences(8, seed=6) if "hospital" not in t.lower()]
        for text in later:
            assert_same(server.submit(text).result(timeout=30), pipe(text))


def test_out_of_memory_on_large_batches_is_recovered_by_splitting(pipe, forward_hook):
    def small_batches_only(input_ids):
        if input_ids.shape[0] > 4:
            raise torch.OutOfMemoryError("injected: batch too large")

    forward_hook(small_batches_only)
    texts = sentences(24, seed=9)
    with pipe.serve(max_wait_ms=50) as server:
        futures = [server.submit(text) for text in texts]
        answers = [future.result(timeout=60) for future in futures]
    # the engine's own OOM backoff split the batches; no request failed
    assert pipe.stats()["oom_splits"] > 0 and server.stats()["failed"] == 0
    forward_hook(lambda ids: None)
    assert_same(answers, [pipe(text) for text in texts])


def test_postprocess_failure_fails_only_its_input(pipe, monkeypatch):
    postprocess = pipe.task.postprocess

    def fragile(item, *args):
        if item == "break me":
            raise KeyError("injected postprocess failure")
        return postprocess(item, *args)

    monkeypatch.setattr(pipe.task, "postprocess", fragile)
    texts = ["a good film", "break me", "a bad film"]
    with pipe.serve(max_wait_ms=50) as server:
        futures = [server.submit(text) for text in texts]
        with pytest.raises(KeyError, match="injected"):
            futures[1].result(timeout=30)
        monkeypatch.undo()
        assert_same(futures[0].result(), pipe(texts[0]))
        assert_same(futures[2].result(), pipe(texts[2]))


class Gate:
    """Holds every model forward until ``open()``; ``entered`` is set once one waits."""

    def __init__(self):
        self.opened = threading.Event()
        self.entered = threading.Event()

    def __call__(self, input_ids):
        self.entered.set()
        self.opened.wait(30)

    def open(self):
        self.opened.set()

    def close(self):
        self.opened.clear()
        self.entered.clear()


def test_an_engine_bug_fails_its_batch_and_serving_goes_on(pipe, monkeypatch):
    import pipejit.engine.serve as serve

    run_each = serve.run_each
    calls = []

    def buggy_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise AttributeError("injected engine bug")
        return run_each(*args, **kwargs)

    monkeypatch.setattr(serve, "run_each", buggy_once)
    with pipe.serve(max_wait_ms=50) as server:
        first = [server.submit(text) for text in ("one", "two")]
        for future in first:
            with pytest.raises(AttributeError, match="injected engine bug"):
                future.result(timeout=30)
        assert_same(server.submit("three").result(timeout=30), pipe("three"))


def test_a_stopped_worker_fails_every_request_and_says_why(pipe, monkeypatch):
    import pipejit.engine.serve as serve

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(serve, "run_each", interrupted)
    server = pipe.serve(max_wait_ms=50)
    futures = [server.submit(text) for text in ("one", "two", "three")]
    for future in futures:
        with pytest.raises(ServerClosedError, match="worker stopped: KeyboardInterrupt"):
            future.result(timeout=30)
    with pytest.raises(ServerClosedError, match="worker stopped on KeyboardInterrupt"):
        server.submit("four")
    server.close()


@pytest.fixture
def gate(forward_hook):
    gate = Gate()
    forward_hook(gate)
    yield gate
    gate.open()


def test_full_queue_raises_or_blocks_as_chosen(pipe, gate):
    with pipe.serve(max_queue=2, max_batch_size=1, max_wait_ms=0) as server:
        running = server.submit("first")
        assert gate.entered.wait(10)
        queued = [server.submit("second"), server.submit("third")]
        with pytest.raises(QueueFullError, match="queue is full \\(2 requests\\)"):
            server.submit("fourth")
        assert server.stats()["rejected"] == 1
        gate.open()
        assert [f.result(timeout=30) for f in [running, *queued]]
    with pipe.serve(max_queue=1, max_batch_size=1, on_full="block", block_timeout_s=1) as server:
        gate.close()
        running = server.submit("first")
        assert gate.entered.wait(10)
        queued = server.submit("second")
        start = time.monotonic()
        with pytest.raises(QueueFullError, match="after waiting 1 s"):
            server.submit("third")
        assert time.monotonic() - start >= 1
        # a blocked submit goes through as soon as the worker makes room
        threading.Timer(0.05, gate.open).start()
        late = server.submit("fourth")
        assert_same(late.result(timeout=30), pipe("fourth"))
        assert running.result() and queued.result()


def test_a_request_past_its_deadline_fails_with_a_timeout(pipe, gate):
    with pipe.serve(max_batch_size=1, max_wait_ms=0) as server:
        running = server.submit("first", deadline_s=5)
        assert gate.entered.wait(10)
        expired = server.submit("second", deadline_s=0.01)
        in_time = server.submit("third", deadline_s=30)
        time.sleep(0.05)
        gate.open()
        with pytest.raises(TimeoutError, match="deadline passed"):
            expired.result(timeout=30)
        assert_same(in_time.result(timeout=30), pipe("third"))
        assert running.result()
        assert server.stats()["timed_out"] == 1


def test_a_cancelled_request_never_runs(pipe, gate):
    with pipe.serve(max_batch_size=1, max_wait_ms=0) as server:
        running = server.submit("first")
        assert gate.entered.wait(10)
        cancelled = server.submit("second")
        kept = server.submit("third")
        assert cancelled.cancel()
        gate.open()
        assert_same(kept.result(timeout=30), pipe("third"))
        assert running.result()
        stats = server.stats()
    assert stats["cancelled"] == 1 and stats["completed"] == 2


def test_asubmit_waits_off_the_event_loop_when_the_queue_is_full(pipe, gate):
    async def main(server):
        running = asyncio.ensure_future(server.asubmit("first"))
        while not gate.entered.is_set():
            await asyncio.sleep(0.01)
        queued = asyncio.ensure_future(server.asubmit("second"))
        blocked = asyncio.ensure_future(server.asubmit("third"))
        await asyncio.sleep(0.1)
        assert not blocked.done()  # waiting for room, while the event loop runs on
        gate.open()
        return await asyncio.gather(running, queued, blocked)

    with pipe.serve(max_queue=1, max_batch_size=1, max_wait_ms=0, on_full="block") as server:
        answers = asyncio.run(main(server))
        assert server.stats()["rejected"] == 0
    assert_same(answers, [pipe(text) for text in ("first", "second", "third")])


def test_close_with_requests_in_flight_leaves_no_future_pending(pipe, direct):
    requests = REQUESTS[:300]
    server = pipe.serve(max_wait_ms=1, max_batch_size=16)
    futures = [server.submit(text, **params) for text, params in requests]
    server.close()
    assert all(f.done() for f in futures)
    assert_same([f.result() for f in futures], direct[: len(requests)])
    with pytest.raises(ServerClosedError, match="closed"):
        server.submit("too late")

    server = pipe.serve(max_wait_ms=1, max_batch_size=16)
    futures = [server.submit(text, **params) for text, params in requests]
    server.close(drain=False)
    assert all(f.done() for f in futures)
    stats = server.stats()
    assert stats["completed"] + stats["failed"] == len(futures)
    for future, expected in zip(futures, direct):
        if future.exception() is None:
            assert_same(future.result(), expected)
        else:
            with pytest.raises(ServerClosedError, match="closed before this request ran"):
                future.result()


def test_invalid_parameters_and_options_raise_at_once(pipe):
    with pytest.raises(ValueError, match="max_wait_ms"):
        pipe.serve(max_wait_ms=-1)
    with pytest.raises(ValueError, match="on_full must be one of"):
        pipe.serve(on_full="drop")
    with pipe.serve() as server:
        with pytest.raises(ValueError, match="top_k must be a positive int"):
            server.submit("text", top_k=0)
        with pytest.raises(TypeError, match="unexpected parameter"):
            server.submit("text", colour="red")
        with pytest.raises(TypeError, match="takes no 'batch_size'"):
            server.submit("text", batch_size=4)
        assert server.stats()["submitted"] == 0


def test_serving_is_false_once_closed(pipe):
    server = pipe.serve()
    assert server.serving
    server.close()
    assert not server.serving
