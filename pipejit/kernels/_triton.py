"""How kernels are launched and which implementation runs.

``Kernel`` wraps a Triton kernel function and builds it per launch device:
compiled with ``triton.jit`` for GPU tensors, run by Triton's interpreter for CPU
tensors. Triton fixes interpret mode when ``triton.language`` is imported (its own
library functions such as ``tl.sum`` are decorated then), and transformers imports
it early, so setting ``TRITON_INTERPRET=1`` in a test's conftest comes too late
when the whole suite runs in one process. A CPU launch therefore interprets its
kernel whatever the variable said, swapping Triton's library functions for
interpreted ones for the duration of the launch only.

``use_triton`` is the one dispatch rule: ``"auto"`` picks Triton for CUDA tensors
when Triton is installed and the kernel supports the call, the torch reference
otherwise; ``"triton"`` forces the kernel (on CPU, through the interpreter).
"""

import contextlib
import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # no Triton on this platform: every kernel runs its torch reference
    triton = None
    tl = SimpleNamespace(constexpr=int)  # lets kernel signatures be defined

IMPLS = ("auto", "triton", "torch")
_INTERPRET_LOCK = threading.Lock()


def use_triton(impl: str, device: torch.device, supported: bool = True, why: str = "") -> bool:
    """Whether a call runs its Triton kernel; ``supported`` False (with ``why``) keeps
    ``"auto"`` on the torch reference and makes ``"triton"`` an error."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "torch":
        return False
    if impl == "auto":
        return triton is not None and device.type == "cuda" and supported
    if triton is None:
        raise RuntimeError("impl='triton' needs the triton package, which is not installed")
    if not supported:
        raise ValueError(f"impl='triton' cannot run this call: {why}")
    if device.type not in ("cuda", "cpu"):
        raise ValueError(f"impl='triton' runs on CUDA or (interpreted) CPU tensors, not {device}")
    return True


class Kernel:
    """A Triton kernel function, launched as ``kernel[grid](*args, **constexprs)``."""

    def __init__(self, fn: Callable[..., None]):
        self.fn = fn
        self._compiled = None
        self._interpreted = None

    def __getitem__(self, grid: tuple[int, ...]) -> Callable[..., None]:
        def launch(*args: Any, **kwargs: Any) -> None:
            tensor = next(a for a in args if isinstance(a, torch.Tensor))
            if tensor.device.type == "cpu":
                with _interpreting(), _numpy_too_new_for_interpreter():
                    self._interpreter()[grid](*args, **kwargs)
            else:
                if self._compiled is None:
                    self._compiled = triton.jit(self.fn)
                self._compiled[grid](*args, **kwargs)

        return launch

    def _interpreter(self):
        if self._interpreted is None:
            from triton.runtime.interpreter import InterpretedFunction

            self._interpreted = InterpretedFunction(self.fn)
        return self._interpreted


def kernel(fn: Callable[..., None]) -> Kernel:
    """Decorator: a Triton kernel built for the device of each launch."""
    return Kernel(fn)


@contextlib.contextmanager
def _numpy_too_new_for_interpreter() -> Iterator[None]:
    """Triton 3.6's interpreter turns 1-element arrays into ints, which numpy 2.4 refuses."""
    try:
        yield
    except Exception as error:
        if "only 0-dimensional arrays can be converted" not in str(error):
            raise
        import numpy

        raise RuntimeError(
            f"Triton {triton.__version__}'s CPU interpreter does not run with numpy "
            f"{numpy.__version__}: install numpy<2.4 or a newer triton, or use impl='torch'"
        ) from error


@contextlib.contextmanager
def _interpreting() -> Iterator[None]:
    """Interpret mode, and Triton's library functions as interpreted ones, for one launch."""
    from triton import knobs
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    with _INTERPRET_LOCK, knobs.runtime.scope():
        knobs.runtime.interpret = True
        swapped = []
        for module in (tl, tl.standard, tl.math):
            for name, member in list(vars(module).items()):
                if isinstance(member, JITFunction):
                    swapped.append((module, name, member))
                    setattr(module, name, InterpretedFunction(member.fn))
        try:
            yield
        finally:
            for module, name, member in swapped:
                setattr(module, name, member)
