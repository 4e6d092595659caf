"""The ``Pipeline`` object: preprocess -> schedule -> run -> postprocess, in input order.

One input returns one output, a list returns a list, and any other iterable
(generator, dataset, column) returns a generator that streams: inputs are read
one sort window at a time, so memory stays bounded and the first output waits
for at most one window.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch

from pipejit.engine.buckets import make_ladder
from pipejit.engine.collate import collate, to_host
from pipejit.engine.runner import Runner
from pipejit.engine.scheduler import plan_batches, windows
from pipejit.tasks.base import Features, Params, Row, Task

ENGINE_CALL_OPTIONS = {"batch_size", "progress"}


class Pipeline:
    """A task on a model, run by the engine. Build it with ``pipejit.pipeline(...)``."""

    def __init__(
        self,
        task: Task,
        runner: Runner,
        *,
        device: torch.device,
        batch_size: int | str | None,
        token_budget: int | None,
        auto_token_budget: int,
        max_batch_size: int,
        length_ladder: tuple[int, ...],
        batch_ladder: tuple[int, ...],
        sort_window: int,
        progress: bool,
        task_defaults: dict[str, Any],
    ):
        self.task = task
        self.runner = runner
        self.device = device
        self.batch_size = batch_size
        self.token_budget = token_budget
        self.auto_token_budget = auto_token_budget
        self.max_batch_size = max_batch_size
        self.length_ladder = make_ladder(task.length_ladder or length_ladder, cap=task.max_length)
        self.batch_ladder = batch_ladder
        self.sort_window = sort_window
        self.progress = progress
        self.task_defaults = task_defaults
        # validate the pipeline's own defaults now, not at the first call
        task.parse_params(dict(task_defaults))

    @property
    def model(self) -> torch.nn.Module:
        return self.task.model

    @property
    def tokenizer(self):
        return self.task.tokenizer

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        inputs = self.task.normalize_call(inputs, args, kwargs)
        batch_size = _check_batch_size(kwargs.pop("batch_size", self.batch_size))
        progress = kwargs.pop("progress", self.progress)
        params = self.task.parse_params({**self.task_defaults, **kwargs})
        if inputs is None:
            raise ValueError(f"{self.task.name} received None as input")
        if self.task.is_single(inputs):
            (output,) = self._run_window([inputs], params, batch_size, first_index=None)
            return self.task.format_single(output, inputs, kwargs)
        if isinstance(inputs, (list, tuple)):
            outputs = list(self._stream(inputs, params, batch_size, progress, total=len(inputs)))
            return self.task.format_list(outputs, list(inputs), kwargs)
        if not isinstance(inputs, Iterable) and not _indexable(inputs):
            raise ValueError(
                f"{self.task.name} takes one input, a list or an iterable of inputs, "
                f"got {type(inputs).__name__}"
            )
        total = len(inputs) if hasattr(inputs, "__len__") else None
        return self._stream(_iterate(inputs), params, batch_size, progress, total=total)

    def warmup(
        self, lengths: Iterable[int] | None = None, batch_sizes: Iterable[int] | None = None
    ):
        """Compile the buckets of these shapes now rather than at first use."""
        lengths = list(lengths) if lengths is not None else list(self.length_ladder)
        sizes = list(batch_sizes) if batch_sizes is not None else [1]
        for length in lengths:
            for size in sizes:
                item = self.task.dummy_features(length)
                batch = collate(
                    [item] * size, length, self.task.pad_values, self.device, self.task.padding_side
                )
                self.runner(batch)

    def stats(self) -> dict[str, Any]:
        """Buckets run, compiles and their seconds, batches, and the padding ratio."""
        s = self.runner.stats
        return {
            "compiled": self.runner.compiled,
            "buckets": sorted(s.buckets),
            "compiles": len(s.compile_seconds),
            "compile_seconds": {f"{b}x{n}": round(t, 3) for (b, n), t in s.compile_seconds.items()},
            "batches": s.batches,
            "real_tokens": s.real_tokens,
            "padded_tokens": s.padded_tokens,
            "padding_ratio": 1 - s.real_tokens / s.padded_tokens if s.padded_tokens else 0.0,
            "compile_failed": s.compile_failed,
        }

    def _stream(
        self, items: Iterable[Any], params: Params, batch_size: int | None, progress: bool, total
    ) -> Iterator[Any]:
        bar = _progress_bar(progress, total, self.task.name)
        done = 0
        for window in windows(items, self.sort_window):
            yield from self._run_window(window, params, batch_size, first_index=done)
            done += len(window)
            if bar is not None:
                bar.update(len(window))
        if bar is not None:
            bar.close()

    def _run_window(
        self, items: list[Any], params: Params, batch_size: int | None, first_index: int | None
    ) -> list[Any]:
        """Run one sort window; ``first_index`` numbers its inputs in errors (None: one input)."""
        features, owners = self._preprocess(items, params, first_index)
        rows = self._forward(features, params, batch_size)
        grouped: list[list[int]] = [[] for _ in items]
        for position, owner in enumerate(owners):
            grouped[owner].append(position)
        return [
            self.task.postprocess(
                item, [features[p] for p in positions], [rows[p] for p in positions], params
            )
            for item, positions in zip(items, grouped)
        ]

    def _preprocess(
        self, items: list[Any], params: Params, first_index: int | None
    ) -> tuple[list[Features], list[int]]:
        features: list[Features] = []
        owners: list[int] = []
        for index, item in enumerate(items):
            try:
                chunks = self.task.preprocess(item, params)
                for chunk in chunks:
                    self._check_length(chunk)
            except (ValueError, TypeError) as error:
                if first_index is None:
                    raise
                raise type(error)(f"input {first_index + index}: {error}") from error
            features.extend(chunks)
            owners.extend([index] * len(chunks))
        return features, owners

    def _check_length(self, item: Features) -> None:
        unit = self.task.length_unit
        if item.length > self.task.max_length:
            raise ValueError(
                f"the input is {item.length} {unit} long, more than the model's maximum of "
                f"{self.task.max_length}; {self.task.truncation_hint}"
            )
        if item.length == 0:
            raise ValueError(f"the input has zero {unit}; nothing to run the model on")

    def _batch_ladder(self, max_batch: int) -> tuple[int, ...]:
        """Every size when one dynamic graph serves all batches, else the bucket ladder."""
        if self.runner.dynamic or not self.runner.compiled:
            return tuple(range(1, max_batch + 1))
        return make_ladder(self.batch_ladder, cap=max_batch)

    def _forward(
        self, features: list[Features], params: Params, batch_size: int | None
    ) -> list[Row]:
        """Run the model items in length-sorted bucketed batches; rows come back in item order.

        With ``batch_size`` auto, batches fill the token budget; with an explicit
        ``batch_size`` they hold that many items, within ``token_budget`` if one was set.
        """
        task = self.task
        if batch_size is None:
            max_batch = self.max_batch_size
            budget = (self.token_budget or self.auto_token_budget) * task.units_per_token
        else:
            max_batch = batch_size
            budget = (self.token_budget or 0) * task.units_per_token
            budget = budget or batch_size * task.max_length
        lengths = [f.length for f in features]
        rows: list[Row | None] = [None] * len(features)
        for batch in plan_batches(
            lengths,
            max_batch_size=max_batch,
            token_budget=budget,
            # a task that stacks items unpadded buckets each length as itself
            length_ladder=self.length_ladder if task.pads else sorted(set(lengths)),
            batch_ladder=self._batch_ladder(max_batch),
            groups=[f.group for f in features],
            max_padding=task.max_padding,
        ):
            members = [features[p] for p in batch.positions]
            length = batch.bucket_length if task.pads else None
            inputs = collate(members, length, task.pad_values, self.device, task.padding_side)
            self.runner.stats.real_tokens += sum(f.length for f in members)
            self.runner.stats.padded_tokens += batch.padded_tokens
            host = to_host(task.run(self.runner, inputs, params))
            for row, position in enumerate(batch.positions):
                rows[position] = {k: v[row] for k, v in host.items()}
        return rows  # type: ignore[return-value]


def _check_batch_size(batch_size: Any) -> int | None:
    if batch_size is None or batch_size == "auto":
        return None
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, 'auto' or None, got {batch_size!r}")
    return batch_size


def _indexable(inputs: Any) -> bool:
    return hasattr(inputs, "__len__") and hasattr(inputs, "__getitem__")


def _iterate(inputs: Any) -> Iterator[Any]:
    """Datasets that only index (a torch ``Dataset``) are read by position."""
    if isinstance(inputs, Iterable):
        return iter(inputs)
    return (inputs[i] for i in range(len(inputs)))


def _progress_bar(enabled: bool, total: int | None, name: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"pipejit {name}", unit="item")
