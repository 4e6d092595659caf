"""The bucket ladders: the few (batch, length) shapes the engine ever runs.

Pure functions over sorted tuples, so that compiled graphs stay few and every
rounding decision is testable without a model.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

# Steps of 8 tokens up to 128, 16 up to 256, 32 up to 512: at most about 6% padding
# per item, and lengths that stay multiples of 8 for vectorised kernels.
DEFAULT_LENGTH_LADDER: tuple[int, ...] = (
    *range(8, 129, 8),
    *range(144, 257, 16),
    *range(288, 513, 32),
)
DEFAULT_BATCH_LADDER: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def make_ladder(steps: Sequence[int], cap: int | None = None) -> tuple[int, ...]:
    """Sorted, de-duplicated positive steps, cut at ``cap`` and ending exactly on it."""
    ladder = sorted({int(s) for s in steps if int(s) > 0})
    if not ladder:
        raise ValueError(f"a bucket ladder needs at least one positive step, got {list(steps)!r}")
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
    """The largest step of ``ladder`` not above ``value`` (at least the first step)."""
    i = bisect_left(ladder, value + 1)
    return ladder[max(i - 1, 0)]
