"""pipejit: Hugging Face transformers pipelines, compiled, bucketed and length-sorted."""

from pipejit.engine.arena_cache import keep_freed_arenas
from pipejit.engine.mkl_kernels import use_intel_kernels

use_intel_kernels()  # before any GEMM runs: MKL keeps the kernels it picks at its first
keep_freed_arenas()  # outputs' objects reuse the arenas of those freed before them

from pipejit.engine.pipeline import Pipeline  # noqa: E402
from pipejit.engine.serve import MicroBatcher  # noqa: E402
from pipejit.factory import pipeline  # noqa: E402

__version__ = "0.1.0"
__all__ = ["MicroBatcher", "Pipeline", "__version__", "pipeline"]
