"""pipejit-bench end to end on tiny models: result files, their schema, compare, report, parity."""

import json

import pytest

import pipejit
from pipejit.bench.__main__ import main

RUN = ["run", "--tiny", "--items", "8", "--batch-sizes", "1,2", "--repeats", "1",
       "--latency-calls", "2", "--no-compile", "--no-alternatives"]  # fmt: skip


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("quick")
    assert main([*RUN, "--suite", "quick", "--out", str(out)]) == 0
    return out


def test_run_writes_results_table_and_plot(quick_run):
    results = json.loads((quick_run / "results.json").read_text())
    assert results["suite"] == "quick"
    assert {"date", "cpu", "torch", "transformers", "git_commit"} <= set(results["machine"])
    assert [c["task"] for c in results["cases"]] == ["text-classification", "feature-extraction"]
    for case in results["cases"]:
        assert not case["failed"] and case["items"] == 8 and case["real_tokens"] > 8
        assert set(case["runs"]) == {"1", "2"}
        for runs in case["runs"].values():
            for engine in ("transformers", "pipejit"):
                run = runs[engine]
                assert run["items_per_s"] > 0 and 0 < run["ceiling_share"]
                assert run["spread"][0] <= run["items_per_s"] <= run["spread"][1]
        assert set(case["latency_ms"]["pipejit"]) == {"p50", "p90", "p99"}
        assert 0 <= case["padding_ratio"] < 1 and case["peak_memory_mb"] > 0
        stages = case["pipejit_stage_ms"]
        assert set(stages) == {"1", "2"}
        assert all(ms["preprocess"] > 0 and ms["launch"] > 0 for ms in stages.values())
        # one forward an item at batch 1; at batch 2 pairs, but for pairs the buckets cut
        forwards = case["pipejit_forwards_a_pass"]
        assert forwards["1"] == 8 and 4 <= forwards["2"] <= 8
    table = (quick_run / "results.md").read_text()
    assert "## text-classification tiny x sentences" in table and "| 2 |" in table
    assert "pipejit's milliseconds a pass by stage at batch 1 / 2: preprocess " in table
    assert "pipejit's forwards a pass at batch 1 / 2: 8 / " in table and " for 8 items." in table
    header, _, row = next(
        lines
        for lines in zip(*[table.splitlines()[i:] for i in range(3)])
        if lines[0].startswith("| batch |")
    )
    cells = dict(zip(header.split("|"), row.split("|")))
    float(cells[" warmup (s) "])  # pipejit's first pass, apart from the timed ones
    assert cells[" parity "].strip() == "ok"
    assert (quick_run / "throughput.png").read_bytes()[:4] == b"\x89PNG"


def test_report_rebuilds_and_compare_gives_ratios(quick_run, tmp_path, capsys):
    (quick_run / "results.md").unlink()
    assert main(["report", str(quick_run)]) == 0
    assert (quick_run / "results.md").exists()
    results = json.loads((quick_run / "results.json").read_text())
    faster = json.loads(json.dumps(results))
    for case in faster["cases"]:
        for runs in case["runs"].values():
            runs["pipejit"]["items_per_s"] *= 2
    (tmp_path / "b.json").write_text(json.dumps(faster))
    capsys.readouterr()
    assert main(["compare", str(quick_run), str(tmp_path / "b.json")]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "| pipejit |" in line]
    assert len(rows) == 4 and all(row.endswith("| 2.00x |") for row in rows)


@pytest.fixture
def classifier_only(monkeypatch):
    """The quick suite cut to its tiny classifier case."""
    from pipejit.bench import suites

    quick = suites.quick
    monkeypatch.setitem(suites.SUITES, "quick", lambda *args: quick(*args)[:1])


def test_a_run_with_wrong_outputs_is_marked_failed(tmp_path, monkeypatch, classifier_only):
    build = pipejit.pipeline

    def wrong_scores(*args, **kwargs):
        pipe = build(*args, **kwargs)
        postprocess = pipe.task.postprocess

        def shifted(*a, **k):
            out = postprocess(*a, **k)
            if pipe.task.name != "text-classification":
                return out
            rows = out if isinstance(out, list) else [out]
            shifted_rows = [{**row, "score": row["score"] + 0.1} for row in rows]
            return shifted_rows if isinstance(out, list) else shifted_rows[0]

        pipe.task.postprocess = shifted
        return pipe

    monkeypatch.setattr(pipejit, "pipeline", wrong_scores)
    assert main([*RUN, "--suite", "quick", "--out", str(tmp_path)]) == 1
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["cases"][0]["failed"]
    assert "FAILED" in (tmp_path / "results.md").read_text()


def test_onnx_runtime_runs_beside_pipejit_once_its_export_is_done(
    tmp_path, monkeypatch, classifier_only
):
    pytest.importorskip("onnxruntime")
    from pipejit.bench import onnx_engine

    exports = []
    monkeypatch.setattr(onnx_engine, "export", lambda *args: exports.append(args))
    with_onnx = [arg for arg in RUN if arg != "--no-alternatives"]
    assert main([*with_onnx, "--suite", "quick", "--out", str(tmp_path)]) == 0
    (case,) = json.loads((tmp_path / "results.json").read_text())["cases"]
    assert case["engines"][:3] == ["transformers", "pipejit", "onnxruntime"]
    assert not case["failed"] and case["runs"]["2"]["onnxruntime"]["parity"]
    assert exports == []  # the child process exported, not this one
    assert case["first_calls_seconds"] > 0
    assert "first calls" in (tmp_path / "results.md").read_text()


def test_first_calls_beside_the_export_run_no_single_row(model_folder):
    from pipejit.bench.measure import Case, _first_calls
    from tests.models import sentences

    texts = sentences(16, seed=3)
    folder = model_folder("text-classification")
    ours = pipejit.pipeline("text-classification", model=folder, compile=False)
    buckets = []

    class Export:  # what _first_calls needs of an ExportJob: its wait, timed against calls
        def wait(self):
            buckets.append(list(ours.stats()["buckets"]))

    # mixed lengths at batch 8 would run items alone: those compile the one-row graph
    assert any(rows == 1 for rows, _ in _buckets_of(texts, 8, folder))
    case = Case("c", "text-classification", "unused", texts, {"truncation": True})
    assert _first_calls(ours, case, [1, 8], Export()) > 0
    (beside_the_export,) = buckets
    assert beside_the_export and not any(rows == 1 for rows, _ in beside_the_export)
    assert any(rows == 1 for rows, _ in ours.stats()["buckets"])  # the item, after it


def _buckets_of(texts, batch_size, folder):
    pipe = pipejit.pipeline("text-classification", model=folder, compile=False)
    pipe(texts, batch_size=batch_size, truncation=True)
    return pipe.stats()["buckets"]


def test_unsupported_tasks_are_recorded_not_fatal(tmp_path, monkeypatch, classifier_only):
    from pipejit.bench import suites

    cases = suites.SUITES["quick"]

    def unknown(*args):
        (case,) = cases(*args)
        case.task = "no-such-task"
        return [case]

    monkeypatch.setitem(suites.SUITES, "quick", unknown)
    assert main([*RUN, "--suite", "quick", "--out", str(tmp_path)]) == 0
    (case,) = json.loads((tmp_path / "results.json").read_text())["cases"]
    assert case["supported"] is False and "no-such-task" in case["reason"]


def test_list_names_every_suite(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for suite in ("quick", "text", "vision", "audio", "generation", "kernels", "full"):
        assert f"  {suite}" in out
