"""``python -m pipejit.bench`` / ``pipejit-bench``: the quick benchmark against transformers."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from pipejit.bench.models import SIZES, minilm_folder, random_classifier
from pipejit.bench.quick import run_quick
from pipejit.bench.workloads import sentences


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pipejit-bench", description=__doc__)
    parser.add_argument(
        "--model",
        default="minilm",
        choices=["minilm", *SIZES],
        help="minilm: the built-in all-MiniLM-L6-v2 (feature-extraction); "
        "distilbert / bert-base: a random classifier of that size (text-classification)",
    )
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true", help="pipejit runs eager")
    parser.add_argument("--out", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args(argv)

    texts = sentences(args.items)
    with tempfile.TemporaryDirectory() as scratch:
        if args.model == "minilm":
            task, model = "feature-extraction", minilm_folder()
        else:
            task, model = "text-classification", random_classifier(args.model, Path(scratch))
        print(f"{task} on {args.model}: {len(texts)} sentences, both engines, interleaved")
        result = run_quick(
            task,
            model,
            texts,
            [int(b) for b in args.batch_sizes.split(",")],
            repeats=args.repeats,
            compile=not args.no_compile,
        )
    print(
        f"ceiling: {result['gemm_flops'] / 1e9:.0f} GFLOP/s fp32 GEMM measured in this run; "
        f"{result['real_tokens']} real tokens x {result['flops_per_token'] / 1e6:.1f} MFLOP/token"
    )
    stats = result["pipejit_stats"]
    print(f"pipejit: {stats['compiles']} compiles, padding ratio {stats['padding_ratio']:.1%}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, default=str))
    failed = [bs for bs, runs in result["runs"].items() if not runs["pipejit"]["parity"]]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
