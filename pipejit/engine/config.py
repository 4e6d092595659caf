"""The engine's configuration: built and validated once, from ``pipeline()``'s keywords."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from pipejit.engine.input_limits import InputLimits
from pipejit.engine.shapes import (
    DEFAULT_GRAPH_BATCHES,
    DEFAULT_GRAPH_MAX_TOKENS,
    POWERS_OF_TWO,
    ShapePolicy,
    length_ladder,
    make_ladder,
)

SHAPES = ("static", "dynamic")
GRAPH_MODES = (True, False, "auto")
CAPTURE_POLICIES = ("lazy", "warmup")
AUTOCAST_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}
# ``dtype=`` as transformers takes it: the weights' dtype, or "auto" for the checkpoint's.
WEIGHT_DTYPES = {"float32": torch.float32, **AUTOCAST_DTYPES}
# torch.compile modes that record CUDA graphs of their own: they and pipejit's graphs
# would capture the same work twice.
GRAPHING_COMPILE_MODES = ("reduce-overhead", "max-autotune")
# Tokens per batch when batch_size is auto: enough rows for efficient GEMMs on a
# CPU, enough to fill a GPU's SMs without a long tail of padding.
AUTO_TOKEN_BUDGET = {"cpu": 2048, "cuda": 32768}
# Compiled shapes: one dynamic graph serves all buckets. On a CPU a static compile per
# bucket costs about 10 s and gains nothing. On CUDA the explicit graph captures fix
# every shape anyway (pipejit.engine.graphs), so one compile plus a capture per bucket
# replaces a compile per bucket; dynamic kernels against per-bucket ones is not yet
# measured on a GPU.
DEFAULT_SHAPES = {"cpu": "dynamic", "cuda": "dynamic"}


@dataclass(frozen=True)
class EngineConfig:
    """Every engine option, checked; ``build`` is the one place they are validated."""

    device: torch.device
    compile: bool
    shapes: str
    backend: Any
    compile_mode: str | None
    dtype: torch.dtype | str | None
    autocast: torch.dtype | None
    cuda_graphs: bool
    graph_mode: bool | str
    graph_capture: str
    graph_batch_sizes: tuple[int, ...]
    graph_max_tokens: int
    batch_size: int | None
    token_budget: int | None
    max_batch_size: int
    length_buckets: tuple[int, ...] | None
    batch_buckets: tuple[int, ...] | None
    sort_window: int
    progress: bool
    compile_cache: str | os.PathLike | None
    limits: InputLimits
    cpu_path: bool

    @classmethod
    def build(
        cls,
        device: torch.device,
        *,
        compile: bool = True,
        shapes: str | None = None,
        compile_backend: Any = "inductor",
        compile_mode: str | None = None,
        dtype: str | torch.dtype | None = None,
        autocast: str | torch.dtype | None = None,
        cuda_graphs: bool | str = "auto",
        graph_capture: str = "lazy",
        graph_batch_sizes: tuple[int, ...] = DEFAULT_GRAPH_BATCHES,
        graph_max_tokens: int = DEFAULT_GRAPH_MAX_TOKENS,
        batch_size: int | str | None = None,
        token_budget: int | None = None,
        max_batch_size: int = 256,
        length_buckets: tuple[int, ...] | None = None,
        batch_buckets: tuple[int, ...] | None = None,
        sort_window: int = 512,
        progress: bool = False,
        compile_cache: str | os.PathLike | None = None,
        limits: InputLimits | None = None,
        cpu_path: bool = True,
    ) -> EngineConfig:
        for name, flag in (("compile", compile), ("cpu_path", cpu_path)):
            if not isinstance(flag, bool):
                raise ValueError(f"{name} must be True or False, got {flag!r}")
        shapes = shapes or DEFAULT_SHAPES.get(device.type, "static")
        if shapes not in SHAPES:
            raise ValueError(f"shapes must be one of {SHAPES}, got {shapes!r}")
        weights = resolve_dtype(dtype)
        autocast = resolve_autocast(autocast)
        if autocast is not None and weights in AUTOCAST_DTYPES.values():
            raise ValueError(
                f"autocast={autocast} runs fp32 weights in half precision, but dtype={dtype!r} "
                "already casts the weights; pass one of them"
            )
        if not isinstance(cuda_graphs, (bool, str)) or cuda_graphs not in GRAPH_MODES:
            raise ValueError(f"cuda_graphs must be one of {GRAPH_MODES}, got {cuda_graphs!r}")
        if cuda_graphs is True and device.type != "cuda":
            raise ValueError(
                f"cuda_graphs=True needs a CUDA device, got device={str(device)!r}; "
                "pass device='cuda' or cuda_graphs='auto'"
            )
        if graph_capture not in CAPTURE_POLICIES:
            raise ValueError(
                f"graph_capture must be one of {CAPTURE_POLICIES}, got {graph_capture!r}"
            )
        graph_sizes = _positive_ints("graph_batch_sizes", graph_batch_sizes)
        _positive_int("graph_max_tokens", graph_max_tokens)
        wants_graphs = cuda_graphs is True or (
            cuda_graphs == "auto" and compile and device.type == "cuda"
        )
        if wants_graphs and compile and compile_mode in GRAPHING_COMPILE_MODES:
            if cuda_graphs is True:
                raise ValueError(
                    f"compile_mode={compile_mode!r} records CUDA graphs of its own, and so does "
                    "cuda_graphs=True; pass cuda_graphs=False with that mode, or leave "
                    "compile_mode unset to use pipejit's graphs"
                )
            wants_graphs = False  # "auto" leaves the graphs to the compile mode
        return cls(
            device=device,
            compile=compile,
            shapes=shapes,
            backend=compile_backend,
            compile_mode=compile_mode,
            dtype=weights,
            autocast=autocast,
            cuda_graphs=wants_graphs,
            graph_mode=cuda_graphs,
            graph_capture=graph_capture,
            graph_batch_sizes=graph_sizes,
            graph_max_tokens=graph_max_tokens,
            batch_size=check_batch_size(batch_size),
            token_budget=None
            if token_budget is None
            else _positive_int("token_budget", token_budget),
            max_batch_size=_positive_int("max_batch_size", max_batch_size),
            length_buckets=None
            if length_buckets is None
            else _positive_ints("length_buckets", length_buckets),
            batch_buckets=None
            if batch_buckets is None
            else _positive_ints("batch_buckets", batch_buckets),
            sort_window=_positive_int("sort_window", sort_window),
            progress=bool(progress),
            compile_cache=compile_cache if compile else None,
            limits=limits or InputLimits(),
            cpu_path=cpu_path and device.type == "cpu",
        )

    @property
    def auto_token_budget(self) -> int:
        return AUTO_TOKEN_BUDGET.get(self.device.type, 8192)

    def shape_policy(self, task_ladder: tuple[int, ...] | None, max_length: int) -> ShapePolicy:
        """The pipeline's shapes: the task's ladder or the engine's, capped at the task's
        maximum; the batch ladder as given, else every size under one dynamic graph and
        powers of two under per-shape compiles."""
        static = self.shapes == "static"
        if task_ladder is not None:
            lengths = make_ladder(task_ladder, cap=max_length)
        elif self.length_buckets is not None:
            lengths = make_ladder(self.length_buckets, cap=max_length)
        else:
            lengths = make_ladder(length_ladder(min(max_length, 4096)), cap=max_length)
        batches = self.batch_buckets
        if batches is None and static and self.compile:
            batches = POWERS_OF_TWO
        return ShapePolicy(
            lengths=lengths,
            batches=batches,
            static=static,
            compiled=self.compile,
            capture_sizes=self.graph_batch_sizes,
            capture_max_tokens=self.graph_max_tokens,
        )


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | str | None:
    """The weights' dtype for transformers: None (its default), "auto", or a float dtype."""
    if dtype is None or dtype == "auto" or dtype in WEIGHT_DTYPES.values():
        return dtype
    if dtype not in WEIGHT_DTYPES:
        raise ValueError(
            f"dtype must be one of {sorted(WEIGHT_DTYPES)}, 'auto', a torch float dtype or "
            f"None, got {dtype!r}"
        )
    return WEIGHT_DTYPES[dtype]


def resolve_autocast(autocast: str | torch.dtype | None) -> torch.dtype | None:
    """``None`` (no autocast), or the half dtype the forward runs under."""
    if autocast is None or autocast in AUTOCAST_DTYPES.values():
        return autocast
    if autocast not in AUTOCAST_DTYPES:
        raise ValueError(
            f"autocast must be one of {sorted(AUTOCAST_DTYPES)} or None, got {autocast!r}"
        )
    return AUTOCAST_DTYPES[autocast]


def check_batch_size(batch_size: Any) -> int | None:
    """None for automatic batches (``None`` or ``"auto"``), else a positive int."""
    if batch_size is None or batch_size == "auto":
        return None
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, 'auto' or None, got {batch_size!r}")
    return batch_size


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _positive_ints(name: str, values: Any) -> tuple[int, ...]:
    try:
        steps = tuple(values)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of positive ints, got {values!r}") from None
    if not steps or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in steps
    ):
        raise ValueError(f"{name} must be a sequence of positive ints, got {values!r}")
    return tuple(sorted(set(steps)))
