"""OOM backoff: batches that run out of memory are split, retried, and no item is lost."""

import pytest
import torch
import transformers

import pipejit
from pipejit.engine.memory import Backoff
from tests.models import sentences
from tests.parity import assert_same

TEXTS = sentences(30, seed=8)


def failing_above(rows: int):
    """A batch runner that raises OutOfMemoryError for batches of more than ``rows`` items."""
    ran: list[tuple[int, ...]] = []
    raised: list[int] = []

    def run(positions):
        if len(positions) > rows:
            raised.append(len(positions))
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        ran.append(positions)

    return run, ran, raised


def test_split_retries_halves_in_order_and_lowers_the_limit():
    backoff = Backoff()
    run, ran, raised = failing_above(3)
    backoff.run(range(10), 16, run)
    assert [p for chunk in ran for p in chunk] == list(range(10))
    assert raised == [10, 5] and backoff.splits == 2
    assert backoff.limit == 2 * 16
    # from then on a batch is cut to the limit before it runs: no error is raised again
    run, ran, raised = failing_above(3)
    backoff.run(range(7), 16, run)
    assert raised == [] and [len(c) for c in ran] == [2, 2, 2, 1]
    assert backoff.cap(4096) == 32 and backoff.cap(8) == 8


def test_limit_is_in_padded_units_so_shorter_rows_fit_more():
    backoff = Backoff()
    backoff.record(8, 64)
    assert backoff.allows(4, 64) and not backoff.allows(5, 64)
    assert backoff.allows(16, 16) and backoff.allows(1, 4096)


def test_a_single_item_that_does_not_fit_says_what_to_do():
    backoff = Backoff()
    run, ran, _ = failing_above(0)
    with pytest.raises(torch.OutOfMemoryError, match="single item.*truncation=True"):
        backoff.run([0, 1], 128, run)
    assert ran == []


def test_other_errors_are_not_retried():
    backoff = Backoff()

    def run(positions):
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        backoff.run([0, 1, 2, 3], 8, run)
    assert backoff.splits == 0 and backoff.limit is None


@pytest.fixture(scope="module")
def reference(model_folder):
    return transformers.pipeline(
        "text-classification", model=str(model_folder("text-classification"))
    )


def inject_oom(module_call, rows: int) -> list[int]:
    """Make ``module_call`` raise OutOfMemoryError for batches of more than ``rows`` rows."""
    raised = []

    def forward(*args, **inputs):
        size = inputs["input_ids"].shape[0]
        if size > rows:
            raised.append(size)
            raise torch.OutOfMemoryError(f"injected: {size} rows do not fit")
        return module_call(*args, **inputs)

    return forward, raised


def test_eager_pipeline_recovers_every_item_in_order(reference, monkeypatch):
    pj = pipejit.pipeline("text-classification", model=reference.model.name_or_path, compile=False)
    forward, raised = inject_oom(pj.model.forward, rows=3)
    monkeypatch.setattr(pj.model, "forward", forward)
    expected = reference(TEXTS, top_k=None)
    assert_same(pj(TEXTS, batch_size=16, top_k=None), expected)
    assert raised and all(size > 3 for size in raised)
    stats = pj.stats()
    assert stats["oom_splits"] == len(raised) and stats["oom_token_limit"] is not None
    # the lowered budget holds from then on: the next call runs without a single OOM
    raised.clear()
    assert_same(pj(TEXTS, batch_size=16, top_k=None), expected)
    assert raised == []


def test_compiled_pipeline_recovers_too(reference, monkeypatch, counting_backend):
    pj = pipejit.pipeline(
        "text-classification",
        model=reference.model.name_or_path,
        compile_backend=counting_backend,
        length_buckets=(32, 64, 128),
    )
    forward, raised = inject_oom(pj.modules.runner("model")._compiled, rows=2)
    monkeypatch.setattr(pj.modules.runner("model"), "_compiled", forward)
    texts = TEXTS[:12]
    assert_same(pj(texts, batch_size=8), reference(texts))
    stats = pj.stats()
    # the runner passes the OOM on: it is not taken for a compile failure
    assert raised and stats["compiled"] and stats["compile_failed"] is None
    assert stats["oom_splits"] == len(raised)


def test_one_item_too_big_fails_clearly_and_leaves_the_pipeline_usable(reference, monkeypatch):
    pj = pipejit.pipeline("text-classification", model=reference.model.name_or_path, compile=False)
    call = pj.model.forward

    def forward(**inputs):
        if inputs["input_ids"].shape[1] > 16:
            raise torch.OutOfMemoryError("injected")
        return call(**inputs)

    monkeypatch.setattr(pj.model, "forward", forward)
    long_text, short_text = max(TEXTS, key=len), min(TEXTS, key=len)
    with pytest.raises(torch.OutOfMemoryError, match="single item"):
        pj([short_text, long_text])
    assert_same(pj([short_text]), reference([short_text]))
