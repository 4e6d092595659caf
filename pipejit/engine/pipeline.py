"""The ``Pipeline`` object: preprocess -> schedule -> run -> postprocess, in input order.

One input returns one output, a list returns a list, and any other iterable
(generator, dataset, column) returns a generator that streams: inputs are read
one sort window at a time, so memory stays bounded and the first output waits
for at most one window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch

from pipejit.engine.buckets import make_ladder
from pipejit.engine.collate import collate, to_host
from pipejit.engine.compile_cache import CompileCache
from pipejit.engine.graphs import GraphRunner, capture_plan
from pipejit.engine.memory import Backoff
from pipejit.engine.runner import Runner
from pipejit.engine.scheduler import plan_batches, windows
from pipejit.tasks.base import Features, Params, Row, Task

if TYPE_CHECKING:
    from pipejit.engine.serve import MicroBatcher

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
        graphs: GraphRunner | None = None,
        compile_cache: CompileCache | None = None,
    ):
        self.task = task
        self.runner = runner
        self.graphs = graphs
        self.compile_cache = compile_cache
        self.memory = Backoff()
        self._compiles_saved = 0
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

    def __call__(self, inputs: Any = None, *args: Any, **kwargs: Any) -> Any:
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

    def serve(self, **options: Any) -> MicroBatcher:
        """A ``MicroBatcher`` on this pipeline: concurrent one-input calls, batched.
        Options: ``max_batch_size``, ``max_wait_ms``, ``max_queue``, ``on_full``,
        ``block_timeout_s``, ``deadline_s`` (see ``MicroBatcher``)."""
        from pipejit.engine.serve import MicroBatcher

        return MicroBatcher(self, **options)

    def warmup(
        self, lengths: Iterable[int] | None = None, batch_sizes: Iterable[int] | None = None
    ) -> dict[str, Any]:
        """Compile, and with CUDA graphs capture, these buckets now rather than at first use.

        Default: every length of the ladder, at the graph batch sizes when graphs are
        on (buckets past their token cap are left out, and captured largest first so
        they share one memory pool), else at batch 1. Graphs are captured for the
        pipeline's default task parameters. Returns ``stats()``.
        """
        lengths = list(lengths) if lengths is not None else list(self.length_ladder)
        graphs = self.graphs if self.graphs is not None and self.graphs.active else None
        default_sizes = graphs.batch_sizes if graphs is not None else (1,)
        sizes = list(batch_sizes) if batch_sizes is not None else list(default_sizes)
        if graphs is None:
            plan = [(size, length) for length in lengths for size in sizes]
        else:
            # sizes asked for explicitly are captured even past the token cap
            cap = graphs.max_tokens if batch_sizes is None else math.inf
            plan = capture_plan(lengths, sizes, cap)
        params = self.task.parse_params(dict(self.task_defaults))
        for size, length in plan:
            if not self.memory.allows(size, length):
                continue
            item = self.task.dummy_features(length)
            batch = collate(
                [item] * size,
                length if self.task.pads else None,
                self.task.pad_values,
                self.device,
                self.task.padding_side,
            )
            try:
                if graphs is not None:
                    graphs.capture_bucket(batch, params, length)
                else:
                    # the task's whole step: decoding tasks compile more than the forward
                    self.task.run(self.runner, batch, params)
            except torch.OutOfMemoryError:
                self.memory.record(size, length)
        self._save_compile_cache()
        return self.stats()

    def stats(self) -> dict[str, Any]:
        """Buckets run, compiles, graph captures and hits, padding, and OOM backoff."""
        s = self.runner.stats
        g = self.graphs.stats if self.graphs is not None else None
        return {
            "compiled": self.runner.compiled,
            "buckets": sorted(s.buckets),
            "compiles": len(s.compile_seconds),
            "compile_seconds": {_name(b): round(t, 3) for b, t in s.compile_seconds.items()},
            "batches": s.batches,
            "real_tokens": s.real_tokens,
            "padded_tokens": s.padded_tokens,
            "padding_ratio": 1 - s.real_tokens / s.padded_tokens if s.padded_tokens else 0.0,
            "compile_failed": s.compile_failed,
            "cpu_path": s.cpu_path.to_dict() if s.cpu_path is not None else None,
            "cuda_graphs": self.graphs is not None and self.graphs.active,
            "graphs_disabled": g.disabled if g is not None else None,
            "captures": g.captures if g is not None else 0,
            "captured_buckets": self.graphs.captured if self.graphs is not None else [],
            "capture_seconds": (
                {_name(b): round(t, 4) for b, t in g.capture_seconds.items()} if g else {}
            ),
            "graph_hits": g.hits if g is not None else 0,
            "graph_fallbacks": g.fallbacks if g is not None else 0,
            "graph_padded_rows": g.padded_rows if g is not None else 0,
            "oom_splits": self.memory.splits,
            "oom_token_limit": self.memory.limit,
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

    def _run_batch(
        self,
        positions: tuple[int, ...],
        features: list[Features],
        length: int,
        params: Params,
        rows: list[Row | None],
    ) -> None:
        """One batch: collate, run (replayed from a CUDA graph where one serves it),
        copy the reduced rows to the host and store them by item position."""
        task = self.task
        members = [features[p] for p in positions]
        inputs = collate(
            members,
            length if task.pads else None,
            task.pad_values,
            self.device,
            task.padding_side,
        )
        if self.graphs is not None:
            reduced = self.graphs.run(inputs, params, length)
        else:
            reduced = task.run(self.runner, inputs, params)
        host = to_host(reduced)
        self.runner.stats.real_tokens += sum(f.length for f in members)
        self.runner.stats.padded_tokens += len(positions) * length
        for row, position in enumerate(positions):
            rows[position] = {k: v[row] for k, v in host.items()}

    def _save_compile_cache(self) -> None:
        """Write new compile artifacts to the persistent cache after compiles."""
        compiles = len(self.runner.stats.compile_seconds)
        if self.compile_cache is not None and compiles > self._compiles_saved:
            self.compile_cache.save()
            self._compiles_saved = compiles

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
            token_budget=self.memory.cap(budget),
            # a task that stacks items unpadded buckets each length as itself
            length_ladder=self.length_ladder if task.pads else sorted(set(lengths)),
            batch_ladder=self._batch_ladder(max_batch),
            groups=[f.group for f in features],
            max_padding=task.max_padding,
        ):
            length = batch.bucket_length

            def run(positions: tuple[int, ...], length: int = length) -> None:
                self._run_batch(positions, features, length, params, rows)

            self.memory.run(batch.positions, length, run)
        self._save_compile_cache()
        return rows  # type: ignore[return-value]


def _name(bucket: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in bucket)


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
