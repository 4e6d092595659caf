"""Length-sorted batching: which items run together, padded to which bucket.

Plain Python over lengths, with no torch: the engine hands in one length per
model item and gets back batches of item positions, each with the (batch,
length) bucket it will be padded to. Sorting by length keeps the padding of a
batch down to its bucket; the caller restores input order from the positions.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TypeVar

from pipejit.engine.shapes import round_down, round_up

T = TypeVar("T")


@dataclass(frozen=True)
class Batch:
    """Positions of the items that run together, and the length they are padded to."""

    positions: tuple[int, ...]
    bucket_length: int

    @property
    def padded_tokens(self) -> int:
        return len(self.positions) * self.bucket_length


def plan_batches(
    lengths: Sequence[int],
    *,
    max_batch_size: int,
    token_budget: int,
    length_ladder: Sequence[int],
    batch_ladder: Sequence[int],
    max_padding: float = 0.125,
    groups: Sequence[Hashable] | None = None,
) -> list[Batch]:
    """Cut length-sorted items into batches of at most ``max_batch_size`` items
    whose padded size (bucket batch x bucket length) stays within ``token_budget``.

    An item joins a batch of a larger bucket than its own only while its padding
    stays within ``max_padding`` of the bucket length: a big batch of a small
    dataset would otherwise span many buckets and pad most of its items far.

    Every batch size is a step of ``batch_ladder`` (which should end on
    ``max_batch_size``), so no padding rows are ever run and the shapes stay few:
    a tail of 7 items runs as 4 + 2 + 1. A single item always forms a batch,
    however long. Items are visited from the longest down, so a batch's bucket
    length is set by its first item and the most expensive batches run first.

    With ``groups`` (one hashable per item), items of different groups never
    share a batch: images of different processed sizes cannot be stacked.
    """
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
    if token_budget < 1:
        raise ValueError(f"token_budget must be at least 1, got {token_budget}")
    members: dict[Hashable, list[int]] = {}
    for position in range(len(lengths)):
        members.setdefault(None if groups is None else groups[position], []).append(position)
    options = (max_batch_size, token_budget, length_ladder, batch_ladder, max_padding)
    return [
        batch
        for positions in members.values()
        for batch in _plan_group(lengths, positions, *options)
    ]


def _plan_group(
    lengths: Sequence[int],
    positions: list[int],
    max_batch_size: int,
    token_budget: int,
    length_ladder: Sequence[int],
    batch_ladder: Sequence[int],
    max_padding: float,
) -> list[Batch]:
    order = sorted(positions, key=lambda i: lengths[i], reverse=True)
    batches: list[Batch] = []
    start = 0
    while start < len(order):
        bucket_length = round_up(lengths[order[start]], length_ladder)
        limit = min(max(1, token_budget // bucket_length), max_batch_size, len(order) - start)
        floor = bucket_length * (1 - max_padding)
        end = start + 1
        while end < start + limit and (
            lengths[order[end]] >= floor
            or round_up(lengths[order[end]], length_ladder) == bucket_length
        ):
            end += 1
        take = round_down(end - start, batch_ladder)
        batches.append(Batch(tuple(order[start : start + take]), bucket_length))
        start += take
    return batches


def windows(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive chunks of at most ``size`` items: the sort window of a stream.

    Outputs leave in input order, so the first result of a stream waits for at
    most one window of inputs to be read and run.
    """
    if size < 1:
        raise ValueError(f"the sort window must hold at least 1 item, got {size}")
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
