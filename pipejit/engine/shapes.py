"""The shape policy: every (batch, length) shape the engine runs comes from here.

Pure functions over sorted tuples (ladders rounded with ``bisect``), and one
``ShapePolicy`` per pipeline that the scheduler, the graph runner and the decoders
all read: the length ladder, the batch ladder, the CUDA-graph capture sizes, the
rows a compiled decode step runs at, and the frame and cache-length buckets of
modules whose lengths are known only mid-batch. Compiled graphs stay few, and every
rounding decision is testable without a model.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Steps of 8 tokens up to 128, 16 up to 256, 32 up to 512, 64 up to 1024, then 128:
# at most about 6% padding per item, and lengths that stay multiples of 8.
LENGTH_STEPS = ((128, 8), (256, 16), (512, 32), (1024, 64), (4096, 128))
# Batch sizes of compiled static shapes, and the sizes CUDA graphs are captured at:
# graphs pay where launch overhead rivals the math (small batches).
POWERS_OF_TWO: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
DEFAULT_GRAPH_BATCHES: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
DEFAULT_GRAPH_MAX_TOKENS = 16384
# A decoder's static KV cache holds a power of two positions, from this floor.
MIN_CACHE_LENGTH = 64


def length_ladder(top: int = 512) -> tuple[int, ...]:
    """The default length buckets up to ``top`` (``LENGTH_STEPS``)."""
    steps: list[int] = []
    start = 0
    for end, step in LENGTH_STEPS:
        steps.extend(range(start + step, min(end, top) + 1, step))
        start = end
        if end >= top:
            break
    return tuple(steps)


DEFAULT_LENGTH_LADDER = length_ladder(512)


def make_ladder(steps: Iterable[int], cap: int | None = None) -> tuple[int, ...]:
    """Sorted, de-duplicated positive steps, cut at ``cap`` and ending exactly on it."""
    steps = list(steps)
    ladder = sorted({int(s) for s in steps if int(s) > 0})
    if not ladder:
        raise ValueError(f"a bucket ladder needs at least one positive step, got {steps!r}")
    if cap is not None:
        ladder = [s for s in ladder if s < cap] + [cap]
    return tuple(ladder)


def round_up(value: int, ladder: Sequence[int]) -> int:
    """The smallest step of ``ladder`` that holds ``value``.

    A value past the top of the ladder is returned as it is: the caller decides
    whether that is an error (a length over the model's maximum) or a shape that
    runs without a bucket.
    """
    if value < 1:
        raise ValueError(f"cannot bucket a size below 1, got {value}")
    i = bisect_left(ladder, value)
    return ladder[i] if i < len(ladder) else value


def round_down(value: int, ladder: Sequence[int]) -> int:
    """The largest step of ``ladder`` not above ``value``; a ValueError below its first."""
    i = bisect_left(ladder, value + 1)
    if i == 0:
        raise ValueError(f"{value} is below the smallest step {ladder[0]} of the ladder")
    return ladder[i - 1]


def frame_bucket(frames: int) -> int:
    """``frames`` rounded up to a multiple of an eighth of its power of two (at least 32):
    at most 12.5% padding and a few dozen shapes up to minutes of audio."""
    if frames < 1:
        raise ValueError(f"cannot bucket a frame count below 1, got {frames}")
    step = max(32, 1 << max(frames.bit_length() - 4, 0))
    return -(-frames // step) * step


def power_of_two(rows: int) -> int:
    """The smallest power of two that holds ``rows``."""
    if rows < 1:
        raise ValueError(f"cannot bucket a batch below 1 row, got {rows}")
    return 1 << (rows - 1).bit_length()


def cache_length(needed: int) -> int:
    """The KV-cache length bucket that holds ``needed`` positions."""
    return max(MIN_CACHE_LENGTH, power_of_two(needed))


def capture_plan(
    lengths: Iterable[int], batch_sizes: Iterable[int], max_tokens: float
) -> list[tuple[int, int]]:
    """The (batch, length) buckets within ``max_tokens`` padded tokens, largest first."""
    sizes = sorted(set(batch_sizes))
    buckets = {(b, n) for b in sizes for n in set(lengths) if b * n <= max_tokens}
    return sorted(buckets, key=lambda bucket: (bucket[0] * bucket[1], bucket[0]), reverse=True)


@dataclass(frozen=True)
class ShapePolicy:
    """One pipeline's shapes.

    ``lengths``: the length ladder, ending on the task's maximum. ``batches``: the
    batch sizes a batch may have (None: every size, as one dynamic compiled graph
    serves them all). ``static``: modules compile one graph per shape, so lengths
    known only mid-batch (frames) and decode batches are bucketed too.
    ``capture_sizes`` / ``capture_max_tokens``: the buckets CUDA graphs cover.
    """

    lengths: tuple[int, ...]
    batches: tuple[int, ...] | None
    static: bool
    compiled: bool
    capture_sizes: tuple[int, ...] = DEFAULT_GRAPH_BATCHES
    capture_max_tokens: int = DEFAULT_GRAPH_MAX_TOKENS

    def batch_steps(self, max_batch: int) -> tuple[int, ...]:
        """The sizes the scheduler cuts batches to, up to ``max_batch`` (1 always among them)."""
        if self.batches is None:
            return tuple(range(1, max_batch + 1))
        return make_ladder((1, *self.batches), cap=max_batch)

    def item_lengths(self, lengths: Sequence[int], pads: bool) -> tuple[int, ...]:
        """The length ladder of one run: items that are stacked unpadded bucket as themselves."""
        return self.lengths if pads else tuple(sorted(set(lengths)))

    def padded_length(self, length: int) -> int:
        """A length known only mid-batch, bucketed when modules compile per shape."""
        return frame_bucket(length) if self.static and self.compiled else length

    def decode_rows(self, rows: int) -> int:
        """The rows a compiled decode step runs at (one graph per power of two)."""
        return power_of_two(rows) if self.compiled else rows

    def graph_batch(self, rows: int, sizes: Sequence[int] | None = None) -> int | None:
        """The smallest capture size (of ``sizes``, else the policy's) that holds
        ``rows``; None past the largest."""
        ladder = sorted(self.capture_sizes if sizes is None else sizes)
        i = bisect_left(ladder, rows)
        return ladder[i] if i < len(ladder) else None
