"""MKL's vendor check: lifted on AMD CPUs at ``import pipejit``, kept elsewhere and on request."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from pipejit.engine import mkl_kernels

on_amd_with_mkl = pytest.mark.skipif(
    mkl_kernels.cpu_vendor() != "AuthenticAMD" or not torch.backends.mkl.is_available(),
    reason="MKL's vendor check is lifted only on AMD CPUs, in a torch with MKL",
)

# a fresh process: imports pipejit first, then asks MKL its vendor check and runs a GEMM
_PROBE = """
import json, torch
import pipejit
from pipejit.engine import mkl_kernels
torch.manual_seed(0)
x, w = torch.randn(48, 768), torch.randn(3072, 768)
exact = (x.double() @ w.double().T).float()
print(json.dumps({
    "state": mkl_kernels.state,
    "answer": mkl_kernels.vendor_check()(),
    "gemm_error": (torch.nn.functional.linear(x, w) - exact).abs().max().item(),
}))
"""


def _probe(**env: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@on_amd_with_mkl
def test_importing_pipejit_gives_mkl_intel_kernels_that_compute_right():
    probe = _probe()
    assert probe["state"].startswith("Intel's kernels"), probe
    assert probe["answer"] == 1
    assert probe["gemm_error"] < 1e-3


@on_amd_with_mkl
def test_the_opt_out_keeps_mkl_own_choice():
    probe = _probe(**{mkl_kernels.OPT_OUT: "0"})
    assert mkl_kernels.OPT_OUT in probe["state"]
    assert probe["answer"] == 0
    assert probe["gemm_error"] < 1e-3


def test_an_intel_cpu_is_left_alone(monkeypatch):
    monkeypatch.delenv(mkl_kernels.OPT_OUT, raising=False)
    monkeypatch.setattr(mkl_kernels, "state", mkl_kernels.state)  # restored after
    monkeypatch.setattr(mkl_kernels, "cpu_vendor", lambda: "GenuineIntel")
    monkeypatch.setattr(
        mkl_kernels, "_overwrite", lambda *_: pytest.fail("rewrote MKL on an Intel CPU")
    )
    assert mkl_kernels.use_intel_kernels() == "MKL's own choice (CPU vendor GenuineIntel)"
