"""pipejit: Hugging Face transformers pipelines, compiled, bucketed and length-sorted."""

from pipejit.engine.pipeline import Pipeline
from pipejit.engine.serve import MicroBatcher
from pipejit.factory import pipeline

__version__ = "0.1.0"
__all__ = ["MicroBatcher", "Pipeline", "__version__", "pipeline"]
