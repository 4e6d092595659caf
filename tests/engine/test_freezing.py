"""Inductor's weight prepacking holds as each frozen compile asks, in any order."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipejit.engine.compile_cache import INDUCTOR_CACHE_ENV

# a fresh process: inductor settles its packing patterns at its first frozen compile there
_COMPILES_IN_TURN = """
import json, sys, torch
from torch._dynamo.utils import counters
from pipejit.engine.freezing import freezing

packed, equal = [], []
for prepack in json.loads(sys.argv[1]):
    torch._dynamo.reset()
    model = torch.nn.Sequential(
        torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8)
    ).eval()
    x = torch.randn(4, 16)
    before = counters["inductor"]["mkldnn_linear_weight_pack_matcher_count"]
    with torch.inference_mode(), freezing(prepack):
        out = torch.compile(model)(x)
    packed.append(counters["inductor"]["mkldnn_linear_weight_pack_matcher_count"] - before)
    with torch.inference_mode():
        equal.append(bool(torch.allclose(out, model(x), atol=1e-5)))
print(json.dumps({"packed": packed, "equal": equal}))
"""


@pytest.mark.slow
@pytest.mark.skipif(
    not torch.backends.mkldnn.is_available(), reason="inductor packs weights for oneDNN only"
)
def test_each_frozen_compile_packs_its_linears_as_asked_whatever_came_first(tmp_path):
    # unprepacked first: inductor alone would then never pack again in the process; after a
    # prepacked compile it would pack every later one
    order = [False, True, False]
    env = {**os.environ, INDUCTOR_CACHE_ENV: str(tmp_path / "inductor"), "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _COMPILES_IN_TURN, json.dumps(order)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["packed"] == [0, 2, 0]
    assert found["equal"] == [True, True, True]


# a fresh process: the freezing patterns first registered under the bf16 opt-in's autocast
_CONCAT_AFTER_AUTOCAST = """
import torch
from pipejit.engine.freezing import freezing
from tests.engine.concat_linears import library_linear_calls

with torch.autocast("cpu", torch.bfloat16), freezing(True):
    pass
print(library_linear_calls())
"""


@pytest.mark.slow
@pytest.mark.skipif(
    not torch.backends.mkldnn.is_available(), reason="inductor packs weights for oneDNN only"
)
def test_linears_of_one_input_concatenate_after_a_bf16_pipeline_came_first(tmp_path):
    from pipejit.engine import all_cpp

    if not all_cpp._concatenated_linears():
        pytest.skip("this torch cannot concatenate linears")
    env = {**os.environ, INDUCTOR_CACHE_ENV: str(tmp_path / "inductor"), "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _CONCAT_AFTER_AUTOCAST],
        env=env,
        cwd=Path(__file__).parents[2],  # where ``tests`` imports from
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip().splitlines()[-1] == "1"  # one GEMM for the three linears
