"""The tasks pipejit serves, by name: one module each."""

from __future__ import annotations

from pipejit.tasks.base import Task
from pipejit.tasks.feature_extraction import FeatureExtraction
from pipejit.tasks.fill_mask import FillMask
from pipejit.tasks.text_classification import TextClassification
from pipejit.tasks.token_classification import TokenClassification
from pipejit.tasks.zero_shot_classification import ZeroShotClassification

TASKS: dict[str, type[Task]] = {
    cls.name: cls
    for cls in (
        TextClassification,
        TokenClassification,
        FillMask,
        FeatureExtraction,
        ZeroShotClassification,
    )
}
ALIASES: dict[str, str] = {alias: cls.name for cls in TASKS.values() for alias in cls.aliases}


def resolve_task(name: str) -> type[Task]:
    """The task class for a name or alias; an unknown name lists the supported ones."""
    canonical = ALIASES.get(name, name)
    if canonical not in TASKS:
        supported = sorted(TASKS) + sorted(ALIASES)
        raise ValueError(f"unsupported task {name!r}; pipejit supports {supported}")
    return TASKS[canonical]
