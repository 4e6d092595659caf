"""Compare pipejit's outputs with transformers' own, structure exact and floats within tolerance
(``pipejit.bench.parity.first_difference``, strict about types)."""

from __future__ import annotations

import torch

from pipejit.bench.parity import TOLERANCE as BENCH_TOLERANCE
from pipejit.bench.parity import first_difference

# the bench's table (pipejit.bench.parity), keyed by torch dtype
TOLERANCE = {getattr(torch, name): pair for name, pair in BENCH_TOLERANCE.items()}


def assert_same(actual, expected, dtype: torch.dtype = torch.float32, path: str = "output") -> None:
    """Same nesting, types, keys, strings and ints; floats equal within the tolerance of
    ``dtype`` (the bench's comparison, strict about types)."""
    difference = first_difference(actual, expected, *TOLERANCE[dtype], strict=True, path=path)
    assert difference is None, difference


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
