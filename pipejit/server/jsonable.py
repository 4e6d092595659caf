"""Pipeline outputs as JSON values: arrays to lists, images to base64 PNG strings."""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import numpy as np
import torch
from PIL import Image


def to_json(value: Any) -> Any:
    """``value`` with every numpy/torch array, numpy scalar and PIL image made JSON-able;
    non-finite floats become None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, torch.Tensor):
        return to_json(
            value.detach().cpu().float().numpy()
            if value.is_floating_point()
            else value.detach().cpu().numpy()
        )
    if isinstance(value, np.ndarray):
        return to_json(value.tolist())
    if isinstance(value, np.generic):
        return to_json(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Image.Image):
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode("ascii")
    return value
