"""Run a list of inputs so that each one's failure stays its own.

A plain list call raises for the whole list at the first bad input. ``run_each``
preprocesses and postprocesses every input on its own and runs the model on all
good ones together, in the engine's length-sorted bucketed batches; when that
batched forward fails (an out-of-memory error included), it runs each half on
its own, down to the single input whose error it then is. The micro-batcher and
the Ray integration share it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from pipejit.engine.pipeline import Pipeline
    from pipejit.tasks.base import Features, Params, Row


def run_each(
    pipe: Pipeline,
    items: list[Any],
    params: Params,
    on_split: Callable[[], None] | None = None,
) -> list[Any]:
    """Each input's output as the task's ``postprocess`` gives it (not yet formatted
    as a single or a list answer), or in its place the exception that input raised.
    ``on_split`` is called each time a failed batch is split for a retry."""
    results: list[Any] = [None] * len(items)
    prepared: list[tuple[int, list[Features]]] = []
    for index, item in enumerate(items):
        try:
            prepared.append((index, _preprocess_one(pipe, item, params)))
        except Exception as error:  # noqa: BLE001 - the input's own error, returned to its caller
            results[index] = error
    for index, features, rows in _forward(pipe, prepared, params, on_split):
        if isinstance(rows, Exception):
            results[index] = rows
            continue
        try:
            results[index] = pipe.task.postprocess(items[index], features, rows, params)
        except Exception as error:  # noqa: BLE001
            results[index] = error
    return results


def _preprocess_one(pipe: Pipeline, item: Any, params: Params) -> list[Features]:
    """One input's model items, checked as a one-input call checks them."""
    if item is None:
        raise ValueError(f"{pipe.task.name} received None as input")
    features, _ = pipe._preprocess([item], params, first_index=None)
    return features


def _forward(
    pipe: Pipeline,
    prepared: list[tuple[int, list[Features]]],
    params: Params,
    on_split: Callable[[], None] | None,
) -> list[tuple[int, list[Features], list[Row] | Exception]]:
    if not prepared:
        return []
    features = [f for _, items in prepared for f in items]
    try:
        rows = pipe._forward(features, params, None)
    except Exception as error:  # noqa: BLE001 - OOM and model errors alike: split and retry
        if isinstance(error, torch.OutOfMemoryError) and torch.cuda.is_available():
            torch.cuda.empty_cache()
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
