"""Whether two pipelines' outputs agree: same structure, numbers within a dtype's tolerance."""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
import torch

# (relative, absolute) tolerance of outputs against transformers, by the weights' dtype:
# the one table of the bench and the tests (tests/parity.py). fp32 through a padded batch
# differs from an unpadded one by accumulation order only.
TOLERANCE = {"float32": (2e-4, 1e-5), "float16": (2e-2, 2e-3), "bfloat16": (5e-2, 1e-2)}
# bf16 against fp32: random classifiers sit near a score of 0.5, where one bf16 rounding
# flips a label, so labels are held to a share equal and features to their cosine
BF16_LABELS_EQUAL = 0.99
BF16_MIN_COSINE = 0.999


def outputs_match(
    actual, expected, rel: float = TOLERANCE["float32"][0], abs_: float = TOLERANCE["float32"][1]
) -> bool:
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


def bf16_agreement(actual: list, expected: list) -> dict:
    """bf16 outputs against fp32 ones, item by item: the share of equal labels (items with
    a ``label``) and the lowest cosine of mean-pooled features (items of nested floats)."""
    labels = [(a.get("label"), e.get("label")) for a, e in zip(actual, expected) if _has_label(e)]
    cosines = [
        _cosine(np.asarray(a, dtype=np.float64), np.asarray(e, dtype=np.float64))
        for a, e in zip(actual, expected)
        if not _has_label(e)
    ]
    equal = sum(a == e for a, e in labels) / len(labels) if labels else 1.0
    lowest = min(cosines) if cosines else 1.0
    return {
        "labels_equal": equal,
        "min_cosine": lowest,
        "ok": len(actual) == len(expected)
        and equal >= BF16_LABELS_EQUAL
        and lowest >= BF16_MIN_COSINE,
    }


def _has_label(item) -> bool:
    return isinstance(item, dict) and "label" in item


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The cosine of two items' embeddings: their token features mean-pooled, as
    sentence-transformers pools all-MiniLM-L6-v2."""
    if a.shape != b.shape:
        return 0.0
    a, b = a.reshape(-1, a.shape[-1]).mean(0), b.reshape(-1, b.shape[-1]).mean(0)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
