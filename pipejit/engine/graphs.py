"""CUDA graphs per (batch, length) bucket: a forward task's forward and ``reduce``, replayed.

Each captured bucket owns static input and output buffers; a batch is copied into
the inputs of the smallest captured bucket that holds its rows (the extra rows keep
earlier real rows, so they are valid inputs, and their outputs are dropped), the
call's tensors (label embeddings, target ids) into buffers of their own, the graph
is replayed, and the batch's own output rows are cloned out. All graphs of a
pipeline share one memory pool and one capture stream; ``capture_plan`` orders
buckets largest first, so the pool is sized once and smaller graphs reuse its blocks.
A batch past the largest graph bucket (or the token cap) runs compiled, unrecorded.

What is captured: the engine's step of a ``ForwardTask`` (forward plus ``reduce``),
which by the contract is tensor work on the buffers the engine owns, so a batch is
one replay and one small copy to the host. A graph freezes whatever Python did at
capture: ``reduce`` reads call parameters (``top_k``, ``function_to_apply``), so
graphs are keyed by the parameters as well as the shape; a call with other
parameters captures its own graphs (up to ``max_graphs`` in all). Step tasks
(decoding loops, host-driven passes) are never captured. A failed capture turns
graphs off for the pipeline, with one warning.

Why explicit ``torch.cuda.graph`` capture of the compiled module rather than
``torch.compile(mode="reduce-overhead")``. Reasoned from torch's sources, NOT
measured (this was written without a GPU; ``python -m pipejit.bench gpu-check``
measures the graphed engine against the ungraphed one):
- reduce-overhead graphs only the compiled region; the reduce would have to be
  compiled into the model call to be inside the graph.
- a replay here skips dynamo's guard checks and the cudagraph-tree wrapper's
  per-call work (input address checks, copies of non-static inputs, generation
  bookkeeping); at batch 1 that host time can be comparable to a small encoder's
  whole GPU time, which is what graphs are meant to hide.
- the engine chooses what is captured (largest first, lazily or at warmup), pads a
  batch up to a captured bucket, and counts captures, hits and fallbacks;
  reduce-overhead records a graph per distinct shape it meets, and its outputs are
  overwritten by the next replay unless every caller marks steps.
- a dynamic-shape compiled module serves every capture, so all buckets cost one or
  two compiles and a few milliseconds of capture each.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from pipejit.contract import Params, Tensors
from pipejit.engine.shapes import ShapePolicy
from pipejit.engine.stats import ModuleStats

# the engine's step of a forward task: (batch, call tensors, params) -> reduced per-row tensors
Step = Callable[[Tensors, Tensors, Params], Tensors]


def params_key(params: Params) -> Hashable | None:
    """A hashable form of a call's parameters, or None when one of them is unhashable."""
    try:
        key = (_freeze(params.preprocess), _freeze(params.postprocess))
        hash(key)
    except TypeError:
        return None
    return key


def _freeze(value: Any) -> Hashable:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, torch.Tensor):  # hashes by identity: a new capture per call
        raise TypeError("tensor parameter")
    return value


class Capture(Protocol):
    """How a step is warmed up and recorded: ``CudaCapture`` on a GPU; in CPU tests a
    stand-in that records the step's tensor operations and replays only them."""

    def warmup(self, step: Callable[[], Tensors]) -> None: ...

    def record(
        self, step: Callable[[], Tensors], buffers: Tensors
    ) -> tuple[Callable[[], None], Tensors]:
        """Record ``step``, which reads ``buffers`` (the static inputs the engine owns);
        returns the replay and the static outputs each replay overwrites."""
        ...


class CudaCapture:
    """Records steps as CUDA graphs into one memory pool, all on one capture stream."""

    def __init__(self, device: torch.device, warmup_runs: int = 2):
        self.device = device
        self.pool = torch.cuda.graph_pool_handle()
        # torch advises one stream for captures that share a pool
        self.stream = torch.cuda.Stream(device)
        self.warmup_runs = warmup_runs

    def warmup(self, step: Callable[[], Tensors]) -> None:
        """Run the step (compiling and autotuning it) on the capture stream, as torch advises."""
        current = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(current)
        with torch.cuda.stream(self.stream):
            for _ in range(self.warmup_runs):
                step()
        current.wait_stream(self.stream)

    def record(
        self, step: Callable[[], Tensors], buffers: Tensors
    ) -> tuple[Callable[[], None], Tensors]:
        # the graph reads ``buffers`` by address: the engine keeps them alive with the graph
        graph = torch.cuda.CUDAGraph()
        # thread_local: a serving thread pinning host memory meanwhile must not void the capture
        with torch.cuda.graph(
            graph, pool=self.pool, stream=self.stream, capture_error_mode="thread_local"
        ):
            outputs = step()
        return graph.replay, outputs


@dataclass
class _Graph:
    inputs: Tensors
    call: Tensors
    outputs: Tensors
    replay: Callable[[], None]
    rows: int


@dataclass
class GraphStats:
    """What the graph runner has done beyond the module's counts, for ``Pipeline.stats()``."""

    capture_seconds: dict[tuple[int, ...], float] = field(default_factory=dict)
    fallbacks: int = 0
    padded_rows: int = 0
    disabled: str | None = None


class GraphRunner:
    """Runs a forward task's batches as CUDA graph replays where a bucket is captured."""

    def __init__(
        self,
        step: Step,
        *,
        shapes: ShapePolicy,
        module_stats: ModuleStats,
        module_name: str,
        quiet: Callable[[], Any],
        compiled: Callable[[], bool],
        mode: bool | str = True,
        policy: str = "lazy",
        units_per_token: int = 1,
        max_graphs: int = 512,
        capture: Capture | None = None,
    ):
        self.step = step
        self.shapes = shapes
        self.module_stats = module_stats
        self.module_name = module_name
        self.quiet = quiet
        self.compiled = compiled
        self.mode = mode
        self.policy = policy
        self.batch_sizes = tuple(sorted(set(shapes.capture_sizes)))
        # the cap is in tokens; row costs are in the task's length units (audio: samples)
        self.max_units = shapes.capture_max_tokens * units_per_token
        self.max_graphs = max_graphs
        self.stats = GraphStats()
        self._capture = capture
        # (input signature, params key) -> {captured batch rows: graph}
        self._graphs: dict[Hashable, dict[int, _Graph]] = {}

    @property
    def active(self) -> bool:
        return self.stats.disabled is None

    @property
    def captured(self) -> list[tuple[int, ...]]:
        """The bucket shapes captured so far (batch and the first input's other axes)."""
        return sorted(
            (rows, *graph.inputs[next(iter(graph.inputs))].shape[1:])
            for family in self._graphs.values()
            for rows, graph in family.items()
        )

    def run(self, inputs: Tensors, call: Tensors, params: Params, row_cost: int) -> Tensors:
        """The step on a batch, replayed from a graph where one serves it.

        ``row_cost`` is one row's padded size (the bucket length, in the task's length
        units), for the token cap and the padding count.
        """
        rows = _rows(inputs)
        graph = self._graph_for(inputs, call, params, rows, row_cost)
        if graph is None:
            self.stats.fallbacks += 1
            return self.step(inputs, call, params)
        # the static buffers are inference tensors, written only inside inference mode
        with torch.inference_mode():
            for name, value in inputs.items():
                graph.inputs[name][:rows].copy_(value)
            for name, value in call.items():
                graph.call[name].copy_(value)
            graph.replay()
            # clones: the static outputs are overwritten by the next replay of any graph
            outputs = {name: value[:rows].clone() for name, value in graph.outputs.items()}
        self.module_stats.count(tuple(next(iter(graph.inputs.values())).shape))
        self.module_stats.replays += 1
        self.stats.padded_rows += graph.rows - rows
        self.module_stats.padded_tokens += (graph.rows - rows) * row_cost
        return outputs

    def capture_bucket(self, inputs: Tensors, call: Tensors, params: Params, row_cost: int) -> bool:
        """Capture the graph of exactly this batch's shape now (``Pipeline.warmup``)."""
        family = self._family(inputs, call, params)
        if family is None:
            return False
        rows = _rows(inputs)
        return rows in family or self._record(family, inputs, call, params, rows) is not None

    def _family(self, inputs: Tensors, call: Tensors, params: Params) -> dict[int, _Graph] | None:
        key = params_key(params)
        if not self.active or key is None:
            return None
        signature = tuple(
            (name, tuple(value.shape[1:]), value.dtype, value.device)
            for name, value in inputs.items()
        ) + tuple(
            (name, tuple(value.shape), value.dtype, value.device) for name, value in call.items()
        )
        return self._graphs.setdefault((signature, key), {})

    def _graph_for(
        self, inputs: Tensors, call: Tensors, params: Params, rows: int, row_cost: int
    ) -> _Graph | None:
        family = self._family(inputs, call, params)
        if family is None:
            return None
        captured = self.shapes.graph_batch(rows, sorted(family)) if family else None
        wanted = self.shapes.graph_batch(rows) if self.policy == "lazy" else None
        if wanted is not None and wanted * row_cost > self.max_units:
            wanted = None
        # a captured bucket serves unless a lazy capture would pad less
        if captured is not None and (wanted is None or captured <= wanted):
            return family[captured]
        if wanted is None:
            return None
        return self._record(family, inputs, call, params, wanted)

    def _record(
        self, family: dict[int, _Graph], inputs: Tensors, call: Tensors, params: Params, rows: int
    ) -> _Graph | None:
        if sum(len(f) for f in self._graphs.values()) >= self.max_graphs:
            return None
        with torch.inference_mode():
            static = {name: _pad_rows(value, rows) for name, value in inputs.items()}
            static_call = {name: value.clone() for name, value in call.items()}

        def step() -> Tensors:
            with self.quiet(), torch.inference_mode():
                return self.step(static, static_call, params)

        capture = self._capture or CudaCapture(next(iter(static.values())).device)
        self._capture = capture
        bucket = (rows, *next(iter(static.values())).shape[1:])
        try:
            capture.warmup(step)
            if self.mode == "auto" and not self.compiled():
                self._disable("the model did not compile (cuda_graphs='auto' needs compile)")
                return None
            start = time.perf_counter()
            replay, outputs = capture.record(step, {**static, **static_call})
        except Exception as error:  # noqa: BLE001 - any capture failure means: run ungraphed
            if _out_of_memory(error):
                raise torch.OutOfMemoryError(
                    f"out of memory capturing the CUDA graph of bucket {bucket}"
                ) from error
            self._disable(f"capture of bucket {bucket} failed ({type(error).__name__}: {error})")
            return None
        bad = [
            name
            for name, value in outputs.items()
            if not isinstance(value, torch.Tensor) or value.dim() == 0 or value.shape[0] != rows
        ]
        if bad:
            self._disable(f"the task's outputs {bad} are not per-row tensors")
            return None
        self.stats.capture_seconds[bucket] = time.perf_counter() - start
        self.module_stats.captures += 1
        graph = _Graph(static, static_call, outputs, replay, rows)
        family[rows] = graph
        return graph

    def _disable(self, reason: str) -> None:
        self.stats.disabled = reason
        self._graphs.clear()
        warnings.warn(
            f"CUDA graphs turned off for {self.module_name}: {reason[:300]}; "
            "running without graphs from now on. Pass cuda_graphs=False to skip capturing.",
            RuntimeWarning,
            stacklevel=4,
        )


def _rows(inputs: Tensors) -> int:
    return int(next(iter(inputs.values())).shape[0])


def _pad_rows(value: torch.Tensor, rows: int) -> torch.Tensor:
    """A fresh buffer of ``rows`` rows: ``value``'s rows, then copies of its first row."""
    extra = rows - value.shape[0]
    if extra == 0:
        return value.clone()
    return torch.cat([value, value[:1].expand(extra, *value.shape[1:])])


def _out_of_memory(error: BaseException | None) -> bool:
    """Whether ``error`` or an error it was raised from or during is an OOM (a capture's
    end can raise its own error while an OOM inside it propagates)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, torch.OutOfMemoryError):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False
