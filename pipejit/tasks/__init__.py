"""The tasks pipejit serves, by name: one module each.

Several classes may serve one task name for different model families (speech
recognition by CTC or by an encoder-decoder); each says which models it
serves, and the first that serves the loaded model runs it.
"""

from __future__ import annotations

from transformers import Pipeline as ReferencePipeline

from pipejit.tasks.base import Task
from pipejit.tasks.feature_extraction import FeatureExtraction
from pipejit.tasks.fill_mask import FillMask
from pipejit.tasks.text_classification import TextClassification
from pipejit.tasks.text_generation import TextGeneration
from pipejit.tasks.token_classification import TokenClassification
from pipejit.tasks.zero_shot_classification import ZeroShotClassification

TASK_CLASSES: tuple[type[Task], ...] = (
    TextClassification,
    TokenClassification,
    FillMask,
    FeatureExtraction,
    ZeroShotClassification,
    TextGeneration,
)
TASKS: dict[str, list[type[Task]]] = {}
for _cls in TASK_CLASSES:
    TASKS.setdefault(_cls.name, []).append(_cls)
ALIASES: dict[str, str] = {alias: cls.name for cls in TASK_CLASSES for alias in cls.aliases}


def resolve_task(name: str) -> str:
    """The canonical name of a task name or alias; an unknown name lists the supported ones."""
    canonical = ALIASES.get(name, name)
    if canonical not in TASKS:
        supported = sorted(TASKS) + sorted(ALIASES)
        raise ValueError(f"unsupported task {name!r}; pipejit supports {supported}")
    return canonical


def build_task(name: str, reference: ReferencePipeline) -> Task:
    """The task object of ``name`` for the reference pipeline's model."""
    for cls in TASKS[resolve_task(name)]:
        if cls.serves(reference.model):
            return cls(reference)
    raise ValueError(f"pipejit's {name} does not serve {type(reference.model).__name__} models yet")
