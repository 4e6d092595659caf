"""pipejit inside Ray Data: one pipeline replica per actor, over a dataset's column.

``PipejitPredictor`` is the callable class for ``Dataset.map_batches``: its
constructor builds (and warms up) the pipeline once per actor, each call runs
one batch of rows through it, in the engine's length-sorted bucketed batches,
and adds an output column (and, with ``on_error="column"``, an error column)
beside the input columns. ``map_pipeline`` sets up the actor pool: one actor
per GPU, or one per ``cpus_per_actor`` CPU cores.

    ds = ray.data.read_parquet("s3://bucket/reviews/")
    ds = map_pipeline(ds, "text-classification", "distilbert-base-uncased-finetuned-sst-2-english",
                      column="review", output_column="sentiment", on_error="column")
    ds.write_parquet("s3://bucket/scored/")
"""

from __future__ import annotations

from typing import Any

import numpy as np

import pipejit
from pipejit.engine.isolation import run_each

ON_ERROR = ("raise", "column")
# Rows per Ray batch: the engine sorts a batch by length and cuts it into
# token-budget batches, so a batch should hold several of those (the engine's
# default sort window).
DEFAULT_BATCH_SIZE = 512
CPU_CORES_PER_ACTOR = 4


class RowError(ValueError):
    """A row of a Ray batch that the pipeline could not answer (``on_error="raise"``)."""


class PipejitPredictor:
    """For ``ds.map_batches(PipejitPredictor, fn_constructor_kwargs={...}, ...)``.

    ``task``, ``model`` and ``pipeline_options`` build ``pipejit.pipeline(task,
    model, **pipeline_options)`` in each actor (``device`` defaults to the actor's
    GPU when Ray gave it one); ``params`` are the task parameters of every call
    (``top_k``, ``truncation``, ...). Each row's ``column`` value is one input;
    its output goes to ``output_column``. With ``on_error="raise"`` a failing row
    stops the job with a ``RowError`` naming it; with ``"column"`` its output is
    None and ``error_column`` holds ``"ErrorType: message"`` (None for good rows).
    ``num_threads`` sets torch's CPU threads in the actor (Ray's CPU share).
    """

    def __init__(
        self,
        task: str,
        model: str,
        *,
        column: str = "text",
        output_column: str = "output",
        on_error: str = "raise",
        error_column: str = "error",
        params: dict[str, Any] | None = None,
        warmup: bool = True,
        num_threads: int | None = None,
        **pipeline_options: Any,
    ):
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        import torch

        if num_threads is not None:
            torch.set_num_threads(num_threads)
        if "device" not in pipeline_options and torch.cuda.is_available():
            pipeline_options["device"] = "cuda"
        self.pipe = pipejit.pipeline(task, model=model, **pipeline_options)
        self.column = column
        self.output_column = output_column
        self.on_error = on_error
        self.error_column = error_column
        self.call_kwargs = dict(params or {})
        self.params = self.pipe.task.parse_params({**self.pipe.task_defaults, **self.call_kwargs})
        if warmup:
            self.pipe.warmup()

    def __call__(self, batch: Any) -> Any:
        """A batch (a dict of numpy arrays, or a pandas DataFrame) with the output
        column (and error column) added; rows keep their place."""
        if self.column not in batch:
            raise KeyError(
                f"pipejit reads the column {self.column!r}, but the batch has "
                f"{list(batch.keys())}; pass column=<the input column>"
            )
        items = [_python_value(value) for value in batch[self.column]]
        results = run_each(self.pipe, items, self.params)
        good = [i for i, result in enumerate(results) if not isinstance(result, Exception)]
        if self.on_error == "raise" and len(good) < len(items):
            index = next(i for i, result in enumerate(results) if isinstance(result, Exception))
            error = results[index]
            raise RowError(
                f"row {index} of a batch of {len(items)} ({_preview(items[index])}): "
                f"{type(error).__name__}: {error}; pass on_error='column' to keep going"
            ) from error
        formatted = self.pipe.task.format_list(
            [results[i] for i in good], [items[i] for i in good], self.call_kwargs
        )
        outputs: list[Any] = [None] * len(items)
        for index, output in zip(good, formatted):
            outputs[index] = output
        batch[self.output_column] = outputs
        if self.on_error == "column":
            batch[self.error_column] = [
                f"{type(r).__name__}: {r}" if isinstance(r, Exception) else None for r in results
            ]
        return batch


def map_pipeline(
    ds: Any,
    task: str,
    model: str,
    *,
    column: str = "text",
    output_column: str = "output",
    on_error: str = "raise",
    error_column: str = "error",
    params: dict[str, Any] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_actors: int | None = None,
    num_gpus: float | None = None,
    cpus_per_actor: int | None = None,
    warmup: bool = True,
    predictor: type[PipejitPredictor] = PipejitPredictor,
    **pipeline_options: Any,
) -> Any:
    """``ds`` with ``output_column`` added by ``pipejit.pipeline(task, model, ...)``
    over an actor pool (lazy, as every Ray Data transform).

    Defaults from the cluster Ray is connected to: with GPUs, one actor per GPU
    (``num_gpus=1`` each); without, one actor per ``CPU_CORES_PER_ACTOR`` cores
    (``cpus_per_actor`` each, and as many torch threads). ``batch_size`` rows go
    to each call, which the engine sorts by length and cuts by its token budget.
    ``predictor`` may be a subclass of ``PipejitPredictor`` (to add columns, say).
    The other arguments are those of ``PipejitPredictor``.
    """
    import ray
    from ray.data import ActorPoolStrategy

    resources = ray.cluster_resources()
    if num_gpus is None:
        num_gpus = 1 if resources.get("GPU", 0) >= 1 else 0
    if cpus_per_actor is None:
        cpus_per_actor = 1 if num_gpus else min(CPU_CORES_PER_ACTOR, int(resources.get("CPU", 1)))
    if num_actors is None:
        if num_gpus:
            num_actors = max(1, int(resources.get("GPU", 0) // num_gpus))
        else:
            num_actors = max(1, int(resources.get("CPU", 1)) // cpus_per_actor)
    constructor = dict(
        column=column,
        output_column=output_column,
        on_error=on_error,
        error_column=error_column,
        params=params,
        warmup=warmup,
        num_threads=None if num_gpus else cpus_per_actor,
        **pipeline_options,
    )
    return ds.map_batches(
        predictor,
        fn_constructor_args=(task, model),
        fn_constructor_kwargs=constructor,
        batch_size=batch_size,
        batch_format="numpy",
        compute=ActorPoolStrategy(size=num_actors),
        num_gpus=num_gpus,
        num_cpus=cpus_per_actor,
    )


def _python_value(value: Any) -> Any:
    """numpy scalars (``np.str_``, ``np.bytes_``, numbers) as Python values; arrays kept."""
    return value.item() if isinstance(value, np.generic) else value


def _preview(item: Any) -> str:
    text = repr(item)
    return text if len(text) <= 80 else text[:77] + "..."
