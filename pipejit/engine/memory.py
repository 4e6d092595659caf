"""The retry policy: a batch that runs out of device memory is split and its halves retried.

This is the one place out-of-memory errors are retried. Every one (eager,
compiled, decoding, or capturing a CUDA graph) lowers the padded size a batch may
have from then on to half the one that failed, so the pipeline stops asking for
memory it does not have; no item is lost or reordered, as each item's result is
stored by its position once its batch succeeds. A single item that does not fit
alone raises ``ItemOutOfMemory``, naming its position, so per-input isolation can
fail that input alone without retrying anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


class ItemOutOfMemory(torch.OutOfMemoryError):
    """One item does not fit in device memory on its own; ``position`` is its place."""

    def __init__(self, message: str, position: int):
        super().__init__(message)
        self.position = position


@dataclass
class Backoff:
    """The largest padded batch size (in the token budget's units) known to be safe."""

    limit: int | None = None
    splits: int = 0

    def cap(self, budget: int) -> int:
        """``budget`` lowered to the limit learned from out-of-memory errors."""
        return budget if self.limit is None else max(1, min(budget, self.limit))

    def allows(self, rows: int, row_cost: int) -> bool:
        """Whether a batch of ``rows`` rows of ``row_cost`` units each is within the limit."""
        return rows == 1 or self.limit is None or rows * row_cost <= self.limit

    def record(self, rows: int, row_cost: int) -> None:
        """A batch of ``rows`` rows of ``row_cost`` units each ran out of memory."""
        self.splits += 1
        half = max(1, rows // 2) * row_cost
        self.limit = half if self.limit is None else min(self.limit, half)

    def run(
        self,
        positions: Sequence[int],
        row_cost: int,
        run: Callable[[tuple[int, ...]], None],
    ) -> None:
        """``run(positions)`` as one batch, or in smaller batches, in order, until all fit.

        A batch over the limit is cut to the limit before it runs; one that raises
        ``torch.OutOfMemoryError`` lowers the limit and is cut again. A single item
        that does not fit alone raises, saying what to do.
        """
        pending = [tuple(positions)]
        while pending:
            chunk = pending.pop()
            if not self.allows(len(chunk), row_cost):
                rows = max(1, self.limit // row_cost)  # type: ignore[operator]
                pending += [chunk[i : i + rows] for i in range(0, len(chunk), rows)][::-1]
                continue
            try:
                run(chunk)
                continue
            except torch.OutOfMemoryError as error:
                if len(chunk) == 1:
                    raise ItemOutOfMemory(
                        f"out of device memory running a single item (padded size {row_cost}); "
                        "cut its length (truncation=True, max_length=...), load the model in "
                        "dtype='float16' or 'bfloat16', or free memory held elsewhere",
                        chunk[0],
                    ) from error
            # Retried outside the except block: the traceback holds the failed batch's
            # tensors until the block ends.
            self.record(len(chunk), row_cost)
            pending.append(chunk)
