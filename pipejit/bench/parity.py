"""Whether two pipelines' outputs agree: same structure, floats within tolerance."""

from __future__ import annotations

import math
from numbers import Real


def outputs_match(actual, expected, rel: float = 1e-3, abs_: float = 1e-4) -> bool:
    """Same nesting, keys and strings as ``expected``, and floats within tolerance."""
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
    if (
        isinstance(expected, Real)
        and not isinstance(expected, bool)
        and not isinstance(expected, int)
    ):
        return isinstance(actual, Real) and math.isclose(
            actual, expected, rel_tol=rel, abs_tol=abs_
        )
    return actual == expected
