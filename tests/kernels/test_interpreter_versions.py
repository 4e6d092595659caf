"""A CPU launch under a Triton whose interpreter cannot run with the installed numpy says so."""

import pytest
import torch

pytest.importorskip("triton")

from pipejit.kernels import _triton  # noqa: E402
from pipejit.kernels.zero_shot import zero_shot_scores  # noqa: E402


class _RaisingInterpreter:
    """Stands in for Triton's interpreted kernel: every launch raises ``error``."""

    def __init__(self, error: Exception):
        self.error = error

    def __getitem__(self, grid):
        def run(*args, **kwargs):
            raise self.error

        return run


@pytest.mark.parametrize(
    "error, expected",
    [
        (
            TypeError("only 0-dimensional arrays can be converted to Python scalars"),
            (RuntimeError, r"does not run with numpy .*: install numpy<2.4 or a newer triton"),
        ),
        (ValueError("something else"), (ValueError, "something else")),
    ],
)
def test_numpy_too_new_for_the_interpreter_is_named_other_errors_pass(monkeypatch, error, expected):
    monkeypatch.setattr(_triton.Kernel, "_interpreter", lambda self: _RaisingInterpreter(error))
    with pytest.raises(expected[0], match=expected[1]):
        zero_shot_scores(torch.zeros(2, 3), entailment=2, contradiction=0, impl="triton")
