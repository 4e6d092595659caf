"""Run a list of inputs so that each one's failure stays its own.

A plain list call raises for the whole list at the first bad input. ``run_each``
preprocesses and postprocesses every input on its own and runs the model on all
good ones together, in the engine's length-sorted bucketed batches. Out-of-memory
errors are not retried here: the engine loop already split the batch (see
``pipejit.engine.memory``), and an item that does not fit alone fails only its own
input. Any other error of the batched forward belongs to some input: the inputs are
halved and each half run on its own, down to the single input whose error it is.
The micro-batcher and the Ray integration share it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipejit.engine.memory import ItemOutOfMemory

if TYPE_CHECKING:
    from pipejit.contract import Features, Params, Row
    from pipejit.engine.pipeline import Pipeline

Prepared = list[tuple[int, list["Features"]]]


def run_each(
    pipe: Pipeline,
    items: list[Any],
    params: Params,
    on_split: Callable[[], None] | None = None,
) -> list[Any]:
    """Each input's output as the task's ``postprocess`` gives it (not yet formatted
    as a single or a list answer), or in its place the exception that input raised.
    ``on_split`` is called each time a failed batch is split to find its bad input."""
    results: list[Any] = [None] * len(items)
    prepared: Prepared = []
    for index, item in enumerate(items):
        try:
            prepared.append((index, _preprocess_one(pipe, item, params)))
        except Exception as error:  # noqa: BLE001 - the input's own error, returned to its caller
            results[index] = error
    done = _forward(pipe, prepared, params, on_split)
    start = time.perf_counter()
    for index, features, rows in done:
        if isinstance(rows, Exception):
            results[index] = rows
            continue
        try:
            results[index] = pipe.task.postprocess(items[index], features, rows, params)
        except Exception as error:  # noqa: BLE001
            results[index] = error
    pipe.clock.add("postprocess", start)
    return results


def _preprocess_one(pipe: Pipeline, item: Any, params: Params) -> list[Features]:
    """One input's model items, checked as a one-input call checks them."""
    if item is None:
        raise ValueError(f"{pipe.task.name} received None as input")
    features, _ = pipe._preprocess([item], params, first_index=None)
    return features


def _forward(
    pipe: Pipeline,
    prepared: Prepared,
    params: Params,
    on_split: Callable[[], None] | None,
) -> list[tuple[int, list[Features], list[Row] | Exception]]:
    if not prepared:
        return []
    features = [f for _, items in prepared for f in items]
    try:
        rows = pipe._forward(features, params, None)
    except ItemOutOfMemory as error:
        # the engine already backed off to this one item: its input fails, the rest rerun
        owner = _owner(prepared, error.position)
        index, items = prepared[owner]
        rest = prepared[:owner] + prepared[owner + 1 :]
        return [(index, items, error), *_forward(pipe, rest, params, on_split)]
    except Exception as error:  # noqa: BLE001 - a model error of some input: find which
        if len(prepared) == 1:
            ((index, items),) = prepared
            return [(index, items, error)]
        if on_split is not None:
            on_split()
        half = len(prepared) // 2
        return _forward(pipe, prepared[:half], params, on_split) + _forward(
            pipe, prepared[half:], params, on_split
        )
    out, start = [], 0
    for index, items in prepared:
        out.append((index, items, rows[start : start + len(items)]))
        start += len(items)
    return out


def _owner(prepared: Prepared, position: int) -> int:
    """Which prepared input holds model item ``position`` of the flattened list."""
    for owner, (_, items) in enumerate(prepared):
        if position < len(items):
            return owner
        position -= len(items)
    raise IndexError(f"no prepared input holds item {position}")
