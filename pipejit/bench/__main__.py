"""``pipejit-bench`` / ``python -m pipejit.bench``: pipejit beside transformers, same run.

With no arguments it runs the quick suite (the README's main job). Subcommands:
``run`` a suite, ``list`` what there is, ``compare`` two runs, ``report`` (rebuild
a run's table and plot) and ``gpu-check`` (the one command for a GPU machine).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from pipejit.bench import report, workloads
from pipejit.bench.measure import run_case
from pipejit.bench.suites import SUITE_NAMES, SUITES

DEFAULT_OUT = Path("bench-out")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        argv = ["run", *argv]
    if argv[0] == "gpu-check":
        from pipejit.bench.gpu_check import main as gpu_check

        return gpu_check(argv[1:])
    args = _parser().parse_args(argv)
    return args.handler(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipejit-bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a suite, both engines interleaved")
    run.add_argument("--suite", default="quick", choices=SUITE_NAMES)
    run.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    run.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"])
    run.add_argument("--batch-sizes", default="1,8,32")
    run.add_argument("--items", type=int, default=128, help="sentences per text workload")
    run.add_argument("--repeats", type=int, default=2)
    run.add_argument("--latency-calls", type=int, default=16)
    run.add_argument("--no-compile", action="store_true", help="pipejit runs eager")
    run.add_argument("--tiny", action="store_true", help="tiny models (a smoke test)")
    run.add_argument(
        "--no-alternatives",
        action="store_true",
        help="only transformers and pipejit (no ONNX Runtime, no bf16 opt-in)",
    )
    run.add_argument("--out", type=Path, default=DEFAULT_OUT)
    run.set_defaults(handler=_run)
    listing = commands.add_parser("list", help="suites, workloads and models")
    listing.set_defaults(handler=_list)
    comparing = commands.add_parser("compare", help="two results.json side by side")
    comparing.add_argument("a", type=Path)
    comparing.add_argument("b", type=Path)
    comparing.set_defaults(handler=_compare)
    rebuilding = commands.add_parser("report", help="rebuild results.md and the plot")
    rebuilding.add_argument("folder", type=Path)
    rebuilding.set_defaults(handler=_report)
    commands.add_parser(
        "gpu-check", help="the 8-minute GPU check, dated results (gpu-check --plan: its steps)"
    )
    return parser


def _run(args: argparse.Namespace) -> int:
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    # the quick suite is a subset of the others
    suites = [s for s in SUITES if s != "quick"] if args.suite == "full" else [args.suite]
    results = {
        "suite": args.suite,
        "command": "pipejit-bench " + " ".join(sys.argv[1:] or ["run"]),
        "machine": report.machine(args.device),
        "dtype": args.dtype,
        "repeats": args.repeats,
        "batch_sizes": batch_sizes,
        "cases": [],
    }
    with tempfile.TemporaryDirectory() as scratch:
        for suite in suites:
            if suite == "kernels":
                continue
            for case in _progress(SUITES[suite](Path(scratch) / suite, args.items, args.tiny)):
                results["cases"].append(
                    run_case(
                        case,
                        batch_sizes,
                        repeats=args.repeats,
                        latency_calls=args.latency_calls,
                        device=args.device,
                        dtype=args.dtype,
                        compile=not args.no_compile,
                        alternatives=not args.no_alternatives,
                    )
                )
    if args.suite in ("kernels", "full"):
        results["kernels"] = _kernel_timings(args)
    for path in report.write(results, args.out):
        print(f"wrote {path}")
    _headline(results)
    return 1 if any(case.get("failed") for case in results["cases"]) else 0


def _progress(cases: list):
    from tqdm.auto import tqdm

    return tqdm(cases, desc="cases", unit="case", leave=False)


def _kernel_timings(args: argparse.Namespace) -> list[dict]:
    try:
        from pipejit.bench.kernel_timings import time_kernels
    except ImportError:
        print("kernel timings not available in this build")
        return []
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    return time_kernels(device=args.device, batch_sizes=batch_sizes)


def _headline(results: dict) -> None:
    """Per case: batch-1 latency and best-batch throughput of both engines."""
    for case in results["cases"]:
        if not case.get("supported", True):
            continue
        best = {}
        for engine in report.engines_of(case):
            batch = max(case["runs"], key=lambda b, e=engine: case["runs"][b][e]["items_per_s"])
            best[engine] = batch, case["runs"][batch][engine]
        cells = []
        for engine, (batch, run) in best.items():
            share = f", {run['ceiling_share']:.0%} of ceiling" if "ceiling_share" in run else ""
            p50 = case["latency_ms"][engine]["p50"]
            cells.append(
                f"{engine} best {run['items_per_s']:.1f} items/s (batch {batch}{share}), "
                f"batch-1 p50 {p50:.1f} ms"
            )
        ratio = best["pipejit"][1]["items_per_s"] / best["transformers"][1]["items_per_s"]
        status = "FAILED parity" if case["failed"] else "parity ok"
        print(f"{case['case']}: " + "; ".join(cells) + f"; best vs best x{ratio:.2f}; {status}")
        if "ceiling" in case:
            print(f"  {report.ceiling_sentence(case['ceiling'])}")


def _list(args: argparse.Namespace) -> int:
    from pipejit.bench import suites

    print("suites:")
    for name in SUITE_NAMES:
        doc = (getattr(suites, name, None).__doc__ or "") if name in SUITES else ""
        extra = {
            "kernels": "post-processing kernels against their references",
            "full": "every suite",
        }.get(name, doc.strip().splitlines()[0] if doc else "")
        print(f"  {name:<11} {extra}")  # fmt: skip
    print("workloads:")
    for name in ("queries", "sentences", "reviews", "images", "audio_clips", "prompts"):
        print(f"  {name:<11} {getattr(workloads, name).__doc__.splitlines()[0]}")
    print("models: distilbert, bert-base (random BERT classifiers), all-MiniLM-L6-v2 (real),")
    print("        vit-base, wav2vec2-base (CTC), gpt2 (random weights at real sizes)")
    return 0


def _compare(args: argparse.Namespace) -> int:
    a, b = (json.loads(_results_file(p).read_text()) for p in (args.a, args.b))
    print(report.compare(a, b))
    return 0


def _report(args: argparse.Namespace) -> int:
    for path in report.rebuild(args.folder):
        print(f"wrote {path}")
    return 0


def _results_file(path: Path) -> Path:
    return path / "results.json" if path.is_dir() else path


if __name__ == "__main__":
    raise SystemExit(main())
