"""Every suite of ``pipejit-bench run`` end to end on tiny models and a few items: each
writes results.json with every engine's figures and parity, results.md and the plot."""

import json

import pytest

from pipejit.bench.__main__ import main
from pipejit.bench.suites import SETTINGS_SUITES, SUITE_NAMES

RUN = ["run", "--tiny", "--items", "8", "--batch-sizes", "2", "--repeats", "1",
       "--latency-calls", "1", "--no-compile", "--no-alternatives"]  # fmt: skip
OPTIONS = {
    "text": ["--items", "4"],  # its cases probe the GEMM ceiling: seconds each
    "serve": ["--callers", "1,4"],
    "http": ["--clients", "1,4"],
    "kernels": ["--row-lengths", "2,40"],
}
# quick: tests/bench/test_cli.py
SUITES = ("text", "vision", "audio", "generation", *SETTINGS_SUITES)


@pytest.fixture(scope="module")
def run_suite(tmp_path_factory):
    """``run(name)``: the suite's results and output folder, each suite run once."""
    done = {}

    def run(name: str):
        if name not in done:
            out = tmp_path_factory.mktemp(name)
            status = main([*RUN, "--suite", name, *OPTIONS.get(name, []), "--out", str(out)])
            results = json.loads((out / "results.json").read_text())
            done[name] = status, results, out
        return done[name]

    return run


def test_every_suite_is_tested_here_or_in_test_cli():
    assert set(SUITE_NAMES) == {*SUITES, "quick", "full"}


@pytest.mark.parametrize("name", SUITES)
def test_suite_writes_every_engines_figures_parity_table_and_plot(run_suite, name):
    status, results, out = run_suite(name)
    assert status == 0 and results["suite"] == name and results["cases"]
    table = (out / "results.md").read_text()
    for case in results["cases"]:
        assert case.get("supported", True), case.get("reason")
        assert not case["failed"], case["case"]
        assert f"## {case['case']}" in table
        baseline = case.get("baseline", "transformers")
        assert baseline in case["engines"] and len(case["engines"]) >= 2
        for runs in case["runs"].values():
            assert baseline in runs
            for engine, run in runs.items():
                assert engine in case["engines"]
                assert run["spread"][0] <= run["items_per_s"] <= run["spread"][1]
                assert run["items_per_s"] > 0 and run["parity"] in (True, False, None)
            # every case checks some engine against its reference
            assert any(run["parity"] for engine, run in runs.items() if engine != baseline) or (
                name == "kernels" and case["task"] is None  # Triton, checked on CUDA only
            )
    assert (out / "throughput.png").read_bytes()[:4] == b"\x89PNG"


def _cases(run_suite, name):
    return {case["case"]: case for case in run_suite(name)[1]["cases"]}


def test_vision_runs_classification_and_zero_shot_through_run_case(run_suite):
    cases = _cases(run_suite, "vision")
    assert sorted(c["task"] for c in cases.values()) == [
        "image-classification",
        "image-classification",
        "zero-shot-image-classification",
        "zero-shot-object-detection",
    ]
    for case in cases.values():
        assert case["engines"] == ["transformers", "pipejit"]
        assert case["runs"]["2"]["pipejit"]["parity"] is True
        assert set(case["latency_ms"]["pipejit"]) == {"p50", "p90", "p99"}


def test_audio_reports_seconds_of_audio_per_second(run_suite):
    cases = _cases(run_suite, "audio")
    assert sorted(c["task"] for c in cases.values()) == [
        *["automatic-speech-recognition"] * 3,
        "text-to-audio",
    ]
    for case in cases.values():
        assert case["unit"] == "s of audio" and case["units"] > 0
        run = case["runs"]["2"]["pipejit"]
        per_item = case["units"] / case["items"]
        assert run["units_per_s"] == pytest.approx(run["items_per_s"] * per_item)
    clips = cases["automatic-speech-recognition whisper x long clips"]
    assert clips["units"] == pytest.approx(5.0)  # one clip: the shortest, 5 s


def test_generation_reports_new_tokens_per_second(run_suite):
    cases = _cases(run_suite, "generation")
    wide = cases["text-generation gpt2-50257 x long prompts"]
    assert wide["units"] == 2 * 8  # two prompts, 8 new tokens each (no EOS in its vocabulary)
    bpe = cases["text-generation gpt2 x prompts"]
    assert 0 < bpe["units"] <= 10  # one prompt, up to 8 tokens, counted from its text
    for case in cases.values():
        run = case["runs"]["2"]["pipejit"]
        assert case["unit"] == "new tokens" and run["units_per_s"] > 0


def test_serve_compares_direct_calls_and_the_micro_batcher_per_caller_count(run_suite):
    (case,) = run_suite("serve")[1]["cases"]
    assert case["axis"] == "callers" and list(case["runs"]) == ["1", "4"]
    assert case["engines"] == ["direct", "micro-batcher"] and case["items_name"] == "requests"
    for runs in case["runs"].values():
        assert runs["micro-batcher"]["parity"] is True
        latency = runs["micro-batcher"]["latency_ms"]
        assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"]
    assert "| callers | direct requests/s |" in (run_suite("serve")[2] / "results.md").read_text()


def test_http_compares_both_servers_per_client_count(run_suite):
    (case,) = run_suite("http")[1]["cases"]
    assert case["axis"] == "clients" and list(case["runs"]) == ["1", "4"]
    assert case["engines"] == ["pipejit", "transformers"] and case["mismatches"] == {"1": 0, "4": 0}
    for runs in case["runs"].values():
        assert runs["pipejit"]["latency_ms"]["p99"] > 0 and runs["pipejit"]["parity"] is True


def test_ray_compares_one_process_one_actor_and_n_actors(run_suite):
    (case,) = run_suite("ray")[1]["cases"]
    (runs,) = case["runs"].values()
    assert list(runs) == ["single-process", "ray-1-actor", "ray-2-actors"]
    for engine in ("ray-1-actor", "ray-2-actors"):
        assert runs[engine]["parity"] is True and runs[engine]["startup_s"] > 0


def test_kernels_times_each_kernel_per_shape_and_the_fill_mask_gather(run_suite):
    cases = _cases(run_suite, "kernels")
    kernels = [c for c in cases.values() if c["case"].startswith("kernel ")]
    assert len(kernels) == 5
    for case in kernels:
        assert set(case["runs"]) == {"2 x 2 float32", "2 x 40 float32"}
        for runs in case["runs"].values():
            assert set(runs) == {"torch", "transformers"}  # Triton only interprets on a CPU
            assert all(run["ms"] > 0 and run["gb_per_s"] > 0 for run in runs.values())
    (gather,) = [c for c in cases.values() if c["task"] == "fill-mask"]
    assert gather["runs"]["32"]["mask rows"]["parity"] is True
