"""How a batch runs: eager, or ``torch.compile`` per bucket shape or once for all shapes.

``shapes="static"``: dynamo keys its compiled graphs by input shape, so each
(batch, length) bucket compiles once and is reused from then on, with kernels
specialised to it. The recompile limit is raised to the number of buckets the
pipeline may see, so no bucket silently falls back to eager.

``shapes="dynamic"``: batch and length are marked dynamic, so one graph serves
every bucket (batch 1 gets its own, as dynamo specialises sizes of 1); only
``dynamic_dims`` are marked (batch and length; batch alone for unpadded items). On a CPU,
where each static compile of a distilbert-size model costs about 10 s and the
matrix multiplies run the same library kernels either way, this keeps warmup to
one or two compiles while the bucket ladder can stay fine enough to pad little.

A model that fails to compile runs eager, with one warning.

CUDA graphs (``pipejit.engine.graphs``) call ``forward`` inside ``quiet()`` for
their warmups and captures, so that only real batches are counted.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

# Backends are names torch.compile knows, or callables(graph_module, example_inputs).
Backend = str | Callable[..., Any]
SHAPES = ("static", "dynamic")


@dataclass
class RunnerStats:
    """What the runner has done, for ``Pipeline.stats()``."""

    buckets: set[tuple[int, int]] = field(default_factory=set)
    compile_seconds: dict[tuple[int, int], float] = field(default_factory=dict)
    batches: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0
    compile_failed: str | None = None
    cpu_path: Any = None  # what pipejit.engine.cpu_path chose (a CpuPathChoice)


class Runner:
    """Runs a model forward on padded batches, compiled per bucket or eager."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        compile: bool,
        shapes: str = "static",
        backend: Backend = "inductor",
        mode: str | None = None,
        max_buckets: int = 64,
        autocast: torch.dtype | None = None,
        model_kwargs: dict[str, Any] | None = None,
        dynamic_dims: tuple[int, ...] = (0, 1),
    ):
        self.model = model
        self.model_kwargs = dict(model_kwargs or {})
        self.autocast = autocast
        self.max_buckets = max_buckets
        # kept for tasks that compile a function of their own (a decode step)
        self.backend = backend
        self.mode = mode
        if shapes not in SHAPES:
            raise ValueError(f"shapes must be one of {SHAPES}, got {shapes!r}")
        self.dynamic = shapes == "dynamic"
        self.dynamic_dims = dynamic_dims
        self.stats = RunnerStats()
        self._graph_keys: set[tuple[int, ...]] = set()
        self._counting = True
        self._compiled = (
            torch.compile(
                model, dynamic=None if self.dynamic else False, backend=backend, mode=mode
            )
            if compile
            else None
        )

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    def __call__(self, inputs: dict[str, torch.Tensor]) -> Any:
        if self._counting:
            self.count(tuple(next(iter(inputs.values())).shape))
        return self.forward(inputs)

    def count(self, shape: tuple[int, ...]) -> None:
        """Count one batch run at ``shape`` (graph replays count themselves through this)."""
        self.stats.buckets.add(shape)
        self.stats.batches += 1

    @contextlib.contextmanager
    def quiet(self):
        """Forwards inside are not counted as batches: graph warmups and captures."""
        counting, self._counting = self._counting, False
        try:
            yield
        finally:
            self._counting = counting

    def forward(self, inputs: dict[str, torch.Tensor]) -> Any:
        """The model on one batch, compiled or eager, without counting it."""
        shape = tuple(next(iter(inputs.values())).shape)
        key = self._graph_key(shape)
        first = key not in self._graph_keys
        self._graph_keys.add(key)
        with torch.inference_mode(), self._autocast(inputs):
            if self._compiled is None:
                return self.model(**inputs, **self.model_kwargs)
            return self._run_compiled(shape, inputs, first)

    def _run_compiled(
        self, shape: tuple[int, int], inputs: dict[str, torch.Tensor], first: bool
    ) -> Any:
        start = time.perf_counter()
        if self.dynamic:
            for tensor in inputs.values():
                for dim in self.dynamic_dims:
                    if dim < tensor.dim() and tensor.shape[dim] > 1:
                        torch._dynamo.mark_dynamic(tensor, dim)
        try:
            with _recompile_limit(self.max_buckets):
                outputs = self._compiled(**inputs, **self.model_kwargs)
        except torch.OutOfMemoryError:
            raise
        except Exception as error:  # noqa: BLE001 - any compiler failure means: run eager
            self._compiled = None
            self.stats.compile_failed = f"{type(error).__name__}: {error}"
            warnings.warn(
                f"torch.compile failed for {type(self.model).__name__} "
                f"({type(error).__name__}: {str(error)[:200]}); running eager from now on. "
                "Pass compile=False to skip compiling.",
                RuntimeWarning,
                stacklevel=4,
            )
            return self.model(**inputs, **self.model_kwargs)
        if first:
            self.stats.compile_seconds[shape] = time.perf_counter() - start
        return outputs

    def _graph_key(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shapes that share one compiled graph share a key: the shape itself when
        static; when dynamic, only whether the batch is a single row."""
        return (min(shape[0], 2),) if self.dynamic else shape

    def _autocast(self, inputs: dict[str, torch.Tensor]):
        if self.autocast is None:
            return contextlib.nullcontext()
        device = next(iter(inputs.values())).device.type
        # Autocast's cache of cast weights would be freed after a capture while the graph
        # still reads it, so a capture casts inside the graph instead.
        capturing = device == "cuda" and torch.cuda.is_current_stream_capturing()
        return torch.autocast(device_type=device, dtype=self.autocast, cache_enabled=not capturing)


def _recompile_limit(limit: int):
    """Let dynamo keep one graph per bucket (its default keeps 8 per function)."""
    config = torch.compiler.config
    if not hasattr(config, "recompile_limit"):  # older torch keeps it with dynamo
        config = torch._dynamo.config
    return config.patch(recompile_limit=max(limit, config.recompile_limit))
