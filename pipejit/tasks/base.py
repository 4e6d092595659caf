"""Helpers every task shares: refusing unknown parameters, tokenizing one text."""

from __future__ import annotations

from typing import Any

import torch


def reject_unknown(task: str, kwargs: dict[str, Any], allowed: set[str]) -> None:
    """A TypeError naming the parameters ``task`` does not take, and those it does."""
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise TypeError(
            f"{task} got unexpected parameter(s) {unknown}; it accepts {sorted(allowed)}"
        )


def encode(tokenizer, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
    """Tokenize one text (or pair) to unpadded 1-D int64 tensors."""
    encoded = tokenizer(*args, **kwargs)
    return {k: torch.tensor(v, dtype=torch.long) for k, v in encoded.items()}
