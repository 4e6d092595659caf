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
    actual,
    expected,
    rel: float = TOLERANCE["float32"][0],
    abs_: float = TOLERANCE["float32"][1],
    *,
    strict: bool = False,
) -> bool:
    """Whether ``actual`` agrees with ``expected`` (see ``first_difference``)."""
    return first_difference(actual, expected, rel, abs_, strict=strict) is None


def first_difference(
    actual,
    expected,
    rel: float = TOLERANCE["float32"][0],
    abs_: float = TOLERANCE["float32"][1],
    *,
    strict: bool = True,
    path: str = "output",
) -> str | None:
    """Where ``actual`` first differs from ``expected``, in words; None where they agree:
    same nesting, keys, strings and ints, floats and arrays within ``rel`` and ``abs_``.

    ``strict`` (the tests): the types match too, a list is not a tuple and a float is a
    Python float. Otherwise (outputs that crossed JSON, Arrow or numpy on the way, as in
    the bench's server and Ray runs) lists and tuples, arrays and nested lists, and any
    two real numbers compare by value."""

    def differ(a, e, where: str) -> str | None:
        return first_difference(a, e, rel, abs_, strict=strict, path=where)

    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{path}: expected a dict, got {type(actual).__name__}"
        if list(actual) != list(expected):
            return f"{path}: keys {list(actual)} != {list(expected)}"
        return next(
            (d for k in expected if (d := differ(actual[k], expected[k], f"{path}[{k!r}]"))),
            None,
        )
    if isinstance(expected, (np.ndarray, torch.Tensor)) or (
        not strict and isinstance(actual, (np.ndarray, torch.Tensor))
    ):
        return _array_difference(actual, expected, rel, abs_, strict, path)
    if isinstance(expected, (list, tuple)):
        kinds = (type(expected),) if strict else (list, tuple)
        if not isinstance(actual, kinds):
            return f"{path}: expected a {type(expected).__name__}, got {type(actual).__name__}"
        if len(actual) != len(expected):
            return f"{path}: length {len(actual)} != {len(expected)}"
        return next(
            (
                d
                for i, (a, e) in enumerate(zip(actual, expected))
                if (d := differ(a, e, f"{path}[{i}]"))
            ),
            None,
        )
    if isinstance(expected, (float, np.floating)) or (
        not strict and isinstance(expected, Real) and isinstance(actual, (float, np.floating))
    ):
        number = (float,) if strict else (Real,)
        if not isinstance(actual, number) or isinstance(actual, bool):
            return f"{path}: expected a float, got {type(actual).__name__} {actual!r}"
        if not math.isclose(actual, float(expected), rel_tol=rel, abs_tol=abs_):
            return f"{path}: {actual} != {expected}"
        return None
    same_type = type(actual) is type(expected) or not strict
    if not same_type or not _equal(actual, expected):
        return f"{path}: {actual!r} != {expected!r}"
    return None


def _array_difference(actual, expected, rel, abs_, strict, path) -> str | None:
    if strict and type(actual) is not type(expected):
        return f"{path}: expected a {type(expected).__name__}, got {type(actual).__name__}"
    try:
        a, e = _numbers(actual), _numbers(expected)
    except (TypeError, ValueError) as error:
        return f"{path}: not an array of numbers ({error})"
    if a.shape != e.shape:
        return f"{path}: shape {a.shape} != {e.shape}"
    if not np.allclose(a, e, rel, abs_):
        return f"{path}: values differ by up to {np.max(np.abs(a - e)):.3g}"
    return None


def _numbers(value) -> np.ndarray:
    """``value`` as float64 numbers (booleans and integers too)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def _equal(actual, expected) -> bool:
    try:
        return bool(actual == expected)
    except (TypeError, ValueError):  # an object whose == is not a truth value
        return False


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
