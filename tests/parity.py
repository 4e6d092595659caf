"""Compare pipejit's outputs with transformers' own, structure exact and floats within tolerance."""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
import torch

from pipejit.bench.parity import TOLERANCE as BENCH_TOLERANCE

# the bench's table (pipejit.bench.parity), keyed by torch dtype
TOLERANCE = {getattr(torch, name): pair for name, pair in BENCH_TOLERANCE.items()}


def assert_same(actual, expected, dtype: torch.dtype = torch.float32, path: str = "output") -> None:
    """Same nesting, keys, strings and ints; floats equal within the tolerance of ``dtype``."""
    rel, abs_ = TOLERANCE[dtype]
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor), f"{path}: expected a tensor, got {type(actual)}"
        assert actual.shape == expected.shape, f"{path}: shape {actual.shape} != {expected.shape}"
        torch.testing.assert_close(actual.float(), expected.float(), rtol=rel, atol=abs_)
    elif isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected a dict, got {type(actual)}"
        assert list(actual) == list(expected), f"{path}: keys {list(actual)} != {list(expected)}"
        for key in expected:
            assert_same(actual[key], expected[key], dtype, f"{path}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert isinstance(actual, type(expected)), f"{path}: {type(actual)} != {type(expected)}"
        assert len(actual) == len(expected), f"{path}: length {len(actual)} != {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, dtype, f"{path}[{i}]")
    elif isinstance(expected, (float, np.floating)):
        assert isinstance(actual, float), f"{path}: expected a Python float, got {type(actual)}"
        assert math.isclose(actual, float(expected), rel_tol=rel, abs_tol=abs_), (
            f"{path}: {actual} != {expected}"
        )
    elif isinstance(expected, (bool, str, type(None))) or isinstance(expected, Real):
        assert actual == expected and type(actual) is type(expected), (
            f"{path}: {actual!r} != {expected!r}"
        )
    else:
        raise AssertionError(f"{path}: cannot compare {type(expected)}")


def pipeline_pairs(task: str, folders: dict[str, str]):
    """``get(kind)`` -> (transformers pipeline, eager pipejit pipeline) on ``folders[kind]``,
    built once per kind."""
    import transformers

    import pipejit

    built = {}

    def get(kind: str):
        if kind not in built:
            built[kind] = (
                transformers.pipeline(task, model=folders[kind]),
                pipejit.pipeline(task, model=folders[kind], compile=False),
            )
        return built[kind]

    return get
