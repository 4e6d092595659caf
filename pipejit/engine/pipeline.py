"""The ``Pipeline`` object: preprocess -> schedule -> run -> postprocess, in input order.

One input returns one output, a list returns a list, and any other iterable
(generator, dataset, column) returns a generator that streams: inputs are read
one sort window at a time, so memory stays bounded and the first output waits
for at most one window. On a GPU, text tasks read one window ahead and tokenize it
while the current one runs (``pipejit.engine.read_ahead``).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch

from pipejit.contract import Features, ForwardTask, Params, Row, Task, Tensors
from pipejit.engine.collate import HostCopy, collate
from pipejit.engine.collector import collector_paused
from pipejit.engine.compile_cache import CompileCache
from pipejit.engine.config import EngineConfig, check_batch_size
from pipejit.engine.cpu_path import (
    CpuPathChoice,
    applies_to,
    measurement_key,
    optimize_for_cpu,
    time_sentence_gemms,
)
from pipejit.engine.graphs import GraphRunner
from pipejit.engine.isolation import run_each
from pipejit.engine.memory import Backoff
from pipejit.engine.modules import ModuleSet
from pipejit.engine.read_ahead import prepared_windows
from pipejit.engine.runner import precision
from pipejit.engine.scheduler import plan_batches, windows
from pipejit.engine.shapes import capture_plan
from pipejit.engine.stats import StageClock, bucket_name

if TYPE_CHECKING:
    from pipejit.engine.serve import MicroBatcher

ENGINE_CALL_OPTIONS = {"batch_size", "progress"}
# errors="raise": a list call raises at its first bad input; "return": each bad input's
# error (a ValueError or TypeError naming its index) takes its place among the answers.
ERROR_MODES = ("raise", "return")
# Iterables that are never a stream of inputs: streaming them would read bytes as ints,
# a text as characters, a dict as its keys, a set in no order.
NOT_STREAMS = (str, bytes, bytearray, memoryview, dict, set, frozenset)


class Pipeline:
    """A task on a model, run by the engine. Build it with ``pipejit.pipeline(...)``."""

    def __init__(self, task: Task, config: EngineConfig, task_defaults: dict[str, Any]):
        self.task = task
        self.config = config
        self.device = config.device
        self.shapes = config.shape_policy(task.length_ladder, task.max_length)
        if task.owns_model:
            task.prepare_model()
        self.compile_cache = (
            CompileCache(config.compile_cache) if config.compile_cache is not None else None
        )
        if self.compile_cache is not None:
            self.compile_cache.load(cpu=config.device.type == "cpu" and config.compile)
        self.cpu_path = self._choose_cpu_path()
        self.modules = ModuleSet(
            task,
            config,
            self.shapes,
            threads=self.cpu_path.threads if self.cpu_path is not None else None,
            # the CPU path's models are the pipeline's own and never change once compiled:
            # dynamo need not check their attributes before every call
            guard_modules=self.cpu_path is None,
            one_row_cpp=self._one_row_cpp(),
            one_row_linears=self._one_row_linears(),
            # its text models read a missing mask as every position attended
            unmasked_single_rows=self.cpu_path is not None,
            aot_folder=self.compile_cache.folder if self._ahead_of_time() else None,
        )
        self.memory = Backoff()
        self.clock = StageClock()
        self._compiles_saved = 0
        self.batch_size = config.batch_size
        self.max_batch_size = config.max_batch_size
        self.progress = config.progress
        self.task_defaults = task_defaults
        # audio at the model's rate, strings as image files where the model reads images
        self.limits = config.limits.reading(task.reference)
        self.graphs = self._graph_runner()
        # one dynamic graph and no CUDA graph take any length: a batch pads to its longest
        # item only, not up the ladder (which the user's or the task's own ladder overrides)
        self.exact_lengths = (
            isinstance(task, ForwardTask)
            and not self.shapes.static
            and self.graphs is None
            and config.length_buckets is None
            and task.length_ladder is None
        )
        # validate the pipeline's own defaults now, not at the first call
        task.parse_params(dict(task_defaults))

    def _choose_cpu_path(self) -> CpuPathChoice | None:
        """On a CPU, the measured fastest linears, attention and thread count for a text
        model (``pipejit.engine.cpu_path``), from the timings an earlier process kept in the
        compile cache where there are some; the model, which the pipeline loaded itself, is
        changed in place."""
        if not (self.config.cpu_path and self.task.owns_model and applies_to(self.task.model)):
            # a caller's own model object is not changed under it
            return None
        model, autocast, cache = self.task.model, self.config.autocast, self.compile_cache
        key = measurement_key(model, autocast) if cache is not None else ""
        before = cache.recall(key) if cache is not None else None
        choice = optimize_for_cpu(model, autocast=autocast, measured_before=before)[1]
        if cache is not None and choice.measured_ms and not choice.recalled:
            cache.remember(key, choice.measured_ms)
        if self.shapes.static and self.config.compile:
            # static compiles are one per bucket already: not one per thread count on top
            choice.threads = None
        return choice

    def _one_row_cpp(self) -> bool:
        """Whether one-row graphs compile all in C++ (see ``runner``): for the CPU path's
        measured fp32 models, under one dynamic graph for every length (not one compile per
        bucket), without a compile cache. Such a graph can hold oneDNN's packed weights, which
        inductor's cache cannot pickle: each process would compile it again (measured on a
        2-core Zen 3, a distilbert-size classifier's first one-row call in a warm start took
        58-64 s this way, 5-9 s on the cached graph)."""
        return (
            self.compile_cache is None
            and self._fp32_cpu_path_dynamic()
            and bool(self.cpu_path.measured_ms)
        )

    def _one_row_linears(self) -> str:
        """The library GEMM and weight layout of the one-row all-C++ graphs: those that ran a
        sentence's linears faster (``cpu_path.time_sentence_gemms``), timed only where such
        graphs compile."""
        if not (self.config.compile and self._one_row_cpp()):
            return "onednn"
        self.cpu_path.sentence_gemm_ms = time_sentence_gemms(self.task.model)
        return self.cpu_path.sentence_linears()

    def _ahead_of_time(self) -> bool:
        """Whether batches run from an ahead-of-time package in the compile cache
        (``pipejit.engine.aot_graph``): for the CPU path's fp32 text models under one
        dynamic graph, where a cache keeps what the next process starts from."""
        return (
            self.compile_cache is not None and self.config.compile and self._fp32_cpu_path_dynamic()
        )

    def _fp32_cpu_path_dynamic(self) -> bool:
        """Whether the CPU path runs the model in fp32 under one dynamic graph: what both the
        one-row all-C++ graphs and the ahead-of-time packages are built for."""
        return (
            self.cpu_path is not None
            and self.config.autocast is None
            and next(self.task.model.parameters()).dtype == torch.float32
            and not self.shapes.static
        )

    def _graph_runner(self) -> GraphRunner | None:
        """CUDA graphs for a capturable forward task, where the configuration wants them."""
        task = self.task
        if self.config.graph_mode is True and not task.capturable:
            raise ValueError(
                f"{task.name} on {type(task.model).__name__} runs a step a CUDA graph cannot "
                "hold (a decoding loop, or shapes read on the host); pass cuda_graphs='auto' "
                "or False"
            )
        if not (self.config.cuda_graphs and task.capturable):
            return None
        runner = self.modules.runner("model")
        return GraphRunner(
            self._forward_step,
            shapes=self.shapes,
            module_stats=self.modules.stats["model"],
            module_name=type(runner.model).__name__,
            quiet=runner.quiet,
            compiled=lambda: runner.compiled,
            mode=self.config.graph_mode,
            policy=self.config.graph_capture,
            units_per_token=task.units_per_token,
        )

    @property
    def model(self) -> torch.nn.Module:
        return self.task.model

    @property
    def tokenizer(self):
        return self.task.tokenizer

    def __call__(self, inputs: Any = None, *args: Any, **kwargs: Any) -> Any:
        inputs = self.task.normalize_call(inputs, args, kwargs)
        batch_size = check_batch_size(kwargs.pop("batch_size", self.batch_size))
        progress = kwargs.pop("progress", self.progress)
        errors = kwargs.pop("errors", "raise")
        if errors not in ERROR_MODES:
            raise ValueError(f"errors must be one of {ERROR_MODES}, got {errors!r}")
        params = self.task.parse_params({**self.task_defaults, **kwargs})
        if inputs is None:
            raise ValueError(f"{self.task.name} received None as input")
        if self.task.is_single(inputs):
            (output,) = self._run_window([inputs], params, batch_size, first_index=None)
            return self.task.format_single(output, inputs, kwargs)
        if isinstance(inputs, (list, tuple)):
            stream = self._stream(inputs, params, batch_size, progress, len(inputs), errors)
            return self.task.format_list(list(stream), list(inputs), kwargs)
        if isinstance(inputs, NOT_STREAMS) or not (
            isinstance(inputs, Iterable) or _indexable(inputs)
        ):
            raise ValueError(
                f"{self.task.name} takes one input, a list or an iterable of inputs, "
                f"got {type(inputs).__name__}"
            )
        total = len(inputs) if hasattr(inputs, "__len__") else None
        return self._stream(_iterate(inputs), params, batch_size, progress, total, errors)

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
        lengths = list(lengths) if lengths is not None else list(self.shapes.lengths)
        graphs = self.graphs if self.graphs is not None and self.graphs.active else None
        default_sizes = graphs.batch_sizes if graphs is not None else (1,)
        sizes = list(batch_sizes) if batch_sizes is not None else list(default_sizes)
        if graphs is None:
            plan = [(size, length) for length in lengths for size in sizes]
        else:
            # sizes asked for explicitly are captured even past the token cap
            cap = graphs.max_units if batch_sizes is None else math.inf
            plan = capture_plan(lengths, sizes, cap)
        params = self.task.parse_params(dict(self.task_defaults))
        call = self._call_tensors(params)
        for size, length in plan:
            if not self.memory.allows(size, length):
                continue
            item = self.task.dummy_features(length)
            batch = self._collate([item] * size, length)
            try:
                if graphs is not None:
                    graphs.capture_bucket(batch, call, params, length)
                else:
                    # the task's whole step: decoding tasks compile more than the forward
                    self._execute(batch, call, params, length)
            except torch.OutOfMemoryError:
                self.memory.record(size, length)
        self._save_compile_cache()
        return self.stats()

    def stats(self) -> dict[str, Any]:
        """What every module did (compiles, batches, tokens, decode steps, captures and
        replays), summed at the top level and per module under ``"modules"``, with the
        graph runner's and the OOM backoff's counts, and the host's seconds in each stage
        of the calls under ``"stage_seconds"`` (``pipejit.engine.stats.StageClock``)."""
        per_module = self.modules.stats
        # batches and tokens are counted on the module each batch enters (the first
        # declared); compiles, decode steps, captures and replays on every module
        entry = next(iter(per_module.values()))
        total = {
            "batches": entry.batches,
            "real_tokens": entry.real_tokens,
            "padded_tokens": entry.padded_tokens,
            "decode_steps": sum(m.decode_steps for m in per_module.values()),
        }
        compile_seconds: dict[str, float] = {}
        buckets: set[tuple[int, ...]] = set()
        for name, module in per_module.items():
            buckets |= module.buckets
            prefix = "" if len(per_module) == 1 else f"{name}:"
            for bucket, seconds in module.compile_seconds.items():
                compile_seconds[prefix + bucket_name(bucket)] = round(seconds, 3)
        failed = [m.compile_failed for m in per_module.values() if m.compile_failed]
        g = self.graphs.stats if self.graphs is not None else None
        padded = total["padded_tokens"]
        return {
            "compiled": any(
                self.modules.compiles(name) and not module.compile_failed
                for name, module in per_module.items()
            ),
            "buckets": sorted(buckets),
            "compiles": len(compile_seconds),
            "compile_seconds": compile_seconds,
            **total,
            "padding_ratio": 1 - total["real_tokens"] / padded if padded else 0.0,
            "compile_failed": failed[0] if failed else None,
            "cuda_graphs": self.graphs is not None and self.graphs.active,
            "graphs_disabled": g.disabled if g is not None else None,
            "captures": sum(m.captures for m in per_module.values()),
            "captured_buckets": self.graphs.captured if self.graphs is not None else [],
            "capture_seconds": (
                {bucket_name(b): round(t, 4) for b, t in g.capture_seconds.items()} if g else {}
            ),
            "graph_hits": sum(m.replays for m in per_module.values()),
            "graph_fallbacks": g.fallbacks if g is not None else 0,
            "graph_padded_rows": g.padded_rows if g is not None else 0,
            "cpu_path": self.cpu_path.to_dict() if self.cpu_path is not None else None,
            "oom_splits": self.memory.splits,
            "oom_token_limit": self.memory.limit,
            "stage_seconds": self.clock.report(),
            "modules": {name: module.report() for name, module in per_module.items()},
        }

    def _stream(
        self,
        items: Iterable[Any],
        params: Params,
        batch_size: int | None,
        progress: bool,
        total: int | None,
        errors: str = "raise",
    ) -> Iterator[Any]:
        bar = _progress_bar(progress, total, self.task.name)
        chunks = windows(items, self.config.sort_window)
        if errors == "return":  # each input is preprocessed on its own, in its window's run
            ahead, prepare = False, lambda window, first: None
        else:
            ahead = self._prepares_ahead()

            def prepare(window: list[Any], first: int) -> tuple[list[Features], list[int]]:
                return self._preprocess(window, params, first)

        for first, window, prepared in prepared_windows(chunks, prepare, ahead):
            if errors == "return":
                yield from self._run_each(window, params, first_index=first)
            else:
                yield from self._run_window(window, params, batch_size, first, prepared)
            if bar is not None:
                bar.update(len(window))
        if bar is not None:
            bar.close()

    def _prepares_ahead(self) -> bool:
        """Whether a stream's next sort window is preprocessed on a worker thread while the
        current one runs (``pipejit.engine.read_ahead``): on a GPU, whose batches leave the
        host waiting, for a task whose preprocessing shares nothing with its batches and
        post-processing (``Task.prepares_ahead``)."""
        return self.device.type == "cuda" and self.task.prepares_ahead

    def _run_window(
        self,
        items: list[Any],
        params: Params,
        batch_size: int | None,
        first_index: int | None,
        prepared: tuple[list[Features], list[int]] | None = None,
    ) -> list[Any]:
        """Run one sort window; ``first_index`` numbers its inputs in errors (None: one input).
        ``prepared``: its features and their owners, where it was preprocessed already."""
        features, owners = prepared or self._preprocess(items, params, first_index)
        rows = self._forward(features, params, batch_size)
        start = time.perf_counter()
        grouped: list[list[int]] = [[] for _ in items]
        for position, owner in enumerate(owners):
            grouped[owner].append(position)
        with collector_paused():
            outputs = [
                self.task.postprocess(
                    item, [features[p] for p in positions], [rows[p] for p in positions], params
                )
                for item, positions in zip(items, grouped)
            ]
        self.clock.add("postprocess", start)
        return outputs

    def _run_each(self, items: list[Any], params: Params, first_index: int) -> list[Any]:
        """One window whose bad inputs each get their own error, numbered, in their place."""
        results = run_each(self, items, params)
        return [
            _numbered(result, first_index + index) if isinstance(result, Exception) else result
            for index, result in enumerate(results)
        ]

    def _preprocess(
        self, items: list[Any], params: Params, first_index: int | None
    ) -> tuple[list[Features], list[int]]:
        start = time.perf_counter()
        features: list[Features] = []
        owners: list[int] = []
        for index, item in enumerate(items):  # the limits first: they bound what is prepared
            with _numbered_errors(first_index, index):
                self.limits.check(item)
        for index, chunks in enumerate(self.task.preprocess_many(items, params)):
            with _numbered_errors(first_index, index):
                if isinstance(chunks, Exception):
                    raise chunks
                for chunk in chunks:
                    self._check_length(chunk)
            features.extend(chunks)
            owners.extend([index] * len(chunks))
        self.clock.add("preprocess", start)
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

    def _collate(self, members: list[Features], length: int) -> Tensors:
        task = self.task
        return collate(
            members, length if task.pads else None, task.pad_values, self.device, task.padding_side
        )

    def _call_tensors(self, params: Params) -> Tensors:
        """The call's own tensors of a forward task, computed once under the precision."""
        if not isinstance(self.task, ForwardTask):
            return {}
        with torch.inference_mode(), precision(self.config.autocast, self.device):
            return self.task.call_tensors(params)

    def _forward_step(self, inputs: Tensors, call: Tensors, params: Params) -> Tensors:
        """A forward task's step: its module on the batch, then its ``reduce``, both
        under the pipeline's precision (the step a CUDA graph records)."""
        task: ForwardTask = self.task  # type: ignore[assignment]
        outputs = self.modules.forward("model", task.forward_inputs(inputs, call))
        with torch.inference_mode(), precision(self.config.autocast, self.device):
            return task.reduce(outputs, {**inputs, **call}, params)

    def _execute(
        self, inputs: Tensors, call: Tensors, params: Params, length: int
    ) -> Tensors | list[Row]:
        """One collated batch through the task's step: a graph replay where one serves it."""
        if not isinstance(self.task, ForwardTask):
            return self.task.run(self.modules, inputs, params)
        if self.graphs is not None:
            return self.graphs.run(inputs, call, params, length)
        return self._forward_step(inputs, call, params)

    def _launch_batch(
        self,
        positions: tuple[int, ...],
        features: list[Features],
        length: int,
        call: Tensors,
        params: Params,
    ) -> Callable[[], list[Row]]:
        """One batch collated and run; returns what reads its reduced rows on the host, in
        batch order. On a GPU the rows are still on their way when this returns: the
        caller launches the next batch before it reads them."""
        start = time.perf_counter()
        members = [features[p] for p in positions]
        inputs = self._collate(members, length)
        start = self.clock.add("collate", start)
        reduced = self._execute(inputs, call, params, length)
        stats = next(iter(self.modules.stats.values()))  # the module batches enter
        stats.real_tokens += sum(f.length for f in members)
        stats.padded_tokens += len(positions) * length
        if isinstance(reduced, list):  # a step task that finished its rows on the host
            self.clock.add("launch", start)
            return lambda: reduced
        copy = HostCopy(reduced)
        self.clock.add("launch", start)

        def read() -> list[Row]:
            start = time.perf_counter()
            host = copy.wait()
            self.clock.add("read", start)
            return [{k: v[row] for k, v in host.items()} for row in range(len(positions))]

        return read

    def _save_compile_cache(self) -> None:
        """Write new compile artifacts to the persistent cache after compiles."""
        compiles = sum(len(m.compile_seconds) for m in self.modules.stats.values())
        if self.compile_cache is not None and compiles > self._compiles_saved:
            self.compile_cache.save()
            self._compiles_saved = compiles

    def _forward(
        self, features: list[Features], params: Params, batch_size: int | None
    ) -> list[Row]:
        """Run the model items in length-sorted bucketed batches; rows come back in item order.
        Each batch's rows are read once the next batch is launched (``_launch_batch``).

        With ``batch_size`` auto, batches fill the token budget; with an explicit
        ``batch_size`` they hold that many items, within ``token_budget`` if one was set.
        """
        task = self.task
        token_budget = self.config.token_budget
        if batch_size is None:
            max_batch = self.max_batch_size
            budget = (token_budget or self.config.auto_token_budget) * task.units_per_token
        else:
            max_batch = batch_size
            budget = (token_budget or 0) * task.units_per_token
            budget = budget or batch_size * task.max_length
        lengths = [f.length for f in features]
        rows: list[Row | None] = [None] * len(features)
        call = self._call_tensors(params) if features else {}
        in_flight: list[tuple[tuple[int, ...], Callable[[], list[Row]]]] = []

        def store(positions: tuple[int, ...], read: Callable[[], list[Row]]) -> None:
            for position, row in zip(positions, read()):
                rows[position] = row

        for batch in plan_batches(
            lengths,
            max_batch_size=max_batch,
            token_budget=self.memory.cap(budget),
            length_ladder=self.shapes.item_lengths(lengths, task.pads and not self.exact_lengths),
            batch_ladder=self.shapes.batch_steps(max_batch),
            groups=[f.group for f in features],
            max_padding=task.max_padding,
        ):
            length = batch.bucket_length

            def run(positions: tuple[int, ...], length: int = length) -> None:
                read = self._launch_batch(positions, features, length, call, params)
                in_flight.append((positions, read))
                if len(in_flight) > 1:  # the batch before is read once this one is launched
                    store(*in_flight.pop(0))

            self.memory.run(batch.positions, length, run)
        if in_flight:
            store(*in_flight.pop())
        self._save_compile_cache()
        return rows  # type: ignore[return-value]


def _numbered(error: Exception, index: int) -> Exception:
    """A ValueError or TypeError whose message starts with its input's index."""
    if not isinstance(error, (ValueError, TypeError)):
        return error
    numbered = type(error)(f"input {index}: {error}")
    numbered.__cause__ = error
    return numbered


@contextlib.contextmanager
def _numbered_errors(first_index: int | None, index: int) -> Iterator[None]:
    """A ValueError or TypeError raised inside names its input (``first_index`` None: the
    call had one input, whose error goes out as it is)."""
    try:
        yield
    except (ValueError, TypeError) as error:
        if first_index is None:
            raise
        raise _numbered(error, first_index + index) from error


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
