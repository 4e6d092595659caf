"""Every kernel launch configuration compiles for sm_80 and sm_90 without a GPU.

The build runs once per session (and is cached across runs, see pipejit.bench.kernel_build).
``PIPEJIT_AOT_TARGETS`` (e.g. "90") narrows the targets: the GPU-versions CI leg builds
for the H100/H200 only.
"""

import os

import pytest
import torch

triton = pytest.importorskip("triton")

from pipejit.bench import kernel_build  # noqa: E402
from pipejit.kernels import launch_configs as listing  # noqa: E402
from pipejit.kernels.softmax_topk import softmax_topk  # noqa: E402

TARGETS = tuple(int(a) for a in os.environ.get("PIPEJIT_AOT_TARGETS", "80,90").split(","))
KERNELS = {"softmax_topk", "token_scores", "pooling", "zero_shot", "sampling"}


@pytest.fixture(scope="session")
def configs():
    return listing.launch_configs()


@pytest.fixture(scope="session")
def built(configs):
    return kernel_build.build(configs, TARGETS)


def test_every_configuration_compiles_within_the_shared_memory_limit(built):
    assert kernel_build.problems(built) == []


def test_each_configuration_is_built_for_each_target(configs, built):
    assert sorted((r["config"], r["arch"]) for r in built) == sorted(
        (c.name, arch) for c in configs for arch in TARGETS
    )
    assert all(r["registers"] > 0 and r["shared_bytes"] >= 0 for r in built)


def test_no_configuration_spills_more_than_a_few_registers(built):
    assert kernel_build.heavy_spills(built) == []


def test_every_kernel_is_listed_for_every_input_dtype(configs):
    assert {c.kernel for c in configs} == KERNELS
    for kernel in KERNELS:
        assert {c.input_type for c in configs if c.kernel == kernel} == {"fp32", "fp16", "bf16"}


def test_listing_records_the_launchers_own_choices():
    (config,) = listing._recorded(
        lambda: softmax_topk(torch.zeros(2, 1000, dtype=torch.float16), 5, impl="triton")
    )
    assert config.kernel == "softmax_topk" and config.input_type == "fp16"
    assert dict(config.constexprs) | {"warps": config.num_warps} == {
        "FUNCTION": 0,
        "HAS_COLUMNS": False,
        "WRITE_ALL": False,
        "KB": 16,
        "BLOCK": 1024,
        "INSERT_LIMIT": 8,
        "warps": 4,
    }
    assert dict(config.signature)["n"] == "i32" and dict(config.signature)["indices_ptr"] == "*i64"


def test_problems_name_compile_errors_and_shared_memory_past_the_limit():
    ok = {"config": "k[fp16]()", "arch": 80, "error": None, "shared_bytes": 166912}
    over = ok | {"arch": 80, "shared_bytes": 166913}
    failed = ok | {"arch": 90, "error": "CompilationError: bad"}
    assert kernel_build.problems([ok, ok | {"arch": 90, "shared_bytes": 232448}]) == []
    assert kernel_build.problems([over, failed]) == [
        "k[fp16]() on sm_80: 166913 bytes of shared memory, over sm_80's 166912",
        "k[fp16]() on sm_90: CompilationError: bad",
    ]


def test_ptxas_report_is_read():
    log = (
        "ptxas info    : Function properties for _k\n"
        "    8 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads\n"
        "ptxas info    : Used 96 registers, used 1 barriers, 8 bytes cumulative stack size\n"
    )
    assert kernel_build.ptxas_resources(log) == {
        "registers": 96,
        "stack_bytes": 8,
        "spill_stores": 8,
        "spill_loads": 4,
    }
    with pytest.raises(ValueError, match="no ptxas -v report"):
        kernel_build.ptxas_resources("nothing here")


def test_report_files_are_dated_and_list_every_build(tmp_path, built):
    json_path, md_path = kernel_build.write(built, tmp_path, seconds=1.0)
    targets = "-".join(f"sm{arch}" for arch in sorted(TARGETS))
    assert json_path.name.endswith(f"-{targets}-triton{triton.__version__}-kernel-build.json")
    text = md_path.read_text()
    assert text.count("\n| ") - text.count("\n| kernel") - text.count("\n| configuration") == (
        len(built) + len(KERNELS) * len(TARGETS)
    )
