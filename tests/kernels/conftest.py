"""Kernel tests: Triton paths run interpreted on CPU tensors, compiled on CUDA.

No TRITON_INTERPRET is needed: ``pipejit.kernels._triton`` interprets every launch
on CPU tensors, whenever Triton was imported (transformers imports it before any
conftest of ours could set the variable). ``device`` is where forced-Triton
tensors live: CUDA when present, else the CPU and the interpreter.
"""

import pytest
import torch

# (rtol, atol) for float32 results computed from inputs of each dtype
TOLERANCE = {
    torch.float32: (1e-5, 1e-6),
    torch.float16: (1e-3, 1e-5),
    torch.bfloat16: (1e-3, 1e-5),
}


@pytest.fixture
def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pytest_collection_modifyitems(config, items):
    """The interpreter runs kernels in numpy, which warns about the inf/NaN arithmetic
    of masked lanes and of the edge-value tests; a compiled kernel does not."""
    quiet = pytest.mark.filterwarnings("ignore::RuntimeWarning:triton.runtime.interpreter")
    for item in items:
        if item.path.is_relative_to(config.rootpath / "tests" / "kernels"):
            item.add_marker(quiet)
