"""Length-sorted batching, checked over lengths alone."""

import random

import pytest

from pipejit.engine.scheduler import plan_batches, windows
from pipejit.engine.shapes import make_ladder, round_up

LENGTHS = (16, 32, 64, 128, 256, 512)


def _plan(lengths, max_batch=32, budget=2048):
    return plan_batches(
        lengths,
        max_batch_size=max_batch,
        token_budget=budget,
        length_ladder=LENGTHS,
        batch_ladder=make_ladder((1, 2, 4, 8, 16, 32, 64), cap=max_batch),
    )


@pytest.mark.parametrize("seed", range(5))
def test_every_item_runs_once_within_budget_and_bucket(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(1, 512) for _ in range(rng.randint(1, 300))]
    batches = _plan(lengths)
    positions = [p for b in batches for p in b.positions]
    assert sorted(positions) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[p] for p in batch.positions)
        assert batch.bucket_length == round_up(longest, LENGTHS)  # padded only to its bucket
        assert len(batch.positions) in (1, 2, 4, 8, 16, 32)
        assert batch.padded_tokens <= 2048 or len(batch.positions) == 1
        for p in batch.positions:  # an item pads far only inside its own bucket
            own_bucket = round_up(lengths[p], LENGTHS) == batch.bucket_length
            assert own_bucket or lengths[p] >= batch.bucket_length * (1 - 0.125)


def test_sorted_batches_pad_far_less_than_arrival_order():
    rng = random.Random(0)
    lengths = [300 if i % 16 == 0 else rng.randint(5, 12) for i in range(256)]
    sorted_padded = sum(b.padded_tokens for b in _plan(lengths, max_batch=32, budget=10**9))
    arrival_padded = sum(32 * max(lengths[i : i + 32]) for i in range(0, 256, 32))
    assert sorted_padded < arrival_padded / 2


def test_max_batch_size_not_on_the_default_ladder_is_honoured():
    batches = plan_batches(
        [10] * 30,
        max_batch_size=12,
        token_budget=10**6,
        length_ladder=LENGTHS,
        batch_ladder=make_ladder((1, 2, 4, 8, 16), cap=12),
    )
    assert [len(b.positions) for b in batches] == [12, 12, 4, 2]


def test_a_big_batch_does_not_span_buckets():
    lengths = [100, 99, 98, 60, 59, 20]
    batches = _plan(lengths, max_batch=32, budget=10**6)
    # three items of bucket 128 run as 2 + 1 (ladder sizes); 60 and 59 never pad to 128
    assert [(len(b.positions), b.bucket_length) for b in batches] == [
        (2, 128),
        (1, 128),
        (2, 64),
        (1, 32),
    ]


def test_single_over_budget_item_still_runs():
    (batch,) = _plan([500], budget=64)
    assert batch.positions == (0,) and batch.bucket_length == 512


def test_bad_limits_are_named():
    with pytest.raises(ValueError, match="max_batch_size"):
        _plan([3], max_batch=0)
    with pytest.raises(ValueError, match="token_budget"):
        _plan([3], budget=0)


def test_windows_are_bounded_and_lazy():
    consumed = []

    def source():
        for i in range(10):
            consumed.append(i)
            yield i

    chunks = windows(source(), 4)
    assert next(chunks) == [0, 1, 2, 3]
    assert len(consumed) <= 5
    assert list(chunks) == [[4, 5, 6, 7], [8, 9]]


def test_groups_never_share_a_batch():
    lengths = [10, 10, 10, 10, 10, 10]
    groups = ["a", "b", "a", "b", "a", "a"]
    batches = plan_batches(
        lengths,
        groups=groups,
        max_batch_size=8,
        token_budget=1000,
        length_ladder=LENGTHS,
        batch_ladder=(1, 2, 4, 8),
    )
    assert sorted(p for b in batches for p in b.positions) == list(range(6))
    for batch in batches:
        assert len({groups[p] for p in batch.positions}) == 1
    assert sorted(len(b.positions) for b in batches) == [2, 4]
