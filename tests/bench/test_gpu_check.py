"""gpu-check: what runs without a GPU (the refusal, the report files), and the real run on one."""

import json

import pytest
import torch

from pipejit.bench import gpu_check


def fake_report(parity=True):
    engines = {
        "transformers": {"items_per_s": 100.0, "parity": True},
        "pipejit": {"items_per_s": 250.0, "parity": parity},
    }
    latency = {"transformers_p50_ms": 6.0, "pipejit_p50_ms": 0.3, "pipejit_p90_ms": 0.4}
    return {
        "environment": {
            "gpu": "NVIDIA H100 80GB HBM3",
            "gpu_memory_gib": 79.2,
            "torch": "2.13",
            "cuda": "12.8",
            "transformers": "5.24",
            "date": "2026-11-25",
        },
        "tests": {"returncode": 0, "summary": "12 passed in 80.0s"},
        "latency": [{"dtype": "float16", "cuda_graphs": True, "parity": True, **latency}],
        "quick": [{"dtype": "float16", "cuda_graphs": True, "runs": {8: engines}}],
        "warmup": {
            "dtype": "float16",
            "warmup_seconds": 41.5,
            "compiles": 2,
            "compile_seconds": 30.0,
            "captures": 150,
            "capture_seconds": 9.0,
            "gpu_memory_reserved_gib": 3.2,
        },
        "model": "bert-base",
        "seconds": 420.0,
    }


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_without_cuda_it_says_so_and_fails(capsys, tmp_path):
    assert gpu_check.main(["--out-dir", str(tmp_path)]) != 0
    assert "needs a CUDA GPU" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_report_files_are_named_by_date_and_gpu(tmp_path):
    json_path, md_path = gpu_check.write_report(fake_report(), tmp_path)
    assert json_path.name == "2026-11-25-nvidia-h100-80gb-hbm3-quick.json"
    assert md_path.name == "2026-11-25-nvidia-h100-80gb-hbm3-quick.md"
    assert json.loads(json_path.read_text())["model"] == "bert-base"
    text = md_path.read_text()
    assert "| float16 | on | 6.000 | 0.300 | 0.400 | 20.0x | ok |" in text
    assert "| float16 | on | 8 | 100.0 | 250.0 | 2.50x | ok |" in text
    assert "float16: 41.5 s (2 compiles, 30.0 s; 150 CUDA graph captures, 9.0 s" in text


def test_status_needs_passing_tests_and_parity_everywhere():
    assert gpu_check.passed(fake_report())
    assert not gpu_check.passed(fake_report(parity=False))
    failing = fake_report()
    failing["tests"]["returncode"] = 1
    assert not gpu_check.passed(failing)
    skipped = fake_report()
    skipped["quick"] = [{"skipped": "run_quick takes no ['device'] parameter(s)"}]
    assert not gpu_check.passed(skipped)
    assert "skipped: run_quick" in gpu_check.markdown(
        {**skipped, "environment": skipped["environment"]}
    )
