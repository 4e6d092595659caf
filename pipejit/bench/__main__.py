"""``pipejit-bench`` / ``python -m pipejit.bench``: pipejit beside transformers, same run.

With no arguments it runs the quick suite (the README's main job). Subcommands:
``run`` a suite, ``list`` what there is, ``compare`` two runs, ``report`` (rebuild
a run's table and plot) and ``gpu-check`` (the one command for a GPU machine).
Every suite writes results.json, results.md and throughput.png to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from pipejit.bench import report, workloads
from pipejit.bench.measure import run_case
from pipejit.bench.results import unsupported
from pipejit.bench.suites import SETTINGS_SUITES, SUITE_NAMES, SUITES, Options, settings_suite

DEFAULT_OUT = Path("bench-out")
DEFAULT_ITEMS = 128
QUICK_ITEMS = 64


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        argv = ["run", *argv]
    if argv[0] == "gpu-check":
        from pipejit.bench.gpu_check import main as gpu_check

        return gpu_check(argv[1:])
    args = _parser().parse_args(argv)
    if getattr(args, "items", 0) is None:
        args.items = QUICK_ITEMS if args.suite == "quick" else DEFAULT_ITEMS
    return args.handler(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipejit-bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a suite, both engines interleaved")
    run.add_argument("--suite", default="quick", choices=SUITE_NAMES)
    run.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    run.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"])
    run.add_argument("--batch-sizes", default="1,8,32")
    run.add_argument(
        "--items",
        type=int,
        default=None,
        help=f"scales every workload (128: 128 sentences); default {DEFAULT_ITEMS}, "
        f"and {QUICK_ITEMS} for the quick suite (the main job; 5 minutes is its aim)",
    )
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
    serving = run.add_argument_group("serve and http suites")
    serving.add_argument("--callers", default="32", help="serve: concurrent callers, e.g. 1,8,32")
    serving.add_argument("--clients", default="1,8,64", help="http: concurrent clients")
    serving.add_argument(
        "--max-wait-ms", type=float, default=None, help="micro-batcher wait (serve 5, http 0)"
    )
    ray = run.add_argument_group("ray suite")
    ray.add_argument("--actors", type=int, default=2, help="the N of the N-actor run")
    kernels = run.add_argument_group("kernels suite (batch sizes: --batch-sizes)")
    kernels.add_argument("--row-lengths", default="2,1000,30522,250002")
    kernels.add_argument("--kernel-dtypes", default="float32")
    kernels.add_argument("--no-gather", action="store_true", help="skip the fill-mask gather")
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
        "gpu-check", help="the GPU check, dated results (gpu-check --plan: its steps and calls)"
    )
    return parser


def _run(args: argparse.Namespace) -> int:
    batch_sizes = _ints(args.batch_sizes)
    # the quick suite is a subset of the others
    suites = (
        [s for s in SUITE_NAMES if s not in ("quick", "full")]
        if args.suite == "full"
        else [args.suite]
    )
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
            folder = Path(scratch) / suite
            if suite in SETTINGS_SUITES:
                results["cases"] += _settings_suite(suite, folder, _options(args))
                continue
            for case in _progress(SUITES[suite](folder, args.items, args.tiny)):
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
    for path in report.write(results, args.out):
        print(f"wrote {path}")
    _headline(results)
    return 1 if any(case.get("failed") for case in results["cases"]) else 0


def _settings_suite(name: str, folder: Path, options: Options) -> list[dict]:
    """The suite's cases, or one unsupported case when what it needs is not installed."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        run = settings_suite(name)
    except ImportError as error:
        return [unsupported(name, None, f"needs what is not installed here ({error})")]
    return run(folder, options)


def _options(args: argparse.Namespace) -> Options:
    return Options(
        device=args.device,
        items=args.items,
        tiny=args.tiny,
        repeats=args.repeats,
        compile=not args.no_compile,
        batch_sizes=_ints(args.batch_sizes),
        callers=_ints(args.callers),
        clients=_ints(args.clients),
        max_wait_ms=args.max_wait_ms,
        actors=args.actors,
        row_lengths=_ints(args.row_lengths),
        kernel_dtypes=args.kernel_dtypes.split(","),
        gather=not args.no_gather,
    )


def _ints(text: str) -> list[int]:
    return [int(value) for value in text.split(",")]


def _progress(cases: list):
    from tqdm.auto import tqdm

    return tqdm(cases, desc="cases", unit="case", leave=False)


def _headline(results: dict) -> None:
    """Per case: each engine's best rate (and batch-1 latency), best against best."""
    for case in results["cases"]:
        if not case.get("supported", True):
            continue
        base, rate = report.baseline_of(case), f"{case.get('items_name', 'items')}/s"
        best = {}
        for engine in report.engines_of(case):
            cells = {s: runs[engine] for s, runs in case["runs"].items() if engine in runs}
            setting = max(cells, key=lambda s, c=cells: c[s]["items_per_s"])
            best[engine] = setting, cells[setting]
        cells = []
        for engine, (setting, run) in best.items():
            share = f", {run['ceiling_share']:.0%} of ceiling" if "ceiling_share" in run else ""
            p50 = case.get("latency_ms", {}).get(engine, {}).get("p50")
            latency = f", batch-1 p50 {p50:.1f} ms" if p50 is not None else ""
            axis = case.get("axis", "batch")
            cells.append(
                f"{engine} best {run['items_per_s']:.1f} {rate} ({axis} {setting}{share}){latency}"
            )
        ratios = [
            f"{engine} x{run['items_per_s'] / best[base][1]['items_per_s']:.2f}"
            for engine, (_, run) in best.items()
            if engine != base and base in best
        ]
        status = "FAILED parity" if case["failed"] else "parity ok"
        print(
            f"{case['case']}: " + "; ".join(cells) + f"; best vs {base}'s best: "
            f"{', '.join(ratios)}; {status}"
        )
        if "ceiling" in case:
            print(f"  {report.ceiling_sentence(case['ceiling'])}")


def _list(args: argparse.Namespace) -> int:
    print("suites (pipejit-bench run --suite NAME):")
    for name, build in SUITES.items():
        print(f"  {name:<11} {' '.join((build.__doc__ or '').split())}")
    for name, (_, what, flags) in SETTINGS_SUITES.items():
        print(f"  {name:<11} {what}; flags: {flags}")
    print(f"  {'full':<11} every suite but quick")
    print("workloads:")
    for name in ("queries", "sentences", "reviews", "images", "audio_clips", "prompts"):
        print(f"  {name:<11} {getattr(workloads, name).__doc__.splitlines()[0]}")
    for name in ("noise_images", "long_clips", "speech_texts"):
        print(f"  {name:<12} {getattr(workloads, name).__doc__.splitlines()[0]}")
    print("models (random weights at real sizes unless said; --tiny: tiny ones):")
    print("  distilbert, bert-base, minilm (BERT classifiers), all-MiniLM-L6-v2 (real),")
    print("  vit-base, CLIP and OWL-ViT (mid size), wav2vec2-base (CTC), whisper-tiny,")
    print("  VITS (mms-tts-eng size), gpt2 (trained BPE; or GPT-2's 50,257-token head)")
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
