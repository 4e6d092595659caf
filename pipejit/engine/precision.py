"""Precision names: the ``autocast`` option's dtype (``dtype=`` goes to transformers as is)."""

from __future__ import annotations

import torch

AUTOCAST_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_autocast(autocast: str | torch.dtype | None) -> torch.dtype | None:
    """``None`` (no autocast), or the half dtype the forward runs under."""
    if autocast is None or autocast in AUTOCAST_DTYPES.values():
        return autocast
    if autocast not in AUTOCAST_DTYPES:
        raise ValueError(
            f"autocast must be one of {sorted(AUTOCAST_DTYPES)} or None, got {autocast!r}"
        )
    return AUTOCAST_DTYPES[autocast]
