"""``pipejit-bench gpu-check``: the one command for a short GPU window.

It needs only what the GPU machine has (torch, transformers, triton) and pipejit
installed with ``pip install --no-deps -e .``. Steps, each a subprocess under its own
time limit (``--plan`` prints them without a GPU):

1. ``cuda-tests``: the cuda-marked tests;
2. ``kernels``: every Triton kernel against its torch reference at fp32, fp16 and bf16
   (the kernel tests, compiled on the GPU);
3. ``model``: a random bert-base classifier with MiniLM's real tokenizer, saved once;
4. ``warmup``: load, compile and capture every default bucket, timed (bf16);
5. ``latency``: one sentence per call, p50 and p99, per dtype with pipejit's CUDA graphs
   on and off, transformers interleaved in the same loop;
6. ``quick``: the quick benchmark per dtype, transformers side by side.

A step that fails or runs past its limit is recorded as such (with what it had
measured so far: steps write their result as they go) and the next step runs. The
dated results ``pipejit/bench/results/<date>-<gpu>-gpu-check.{json,md}`` are written
in every case. ``--steps`` runs some of the steps (the steps that load the model
bring the ``model`` step with them); their names then end the results' file names.
``--logs DIR`` keeps each step's whole output there. The exit status is 0 only when
every step passed and every output matched transformers.

``--device cpu`` rehearses the whole check on the CPU (graphs "on" becomes "auto",
which a CPU runs without graphs), so CI exercises this script.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
DTYPES = ("bfloat16", "float16", "float32")  # the one GPU users pick first, first
# A device call runs at most 10 minutes and a window lends 15 in all, starts included: the
# check runs as two calls, the second sent while the machine is still warm (30 s). Limits
# from the first H200 window (2026-12-04): 20-50 s a cuda-marked test (one or two compiles
# of 10-15 s each), 40 s a dtype for the latency step, 95 s a dtype for the quick one.
CALL_LIMIT_SECONDS = 600
TEST_WORKERS = 4
WINDOW_CALLS = (("cuda-tests", "kernels"), ("model", "warmup", "latency", "quick"))
LATENCY_TEXT = "This restaurant is awesome, the service was quick and the food even better."
# kernel tests that need no GPU to prove anything (built ahead of time, timed by the bench)
CPU_ONLY_KERNEL_TESTS = "not aot_build and not kernel_timings"


@dataclass
class Settings:
    """What the steps run on; serialised to each step's subprocess."""

    device: str = "cuda"
    model_size: str = "bert-base"
    items: int = 256
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 64])
    repeats: int = 2
    latency_calls: int = 100
    dtypes: list[str] = field(default_factory=lambda: list(DTYPES))
    compile: bool = True
    tests: str = str(REPO / "tests")
    scratch: str = ""
    budget_scale: float = 1.0  # a CPU rehearsal on a busy machine needs more than a GPU
    logs: str = ""  # a folder for each step's whole output, when set

    @property
    def model_folder(self) -> str:
        return str(Path(self.scratch) / "model")

    def graph_modes(self) -> list[bool | str]:
        """Graphs off and on; on a CPU rehearsal "on" is "auto" (no graphs there)."""
        return [False, True if self.device.startswith("cuda") else "auto"]


@dataclass(frozen=True)
class Step:
    name: str
    budget_s: int
    what: str
    command: Callable[[Settings, Path], list[str]]


def _pytest(arguments: Callable[[Settings], list[str]]) -> Callable[[Settings, Path], list[str]]:
    def command(settings: Settings, result: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *xdist_workers(settings.device),
            *arguments(settings),
        ]

    return command


def xdist_workers(device: str, installed: bool | None = None) -> list[str]:
    """pytest-xdist's workers on a GPU machine that has it: the tests' time there is mostly
    compiling (10-15 s a compile on the H200's host, on CPU cores the GPU leaves idle)."""
    if installed is None:
        installed = importlib.util.find_spec("xdist") is not None
    return ["-n", str(TEST_WORKERS)] if installed and device.startswith("cuda") else []


def _in_child(name: str) -> Callable[[Settings, Path], list[str]]:
    def command(settings: Settings, result: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "pipejit.bench.gpu_check",
            "--run-step",
            name,
            "--settings",
            json.dumps(asdict(settings)),
            "--result",
            str(result),
        ]

    return command


STEPS = (
    Step("cuda-tests", 360, "the cuda-marked tests", _pytest(lambda s: ["-m", "cuda", s.tests])),
    Step(
        "kernels",
        120,
        "every Triton kernel against its torch reference, fp32/fp16/bf16",
        _pytest(lambda s: [str(Path(s.tests) / "kernels"), "-k", CPU_ONLY_KERNEL_TESTS]),
    ),
    Step("model", 20, "a random bert-base classifier, saved once", _in_child("model")),
    Step(
        "warmup", 90, "load, compile and capture every default bucket (bf16)", _in_child("warmup")
    ),
    Step("latency", 130, "batch-1 p50/p99 per dtype, graphs on and off", _in_child("latency")),
    Step("quick", 160, "quick benchmark per dtype, transformers side by side", _in_child("quick")),
)


def plan(steps=STEPS) -> str:
    lines = [f"{i}. {s.name:<11} {s.budget_s:>4} s  {s.what}" for i, s in enumerate(steps, 1)]
    total = sum(s.budget_s for s in steps)
    lines.append(f"   total       {total:>4} s  ({total / 60:.1f} min)")
    budgets = {s.name: s.budget_s for s in steps}
    for names in WINDOW_CALLS:
        seconds = sum(budgets[name] for name in names)
        chosen = ",".join(name for name in names if name != "model")
        lines.append(f"   one call:   {seconds:>4} s  gpu-check --steps {chosen}")
    return "\n".join(lines)


NEEDS_MODEL = ("warmup", "latency", "quick")


def select(names: list[str], steps=STEPS) -> tuple[Step, ...]:
    """The named steps in the check's own order, with ``model`` if any of them loads it."""
    known = [step.name for step in steps]
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"no step named {', '.join(unknown)}; the steps: {', '.join(known)}")
    wanted = set(names) | ({"model"} if set(names) & set(NEEDS_MODEL) else set())
    return tuple(step for step in steps if step.name in wanted)


def run_step(step: Step, settings: Settings, result: Path) -> dict:
    """One step in a subprocess under its time limit; never raises."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            step.command(settings, result),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=step.budget_s * settings.budget_scale,
            check=False,
        )
        status = {0: "passed", 5: "no tests"}.get(done.returncode, "failed")
        output = done.stdout + done.stderr
    except subprocess.TimeoutExpired as expired:
        status = "timed out"
        output = _text(expired.stdout) + _text(expired.stderr)
    lines = [line for line in output.splitlines() if line.strip()]
    record = {
        "status": status,
        "seconds": round(time.perf_counter() - start, 1),
        "budget_s": round(step.budget_s * settings.budget_scale),
        "summary": lines[-1] if lines else "(no output)",
        "tail": "\n".join(lines[-30:]),
    }
    if result.exists():
        record["result"] = json.loads(result.read_text())
    if settings.logs:
        Path(settings.logs).mkdir(parents=True, exist_ok=True)
        (Path(settings.logs) / f"{step.name}.log").write_text(output)
    return record


def _text(data: bytes | str | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def run_check(
    settings: Settings, steps=STEPS, runner: Callable[[Step, Settings, Path], dict] = run_step
) -> dict:
    """Every step in order, whatever the earlier ones did; the report of all of them."""
    started = time.perf_counter()
    report = {"environment": environment(settings.device), "settings": asdict(settings)}
    report["steps"] = {}
    for step in steps:
        print(f"[gpu-check] {step.name} (limit {step.budget_s} s): {step.what}", flush=True)
        record = runner(step, settings, Path(settings.scratch) / f"{step.name}.json")
        report["steps"][step.name] = record
        print(f"[gpu-check] {step.name}: {record['status']} in {record['seconds']} s", flush=True)
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def environment(device: str) -> dict:
    import torch
    import transformers

    env = {
        "device": device,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    if device.startswith("cuda") and torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        env["gpu"] = torch.cuda.get_device_name(0)
        env["gpu_memory_gib"] = round(properties.total_memory / 2**30, 1)
        env["capability"] = list(torch.cuda.get_device_capability(0))
    else:
        env["gpu"] = f"{device} rehearsal"
    return env


# ---- the steps that run in a child process: each calls ``emit`` with its result so far ----


def step_model(settings: Settings, emit: Callable[[dict], None]) -> None:
    from pipejit.bench.models import random_classifier

    start = time.perf_counter()
    random_classifier(settings.model_size, Path(settings.model_folder))
    emit({"model": settings.model_size, "seconds": time.perf_counter() - start})


def step_warmup(settings: Settings, emit: Callable[[dict], None]) -> None:
    """Seconds to load, then compile and capture every default bucket."""
    import pipejit

    dtype = "bfloat16" if "bfloat16" in settings.dtypes else settings.dtypes[0]
    start = time.perf_counter()
    pipe = pipejit.pipeline(
        "text-classification",
        model=settings.model_folder,
        device=settings.device,
        dtype=dtype,
        compile=settings.compile,
    )
    loaded = time.perf_counter() - start
    emit({"dtype": dtype, "load_seconds": loaded})
    stats = pipe.warmup()
    emit(
        {
            "dtype": dtype,
            "load_seconds": loaded,
            "warmup_seconds": time.perf_counter() - start - loaded,
            "compiles": stats["compiles"],
            "compile_seconds": sum(stats["compile_seconds"].values()),
            "captures": stats.get("captures", 0),
            "capture_seconds": sum(stats.get("capture_seconds", {}).values()),
            "graphs_disabled": stats.get("graphs_disabled"),
        }
    )


def step_latency(settings: Settings, emit: Callable[[dict], None]) -> None:
    """Per-call milliseconds of one sentence, both engines interleaved, per dtype and graphs."""
    rows = []
    for dtype in settings.dtypes:
        for graphs in settings.graph_modes():
            rows.append(latency(settings, dtype, graphs))
            emit({"rows": rows})


def latency(settings: Settings, dtype: str, graphs: bool | str) -> dict:
    import transformers

    import pipejit
    from pipejit.bench.parity import TOLERANCE, outputs_match
    from pipejit.bench.timing import interleaved, percentiles
    from pipejit.engine.stats import stage_seconds_each

    device, folder = settings.device, settings.model_folder
    reference = transformers.pipeline(
        "text-classification", model=folder, device=device, dtype=dtype
    )
    ours = pipejit.pipeline(
        "text-classification",
        model=folder,
        device=device,
        dtype=dtype,
        compile=settings.compile,
        cuda_graphs=graphs,
    )
    for _ in range(3):  # compile and capture outside the timings
        got, expected = ours(LATENCY_TEXT), reference(LATENCY_TEXT)
    before = ours.stats()["stage_seconds"]
    seconds = interleaved(
        {"transformers": lambda: reference(LATENCY_TEXT), "pipejit": lambda: ours(LATENCY_TEXT)},
        settings.latency_calls,
        device=device,
    )
    stats = ours.stats()
    each = stage_seconds_each(before, stats["stage_seconds"], len(seconds["pipejit"]))
    row = {
        "dtype": dtype,
        "cuda_graphs": graphs,
        "parity": outputs_match(got, expected, *TOLERANCE[dtype]),
        "graph_hits": stats.get("graph_hits", 0),
        "compiles": stats["compiles"],
        # where a call's time goes on the host, in microseconds a call
        "pipejit_stage_us": {stage: round(1e6 * value, 1) for stage, value in each.items()},
    }
    for name, values in seconds.items():
        latency = percentiles(1e3 * x for x in values)
        row[f"{name}_p50_ms"], row[f"{name}_p99_ms"] = latency["p50"], latency["p99"]
    return row


def step_quick(settings: Settings, emit: Callable[[dict], None]) -> None:
    """The quick benchmark per dtype (graphs as pipejit's default picks them)."""
    from pipejit.bench.quick import run_quick
    from pipejit.bench.workloads import sentences

    texts = sentences(settings.items)
    runs = []
    for dtype in settings.dtypes:
        result = run_quick(
            "text-classification",
            settings.model_folder,
            texts,
            settings.batch_sizes,
            repeats=settings.repeats,
            compile=settings.compile,
            device=settings.device,
            dtype=dtype,
        )
        runs.append({"dtype": dtype, **result})
        emit({"runs": runs})


STEP_FUNCTIONS = {
    "model": step_model,
    "warmup": step_warmup,
    "latency": step_latency,
    "quick": step_quick,
}


def _child(name: str, settings: Settings, result: Path) -> int:
    def emit(value: dict) -> None:
        result.write_text(json.dumps(value, default=str))

    STEP_FUNCTIONS[name](settings, emit)
    return 0


# ---- verdict and report ----


def passed(report: dict) -> bool:
    steps = report["steps"]
    if any(record["status"] != "passed" for record in steps.values()):
        return False
    rows = steps.get("latency", {}).get("result", {}).get("rows", [])
    runs = steps.get("quick", {}).get("result", {}).get("runs", [])
    return all(row["parity"] for row in rows) and all(
        engines["pipejit"]["parity"] for run in runs for engines in run["runs"].values()
    )


def gpu_slug(name: str) -> str:
    """A file-name-safe form of a GPU's name: 'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "gpu"


def write_report(report: dict, folder: Path) -> tuple[Path, Path]:
    env = report["environment"]
    stem = f"{env['date']}-{gpu_slug(env['gpu'])}-gpu-check"
    if report.get("partial"):
        stem += "-" + "-".join(report["partial"])
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / f"{stem}.json", folder / f"{stem}.md"
    json_path.write_text(json.dumps(report, indent=1, default=str))
    md_path.write_text(markdown(report))
    return json_path, md_path


def markdown(report: dict) -> str:
    from pipejit.bench.report import stage_sentence

    env = report["environment"]
    steps = report["steps"]
    lines = [
        f"# gpu-check, {env['date']}, {env['gpu']}",
        "",
        f"`pipejit-bench gpu-check`: torch {env['torch']} (CUDA {env['cuda']}), "
        f"transformers {env['transformers']}, triton {env['triton']}; "
        f"{report['seconds']:.0f} s in all. Verdict: {'passed' if passed(report) else 'FAILED'}.",
        "",
        "| step | status | seconds | limit | last line |",
        "|:--|:--|---:|---:|:--|",
    ]
    for name, record in steps.items():
        summary = record["summary"].replace("|", "/")[:120]
        lines.append(
            f"| {name} | {record['status']} | {record['seconds']} | {record['budget_s']} "
            f"| {summary} |"
        )
    warm = steps.get("warmup", {}).get("result")
    if warm and "warmup_seconds" in warm:
        lines += [
            "",
            f"Warmup, {warm['dtype']}: load {warm['load_seconds']:.1f} s, then "
            f"{warm['warmup_seconds']:.1f} s for {warm['compiles']} compiles "
            f"({warm['compile_seconds']:.1f} s) and {warm['captures']} CUDA graph captures "
            f"({warm['capture_seconds']:.1f} s).",
        ]
    rows = steps.get("latency", {}).get("result", {}).get("rows", [])
    if rows:
        lines += [
            "",
            "## One sentence per call (ms, both engines interleaved)",
            "",
            "| dtype | cuda graphs | transformers p50 | p99 | pipejit p50 | p99 | speedup "
            "| parity |",
            "|:--|:--|---:|---:|---:|---:|---:|:--|",
        ]
        for r in rows:
            lines.append(
                f"| {r['dtype']} | {r['cuda_graphs']} | {r['transformers_p50_ms']:.3f} "
                f"| {r['transformers_p99_ms']:.3f} | {r['pipejit_p50_ms']:.3f} "
                f"| {r['pipejit_p99_ms']:.3f} "
                f"| {r['transformers_p50_ms'] / r['pipejit_p50_ms']:.2f}x "
                f"| {'ok' if r['parity'] else 'FAILED'} |"
            )
        lines.append("")
        lines += [
            f"pipejit's microseconds a call by stage, {r['dtype']}, cuda graphs "
            f"{r['cuda_graphs']}: "
            + "; ".join(f"{stage} {us:.0f}" for stage, us in r["pipejit_stage_us"].items())
            + "."
            for r in rows
            if "pipejit_stage_us" in r
        ]
    runs = steps.get("quick", {}).get("result", {}).get("runs", [])
    if runs:
        lines += [
            "",
            "## Quick benchmark (items/s, median of repeats)",
            "",
            "| dtype | batch | transformers | pipejit | speedup | parity |",
            "|:--|---:|---:|---:|---:|:--|",
        ]
        for run in runs:
            for batch, engines in run["runs"].items():
                theirs = engines["transformers"]["items_per_s"]
                ours = engines["pipejit"]["items_per_s"]
                parity = "ok" if engines["pipejit"]["parity"] else "FAILED"
                lines.append(
                    f"| {run['dtype']} | {batch} | {theirs:.1f} | {ours:.1f} "
                    f"| {ours / theirs:.2f}x | {parity} |"
                )
        lines.append("")
        lines += [
            f"{run['dtype']}: {stage_sentence(run['pipejit_stage_ms'])}"
            for run in runs
            if "pipejit_stage_ms" in run
        ]
    failed = [(n, r) for n, r in steps.items() if r["status"] not in ("passed",)]
    for name, record in failed:
        lines += ["", f"## {name}: {record['status']}", "", "```", record["tail"], "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pipejit-bench gpu-check", description=__doc__)
    parser.add_argument("--plan", action="store_true", help="print the steps and their limits")
    parser.add_argument("--device", default="cuda", help="cuda, or cpu for a rehearsal")
    parser.add_argument("--model-size", default="bert-base", help="bert-base, distilbert, tiny")
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--batch-sizes", default="1,8,64")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--latency-calls", type=int, default=100)
    parser.add_argument("--dtypes", default=",".join(DTYPES))
    parser.add_argument("--no-compile", action="store_true", help="pipejit runs eager")
    parser.add_argument("--tests", default=str(REPO / "tests"), help="the tests folder")
    parser.add_argument("--budget-scale", type=float, default=1.0, help="scale every limit")
    parser.add_argument("--steps", help="comma-separated step names (default: all of them)")
    parser.add_argument("--logs", default="", help="a folder for each step's whole output")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--run-step", choices=sorted(STEP_FUNCTIONS), help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plan:
        print(plan())
        return 0
    if args.run_step:
        return _child(args.run_step, Settings(**json.loads(args.settings)), args.result)
    try:
        steps = select(args.steps.split(",")) if args.steps else STEPS
    except ValueError as error:
        parser.error(str(error))
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            "gpu-check needs a CUDA GPU, and torch sees none "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}); nothing was run. "
            "`--plan` shows the steps; `--device cpu` rehearses them."
        )
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        settings = Settings(
            device=args.device,
            model_size=args.model_size,
            items=args.items,
            batch_sizes=[int(b) for b in args.batch_sizes.split(",")],
            repeats=args.repeats,
            latency_calls=args.latency_calls,
            dtypes=[d for d in args.dtypes.split(",") if d],
            compile=not args.no_compile,
            tests=args.tests,
            scratch=scratch,
            budget_scale=args.budget_scale,
            logs=args.logs,
        )
        report = run_check(settings, steps)
    if steps != STEPS:
        report["partial"] = [step.name for step in steps]
    json_path, md_path = write_report(report, args.out_dir)
    print(f"wrote {json_path} and {md_path} in {report['seconds']:.0f} s")
    return 0 if passed(report) else 1


if __name__ == "__main__":
    raise SystemExit(main())
