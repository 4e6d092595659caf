"""``function_to_apply`` for classification tasks: parsing it, and transformers' default."""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

FUNCTIONS = ("softmax", "sigmoid", "none")


def function_name(function: Any) -> str:
    """``function_to_apply`` as a name: a string in any case, or transformers' enum."""
    name = str(getattr(function, "value", function)).lower()
    if name not in FUNCTIONS:
        raise ValueError(f"function_to_apply must be one of {FUNCTIONS}, got {function!r}")
    return name


def default_function(config: PretrainedConfig) -> str:
    """transformers' choice when ``function_to_apply`` is not given, from the model's config."""
    problem = config.problem_type
    if problem == "regression":
        return "none"
    if problem == "multi_label_classification" or config.num_labels == 1:
        return "sigmoid"
    if problem == "single_label_classification" or config.num_labels > 1:
        return "softmax"
    configured = getattr(config, "function_to_apply", None)
    return function_name(configured) if configured is not None else "none"
