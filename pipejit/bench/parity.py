"""Whether two pipelines' outputs agree: same structure, numbers within a dtype's tolerance."""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
import torch

# (relative, absolute) tolerance of scores against transformers, by the weights' dtype
TOLERANCE = {"float32": (1e-3, 1e-4), "float16": (2e-2, 2e-3), "bfloat16": (5e-2, 1e-2)}


def outputs_match(actual, expected, rel: float = 1e-3, abs_: float = 1e-4) -> bool:
    """Same nesting, keys and strings as ``expected``; floats and arrays within tolerance."""
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and list(actual) == list(expected)
            and all(outputs_match(actual[k], expected[k], rel, abs_) for k in expected)
        )
    if isinstance(expected, (list, tuple)):
        return (
            isinstance(actual, (list, tuple))
            and len(actual) == len(expected)
            and all(outputs_match(a, e, rel, abs_) for a, e in zip(actual, expected))
        )
    if isinstance(expected, (np.ndarray, torch.Tensor)):
        actual, expected = np.asarray(actual), np.asarray(expected)
        return actual.shape == expected.shape and np.allclose(actual, expected, rel, abs_)
    if isinstance(expected, Real) and not isinstance(expected, (bool, int)):
        return isinstance(actual, Real) and math.isclose(
            actual, expected, rel_tol=rel, abs_tol=abs_
        )
    return actual == expected
