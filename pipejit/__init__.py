"""pipejit: Hugging Face transformers pipelines, compiled, bucketed and length-sorted."""

from pipejit.engine.mkl_kernels import use_intel_kernels

use_intel_kernels()  # before any GEMM runs: MKL keeps the kernels it picks at its first

from pipejit.engine.pipeline import Pipeline  # noqa: E402
from pipejit.engine.serve import MicroBatcher  # noqa: E402
from pipejit.factory import pipeline  # noqa: E402

__version__ = "0.1.0"
__all__ = ["MicroBatcher", "Pipeline", "__version__", "pipeline"]
