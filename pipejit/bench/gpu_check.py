"""``python -m pipejit.bench gpu-check``: the one command to run on a machine with a GPU.

It runs the cuda-marked tests, then the quick benchmark against transformers on
CUDA in fp32, fp16 and bf16, each with CUDA graphs on and off, and a single-sentence
latency probe (the p50 a served request sees), and writes
``pipejit/bench/results/<date>-<gpu>-quick.{json,md}``. Without CUDA it says so and
exits non-zero. The exit status is 0 only when the tests pass and every output
matched transformers.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
DTYPES = ("float32", "float16", "bfloat16")
# what the benchmark needs from pipejit.bench.quick.run_quick on a GPU
QUICK_OPTIONS = ("device", "dtype", "cuda_graphs")
# torch.compile's own CUDA graphs (cudagraph trees) in place of pipejit's captures
REDUCE_OVERHEAD = "reduce-overhead"
LATENCY_TEXT = "This restaurant is awesome, the service was quick and the food even better."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pipejit-bench gpu-check", description=__doc__)
    parser.add_argument("--model", default="bert-base", help="distilbert or bert-base")
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--batch-sizes", default="1,8,64")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency-calls", type=int, default=200)
    parser.add_argument("--dtypes", default=",".join(DTYPES))
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(
            "gpu-check needs a CUDA GPU, and torch sees none "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}); nothing was run"
        )
        return 2
    started = time.perf_counter()
    report = {"environment": environment()}
    if not args.skip_tests:
        report["tests"] = run_cuda_tests()
        print(f"cuda tests: {report['tests']['summary']}")
    dtypes = [d for d in args.dtypes.split(",") if d]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        from pipejit.bench.models import random_classifier
        from pipejit.bench.workloads import sentences

        model = random_classifier(args.model, Path(scratch) / "model")
        texts = sentences(args.items)
        report["warmup"] = warmup(model, dtypes[0])
        report["latency"] = [
            latency(model, dtype, graphs, args.latency_calls)
            for dtype in dtypes
            for graphs in (False, True)
        ]
        if "float16" in dtypes:  # the alternative to explicit capture, measured once
            report["latency"].append(latency(model, "float16", REDUCE_OVERHEAD, args.latency_calls))
        report["quick"] = quick(model, texts, batch_sizes, args.repeats, dtypes)
    report["model"] = args.model
    report["seconds"] = time.perf_counter() - started
    json_path, md_path = write_report(report, args.out_dir)
    print(f"wrote {json_path} and {md_path} in {report['seconds']:.0f} s")
    return 0 if passed(report) else 1


def environment() -> dict:
    properties = torch.cuda.get_device_properties(0)
    import transformers

    return {
        "gpu": torch.cuda.get_device_name(0),
        "gpu_memory_gib": round(properties.total_memory / 2**30, 1),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }


def run_cuda_tests(timeout: int = 300) -> dict:
    """The cuda-marked tests of this checkout, in a subprocess."""
    tests = REPO / "tests"
    if not tests.is_dir():
        return {"returncode": None, "summary": f"no tests folder at {tests}", "tail": ""}
    command = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider"]
    try:
        done = subprocess.run(
            [*command, str(tests)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"returncode": None, "summary": f"timed out after {timeout} s", "tail": ""}
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return {
        "returncode": done.returncode,
        "summary": lines[-1] if lines else "(no output)",
        "tail": "\n".join(lines[-40:]),
    }


def warmup(model: str, dtype: str) -> dict:
    """Seconds to compile and capture every default bucket (the target: under 60 s)."""
    import pipejit

    start = time.perf_counter()
    pipe = pipejit.pipeline("text-classification", model=model, device="cuda", dtype=dtype)
    built = time.perf_counter() - start
    stats = pipe.warmup()
    result = {
        "dtype": dtype,
        "load_seconds": built,
        "warmup_seconds": time.perf_counter() - start - built,
        "compiles": stats["compiles"],
        "compile_seconds": sum(stats["compile_seconds"].values()),
        "captures": stats["captures"],
        "capture_seconds": sum(stats["capture_seconds"].values()),
        "graphs_disabled": stats["graphs_disabled"],
        "gpu_memory_reserved_gib": torch.cuda.memory_reserved() / 2**30,
    }
    print(
        f"warmup {dtype}: {result['captures']} captures and {result['compiles']} compiles "
        f"in {result['warmup_seconds']:.1f} s"
    )
    return result


def latency(model: str, dtype: str, graphs: bool | str, calls: int) -> dict:
    """Per-call milliseconds of one sentence, for transformers and pipejit, interleaved.
    ``graphs``: pipejit's CUDA graphs on or off, or ``REDUCE_OVERHEAD`` (theirs instead)."""
    import transformers

    import pipejit

    reference = transformers.pipeline(
        "text-classification", model=model, device="cuda", dtype=dtype
    )
    options = {"cuda_graphs": graphs}
    if graphs == REDUCE_OVERHEAD:
        options = {"cuda_graphs": False, "compile_mode": REDUCE_OVERHEAD}
    ours = pipejit.pipeline(
        "text-classification", model=model, device="cuda", dtype=dtype, **options
    )
    from pipejit.bench.parity import TOLERANCE, outputs_match

    for _ in range(3):  # compile and capture outside the timings
        got, expected = ours(LATENCY_TEXT), reference(LATENCY_TEXT)
    parity = outputs_match(got, expected, *TOLERANCE[dtype])
    seconds = {"transformers": [], "pipejit": []}
    for _ in range(calls):
        for name, engine in (("transformers", reference), ("pipejit", ours)):
            torch.cuda.synchronize()
            start = time.perf_counter()
            engine(LATENCY_TEXT)
            seconds[name].append(time.perf_counter() - start)
    stats = ours.stats()
    result = {"dtype": dtype, "cuda_graphs": graphs, "parity": parity}
    result |= {k: stats[k] for k in ("graph_hits", "captures", "compiles", "graphs_disabled")}
    for name, values in seconds.items():
        values.sort()
        result[f"{name}_p50_ms"] = 1e3 * statistics.median(values)
        result[f"{name}_p90_ms"] = 1e3 * values[int(0.9 * (len(values) - 1))]
    print(
        f"latency {dtype} graphs={_graphs_name(graphs)}: "
        f"pipejit p50 {result['pipejit_p50_ms']:.3f} ms, "
        f"transformers p50 {result['transformers_p50_ms']:.3f} ms"
    )
    return result


def quick(model: str, texts: list[str], batch_sizes: list[int], repeats: int, dtypes) -> list:
    """The quick benchmark per dtype, graphs off and on; skipped with the reason if
    ``run_quick`` cannot be told the device, dtype and graphs."""
    from pipejit.bench.quick import run_quick

    missing = [o for o in QUICK_OPTIONS if o not in inspect.signature(run_quick).parameters]
    if missing:
        reason = f"pipejit.bench.quick.run_quick takes no {missing} parameter(s)"
        print(f"quick benchmark skipped: {reason}")
        return [{"skipped": reason}]
    runs = []
    for dtype in dtypes:
        for graphs in (False, True):
            print(f"quick benchmark {dtype}, cuda_graphs={graphs}")
            result = run_quick(
                "text-classification",
                model,
                texts,
                batch_sizes,
                repeats=repeats,
                device="cuda",
                dtype=dtype,
                cuda_graphs=graphs,
            )
            runs.append({"dtype": dtype, "cuda_graphs": graphs, **result})
    return runs


def _graphs_name(graphs: bool | str) -> str:
    return graphs if isinstance(graphs, str) else ("on" if graphs else "off")


def passed(report: dict) -> bool:
    tests = report.get("tests")
    if tests is not None and tests["returncode"] != 0:
        return False
    if any("skipped" in run for run in report["quick"]):
        return False
    if not all(row["parity"] for row in report["latency"]):
        return False
    return all(
        engines["pipejit"]["parity"] for run in report["quick"] for engines in run["runs"].values()
    )


def gpu_slug(name: str) -> str:
    """A file-name-safe form of a GPU's name: 'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "gpu"


def write_report(report: dict, folder: Path) -> tuple[Path, Path]:
    env = report["environment"]
    stem = f"{env['date']}-{gpu_slug(env['gpu'])}-quick"
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / f"{stem}.json", folder / f"{stem}.md"
    json_path.write_text(json.dumps(report, indent=2, default=str))
    md_path.write_text(markdown(report))
    return json_path, md_path


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [
        f"# gpu-check, {env['date']}, {env['gpu']} ({env['gpu_memory_gib']} GiB)",
        "",
        f"`python -m pipejit.bench gpu-check`: torch {env['torch']} (CUDA {env['cuda']}), "
        f"transformers {env['transformers']}; a random {report['model']} classifier; "
        f"{report['seconds']:.0f} s in all.",
        "",
    ]
    if "tests" in report:
        lines += [f"cuda-marked tests: {report['tests']['summary']}", ""]
    if "warmup" in report:
        w = report["warmup"]
        lines += [
            f"`pipe.warmup()` on all default buckets, {w['dtype']}: {w['warmup_seconds']:.1f} s "
            f"({w['compiles']} compiles, {w['compile_seconds']:.1f} s; {w['captures']} CUDA "
            f"graph captures, {w['capture_seconds']:.1f} s; "
            f"{w['gpu_memory_reserved_gib']:.1f} GiB reserved)",
            "",
        ]
    lines += [
        "## One sentence per call (ms, both engines interleaved)",
        "",
        "| dtype | cuda graphs | transformers p50 | pipejit p50 | pipejit p90 | speedup | parity |",
        "|:--|:--|---:|---:|---:|---:|:--|",
    ]
    for row in report["latency"]:
        speedup = row["transformers_p50_ms"] / row["pipejit_p50_ms"]
        lines.append(
            f"| {row['dtype']} | {_graphs_name(row['cuda_graphs'])} "
            f"| {row['transformers_p50_ms']:.3f} | {row['pipejit_p50_ms']:.3f} "
            f"| {row['pipejit_p90_ms']:.3f} | {speedup:.1f}x "
            f"| {'ok' if row['parity'] else 'FAILED'} |"
        )
    lines += ["", "## Quick benchmark (items/s, median of repeats)", ""]
    if any("skipped" in run for run in report["quick"]):
        lines.append(f"skipped: {report['quick'][0]['skipped']}")
        return "\n".join(lines) + "\n"
    lines += [
        "| dtype | cuda graphs | batch | transformers | pipejit | speedup | parity |",
        "|:--|:--|---:|---:|---:|---:|:--|",
    ]
    for run in report["quick"]:
        for batch, engines in run["runs"].items():
            theirs = engines["transformers"]["items_per_s"]
            ours = engines["pipejit"]["items_per_s"]
            lines.append(
                f"| {run['dtype']} | {'on' if run['cuda_graphs'] else 'off'} | {batch} "
                f"| {theirs:.1f} | {ours:.1f} | {ours / theirs:.2f}x "
                f"| {'ok' if engines['pipejit']['parity'] else 'FAILED'} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
