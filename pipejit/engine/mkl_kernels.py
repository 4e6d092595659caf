"""MKL's GEMM kernels on AMD CPUs: Intel's, which run faster there.

MKL chooses its kernels by the CPU's vendor first: on a CPU that is not Intel's it takes
slower code paths, although an AMD EPYC has the same instruction sets. torch's default
fp32 GEMM on CPU is MKL's. On a 2-core AMD EPYC (Zen 3, AVX2), with Intel's kernels,
``F.linear`` of 48 rows by 768 x 768 went from 140 to 165 GFLOP/s, of 16 rows by
384 x 1536 from 97 to 130, and MKL's prepacked linear (which inductor's frozen graphs
call) from 144 to 185, past ONNX Runtime's MLAS (178).

The vendor check is one function exported by the library that holds torch's MKL
(``mkl_serv_intel_cpu_true``). ``use_intel_kernels`` rewrites it to answer yes: what users
of MKL on AMD do by preloading a library that defines it. The kernels MKL then picks
still follow the instruction sets the CPU reports. MKL reads the answer at its first
GEMM and keeps its choice, so this must run before any: ``import pipejit`` calls it.
After a GEMM it changes nothing, and does no harm.

It is process-wide: every MKL GEMM of the process gets Intel's kernels, transformers'
included. ``PIPEJIT_MKL_INTEL_KERNELS=0`` keeps MKL's own choice.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import torch

OPT_OUT = "PIPEJIT_MKL_INTEL_KERNELS"
VENDOR_CHECK = "mkl_serv_intel_cpu_true"
ANSWER_YES = b"\xb8\x01\x00\x00\x00\xc3"  # x86-64: mov eax, 1; ret
# libraries that may hold torch's MKL: statically in torch's CPU library (pip wheels), or
# MKL's own (builds that link it dynamically)
MKL_HOLDERS = ("libtorch_cpu", "libmkl_core", "libmkl_rt")

_PROT_READ_EXEC = mmap.PROT_READ | mmap.PROT_EXEC
_PROT_ALL = _PROT_READ_EXEC | mmap.PROT_WRITE

# what use_intel_kernels did in this process, for results to name
state = "not tried"


def use_intel_kernels() -> str:
    """Make MKL take Intel's kernels on a non-Intel x86-64 CPU; says what was done."""
    global state
    state = _use_intel_kernels()
    return state


def _use_intel_kernels() -> str:
    if os.environ.get(OPT_OUT) == "0":
        return f"MKL's own choice ({OPT_OUT}=0)"
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return "MKL's own choice (not x86-64 Linux)"
    vendor = cpu_vendor()
    if vendor != "AuthenticAMD":
        return f"MKL's own choice (CPU vendor {vendor or 'unknown'})"
    if not torch.backends.mkl.is_available():
        return "no MKL in this torch"
    check = vendor_check()
    if check is None:
        return f"MKL's own choice (no {VENDOR_CHECK} found)"
    address = ctypes.cast(check, ctypes.c_void_p).value
    if ctypes.string_at(address, len(ANSWER_YES)) != ANSWER_YES and not _overwrite(
        address, ANSWER_YES
    ):
        return "MKL's own choice (the system refused to rewrite its vendor check)"
    return "Intel's kernels (vendor check answers yes)"


def cpu_vendor() -> str | None:
    """The CPU's vendor as /proc/cpuinfo names it (GenuineIntel, AuthenticAMD), if it says."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("vendor_id"):
            return line.split(":", 1)[1].strip()
    return None


def vendor_check() -> Callable[[], int] | None:
    """MKL's vendor check as loaded in this process, callable (returns 1 for Intel)."""
    for path in _loaded_libraries():
        if not Path(path).name.startswith(MKL_HOLDERS):
            continue
        try:
            check = getattr(ctypes.CDLL(path), VENDOR_CHECK)
        except (OSError, AttributeError):
            continue
        check.restype = ctypes.c_int
        check.argtypes = []
        return check
    return None


def _loaded_libraries() -> list[str]:
    """Paths of the shared libraries mapped into this process, in the order first seen."""
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return []
    paths = (line.split(maxsplit=5)[5] for line in lines if len(line.split(maxsplit=5)) == 6)
    return list(dict.fromkeys(path for path in paths if ".so" in path))


def _overwrite(address: int, code: bytes) -> bool:
    """Write ``code`` over the machine code at ``address``; False if the system refuses."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    first_page = address & ~(mmap.PAGESIZE - 1)
    span = address + len(code) - first_page
    if libc.mprotect(first_page, span, _PROT_ALL) != 0:
        return False
    ctypes.memmove(address, code, len(code))
    libc.mprotect(first_page, span, _PROT_READ_EXEC)
    return True
