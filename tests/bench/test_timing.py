"""The one timing helper and the one result shape every suite reports through."""

import pytest

from pipejit.bench import report, timing
from pipejit.bench.results import engine_run, settings_case


def test_steps_run_in_turn():
    calls = []
    seconds = timing.interleaved(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3
    )
    assert calls == ["a", "b"] * 3
    assert {name: len(values) for name, values in seconds.items()} == {"a": 3, "b": 3}
    assert all(s >= 0 for values in seconds.values() for s in values)


def test_a_step_runs_with_the_cyclic_collector_paused_and_restored():
    import gc

    seen = []
    timing.timed(lambda: seen.append(gc.isenabled()))
    assert seen == [False] and gc.isenabled()


def test_a_budget_adds_rounds_up_to_the_cap():
    seconds = timing.interleaved({"a": lambda: None}, 1, budget_s=60, max_rounds=7)
    assert len(seconds["a"]) == 7


def test_rate_is_at_the_median_and_spread_at_the_extremes():
    assert timing.rate(12, [2.0, 4.0, 3.0]) == {"items_per_s": 4.0, "spread": [3.0, 6.0]}


def test_percentiles_nearest_rank():
    values = list(range(1, 102))  # 1..101
    assert timing.percentiles(values) == {"p50": 51, "p90": 91, "p99": 100}
    assert timing.percentiles([5.0]) == {"p50": 5.0, "p90": 5.0, "p99": 5.0}


def test_a_settings_case_fails_on_a_false_parity_only():
    def cells(parity):
        return {
            "direct": engine_run(8, [1.0, 2.0], True, [0.001, 0.003]),
            "batched": engine_run(8, [0.5], parity, [0.002], extra=3.0),
        }

    unchecked = settings_case("c", axis="callers", baseline="direct", runs={1: cells(None)})
    assert not unchecked["failed"] and unchecked["engines"] == ["direct", "batched"]
    run = unchecked["runs"]["1"]["direct"]
    assert run["items_per_s"] == pytest.approx(8 / 1.5) and run["latency_ms"]["p99"] == 3.0
    assert unchecked["runs"]["1"]["batched"]["extra"] == 3.0
    failed = settings_case("c", axis="callers", baseline="direct", runs={1: cells(False)})
    assert failed["failed"]


def test_report_tables_and_plots_any_axis_with_missing_cells(tmp_path):
    """Kernel-like settings (strings), an engine absent at one setting, one parity failure."""
    runs = {
        "2 x 40 float32": {
            "torch": engine_run(2, [0.001], None, ms=1.0),
            "triton": engine_run(2, [0.0005], False, ms=0.5),
        },
        "8 x 40 float32": {"torch": engine_run(8, [0.002], None, ms=2.0)},
    }
    case = settings_case(
        "kernel k", axis="batch x row length", baseline="torch", runs=runs, columns=["ms"]
    )
    results = {
        "suite": "kernels",
        "command": "pipejit-bench run --suite kernels",
        "machine": report.machine("cpu"),
        "dtype": None,
        "repeats": 1,
        "cases": [case],
    }
    paths = report.write(results, tmp_path)
    table = (tmp_path / "results.md").read_text()
    assert "| batch x row length | torch items/s | triton items/s | triton vs torch |" in table
    assert "| 2 x 40 float32 | 2000.0 | 4000.0 | 2.00x |" in table
    assert "| 8 x 40 float32 | 4000.0 | - | - |" in table
    assert "FAILED: triton" in table and "not checked |" in table
    assert (tmp_path / "throughput.png") in paths


def test_cpu_name_carries_the_family_and_model_that_tell_the_generation():
    two_cpus = (
        "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
        "model name\t: AMD EPYC\nflags\t\t: fpu avx2\n\n"
        "processor\t: 1\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: Other\n"
    )
    assert report.cpu_name(two_cpus) == "AMD EPYC (family 25, model 17)"
    assert report.cpu_name("model name\t: Some ARM core\n") == "Some ARM core"
    assert report.cpu_name("processor\t: 0\nBogoMIPS\t: 48.00\n") == ""
    assert report.machine("cpu")["cpu"]
