"""gpu-check without a GPU: the plan, the refusal, a whole CPU rehearsal, limits and failures."""

import json
import sys

import pytest
import torch

from pipejit.bench import gpu_check

DTYPES = ("float32", "bfloat16")  # two of the three keep the rehearsal short
STAND_IN_TESTS = """
import pytest

def test_kernel_stand_in():
    assert sum([1, 2]) == 3

@pytest.mark.cuda
def test_cuda_stand_in():
    assert True
"""


def test_plan_runs_as_calls_each_within_a_device_call(capsys):
    assert gpu_check.main(["--plan"]) == 0
    out = capsys.readouterr().out
    for step in gpu_check.STEPS:
        assert f"{step.name:<11} {step.budget_s:>4} s" in out
    budgets = {step.name: step.budget_s for step in gpu_check.STEPS}
    assert sorted(n for call in gpu_check.WINDOW_CALLS for n in call) == sorted(budgets)
    for call in gpu_check.WINDOW_CALLS:
        assert sum(budgets[name] for name in call) <= gpu_check.CALL_LIMIT_SECONDS - 30
        assert f"gpu-check --steps {','.join(n for n in call if n != 'model')}" in out
    assert {s.name for s in gpu_check.STEPS} >= {"cuda-tests", "kernels", "warmup", "latency"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_without_cuda_it_says_so_and_writes_nothing(capsys, tmp_path):
    assert gpu_check.main(["--out-dir", str(tmp_path)]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_cpu_rehearsal_runs_every_step_and_writes_dated_results(tmp_path):
    """The whole check, each step a real subprocess, on the CPU with a tiny model; the
    test steps run a stand-in test folder (the real suites are CI's own job)."""
    tests = tmp_path / "tests"
    (tests / "kernels").mkdir(parents=True)
    (tests / "kernels" / "test_stand_in.py").write_text(STAND_IN_TESTS)
    out = tmp_path / "results"
    status = gpu_check.main(
        [
            *("--device", "cpu", "--model-size", "tiny", "--items", "12"),
            *("--batch-sizes", "1,4", "--repeats", "1", "--latency-calls", "3", "--no-compile"),
            *("--dtypes", ",".join(DTYPES), "--tests", str(tests), "--out-dir", str(out)),
            *("--budget-scale", "10"),
        ]
    )
    (json_path,) = out.glob("*-cpu-rehearsal-gpu-check.json")
    report = json.loads(json_path.read_text())
    steps = report["steps"]
    assert {name: r["status"] for name, r in steps.items()} == {
        s.name: "passed" for s in gpu_check.STEPS
    }, {name: r["tail"] for name, r in steps.items()}
    assert status == 0
    rows = steps["latency"]["result"]["rows"]
    assert [(r["dtype"], r["cuda_graphs"]) for r in rows] == [
        (d, g) for d in DTYPES for g in (False, "auto")
    ]
    assert all(r["parity"] and r["pipejit_p99_ms"] >= r["pipejit_p50_ms"] > 0 for r in rows)
    assert [run["dtype"] for run in steps["quick"]["result"]["runs"]] == list(DTYPES)
    assert steps["warmup"]["result"]["warmup_seconds"] >= 0
    text = json_path.with_suffix(".md").read_text()
    assert "Verdict: passed" in text and "| bfloat16 | auto |" in text
    assert "bfloat16: pipejit's milliseconds a pass by stage at batch 1 / 4: preprocess" in text
    assert all(r["pipejit_stage_us"]["preprocess"] > 0 for r in rows)
    assert "pipejit's microseconds a call by stage, float32, cuda graphs auto: preprocess" in text


def test_a_failed_or_overlong_step_is_recorded_and_the_next_still_runs(tmp_path):
    def python(code):
        return lambda settings, result: [sys.executable, "-c", code]

    steps = (
        gpu_check.Step("sleeps", 1, "runs past its limit", python("import time; time.sleep(30)")),
        gpu_check.Step("fails", 30, "exits 3", python("print('bad news'); raise SystemExit(3)")),
        gpu_check.Step("passes", 30, "exits 0", python("print('fine')")),
    )
    settings = gpu_check.Settings(device="cpu", scratch=str(tmp_path))
    report = gpu_check.run_check(settings, steps)
    statuses = {name: (r["status"], r["summary"]) for name, r in report["steps"].items()}
    assert statuses["sleeps"][0] == "timed out" and report["steps"]["sleeps"]["seconds"] < 20
    assert statuses["fails"] == ("failed", "bad news")
    assert statuses["passes"] == ("passed", "fine")
    assert not gpu_check.passed(report)
    json_path, md_path = gpu_check.write_report(report, tmp_path / "out")
    assert json_path.name.endswith("-cpu-rehearsal-gpu-check.json")
    assert "## sleeps: timed out" in md_path.read_text()


def test_parity_failure_fails_the_verdict():
    rows = [{"parity": True}, {"parity": False}]
    report = {"steps": {"latency": {"status": "passed", "result": {"rows": rows}}}}
    assert not gpu_check.passed(report)
    report["steps"]["latency"]["result"]["rows"] = rows[:1]
    assert gpu_check.passed(report)


def test_gpu_names_become_file_names():
    assert gpu_check.gpu_slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"


def test_chosen_steps_bring_the_model_keep_their_logs_and_name_the_results(tmp_path):
    chosen = gpu_check.select(["latency", "cuda-tests"])
    assert [step.name for step in chosen] == ["cuda-tests", "model", "latency"]
    assert [step.name for step in gpu_check.select(["kernels"])] == ["kernels"]
    with pytest.raises(ValueError, match="no step named warm"):
        gpu_check.select(["warm"])

    step = gpu_check.Step("talks", 30, "prints", lambda s, r: [sys.executable, "-c", "print(42)"])
    logs = tmp_path / "logs"
    settings = gpu_check.Settings(device="cpu", scratch=str(tmp_path), logs=str(logs))
    report = gpu_check.run_check(settings, (step,))
    assert (logs / "talks.log").read_text().strip() == "42"
    report["partial"] = ["talks"]
    json_path, _ = gpu_check.write_report(report, tmp_path / "out")
    assert json_path.name.endswith("-cpu-rehearsal-gpu-check-talks.json")


def test_tests_spread_over_workers_on_a_gpu_machine_with_xdist():
    assert gpu_check.xdist_workers("cuda", installed=True) == ["-n", str(gpu_check.TEST_WORKERS)]
    assert gpu_check.xdist_workers("cuda", installed=False) == []
    assert gpu_check.xdist_workers("cpu", installed=True) == []  # a rehearsal runs as CI does
