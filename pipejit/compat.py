"""The transformers internals pipejit relies on, each behind one function.

The reference pipelines keep their parameter parsing and generation set-up in
private helpers; pipejit reuses them so that parameters mean exactly what they
mean in transformers. Every use goes through here, so a transformers release that
renames or drops one fails with a message naming it rather than an AttributeError
deep inside a task (tests/test_compat.py checks each against the installed version).
"""

from __future__ import annotations

from typing import Any

import torch
import transformers
from transformers import CompileConfig, GenerationConfig
from transformers import Pipeline as ReferencePipeline

SUPPORTED = ">=5.17,<6"


def _internal(owner: Any, name: str) -> Any:
    """``owner.name``, or a RuntimeError saying which transformers internal is gone."""
    try:
        return getattr(owner, name)
    except AttributeError:
        kind = owner.__name__ if isinstance(owner, type) else type(owner).__name__
        raise RuntimeError(
            f"transformers {transformers.__version__} has no {kind}.{name}, which pipejit "
            f"uses to match its behaviour; install transformers{SUPPORTED}"
        ) from None


def sanitize_parameters(reference: ReferencePipeline, **kwargs: Any) -> tuple[dict, dict, dict]:
    """The reference pipeline's split of call parameters into (preprocess, forward,
    postprocess), with its own validation."""
    return _internal(reference, "_sanitize_parameters")(**kwargs)


def prepare_generate_kwargs(reference: ReferencePipeline, kwargs: dict[str, Any]) -> dict:
    """The reference pipeline's generation keywords, with its defaults folded in.

    transformers 5.17 has no ``_prepare_generate_kwargs``: its pipelines hand
    ``generate`` their own ``generation_config`` (the model's, with the pipeline's
    defaults merged in at construction) unless the call brings one, which is what
    this falls back to there."""
    prepare = getattr(reference, "_prepare_generate_kwargs", None)
    if prepare is not None:
        return prepare(kwargs)
    config = getattr(reference, "generation_config", None)
    if config is None or "generation_config" in kwargs:
        return dict(kwargs)
    return {"generation_config": config, **kwargs}


def prepare_generation_config(
    model: torch.nn.Module, user: GenerationConfig | None, **kwargs: Any
) -> tuple[GenerationConfig, dict[str, Any]]:
    """(the generation config ``generate`` would use, the keywords it did not take)."""
    return _internal(model, "_prepare_generation_config")(user, **kwargs)


def compile_everywhere(config: CompileConfig) -> CompileConfig:
    """``config`` told to compile on every device: ``generate`` compiles its decode
    step only on accelerators unless told otherwise."""
    _internal(type(config), "_compile_all_devices")
    config._compile_all_devices = True
    return config


def feature_lengths(model: torch.nn.Module, samples: torch.Tensor) -> torch.Tensor:
    """The number of frames an audio model's feature encoder makes of ``samples``."""
    return _internal(model, "_get_feat_extract_output_lengths")(samples)
