"""Cold against warm process start: the time to a first compiled result, in fresh processes.

``python -m pipejit.bench.cold_start`` runs rounds of two subprocesses, one after
the other (a shared machine's speed drifts: compare within a round), each with
its own empty inductor cache directory, so that only what is measured can help:
- ``cold``: nothing cached; compiles, then writes its artifacts to a fresh
  ``compile_cache`` folder;
- ``warm``: loads that folder (``torch.compiler.load_cache_artifacts``) into its own
  empty inductor cache first, as a fresh machine or container would;
- ``local``: no artifacts folder, but the cold run's inductor cache directory:
  torch's own on-disk cache on the same machine.
On a CPU the artifacts hold inductor's generated code but not the C++ kernels
built from it, which ``warm`` compiles again and ``local`` finds on disk; on CUDA
the artifacts carry the compiled Triton kernels as well.
Each reports the whole process's seconds, the seconds from ``pipejit.pipeline(...)``
to the first result, the compile seconds within it, and the artifacts it loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipejit.bench.models import minilm_folder

TEXTS = ["a short one", "a somewhat longer sentence about the weather in paris today"] * 4


def tiny_classifier(folder: Path, layers: int, hidden: int) -> str:
    """A small BERT classifier with random weights and MiniLM's tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(minilm_folder())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        intermediate_size=4 * hidden,
        num_labels=2,
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def child(model: str, cache: str) -> dict:
    """One process start: build the pipeline on ``cache`` and run it once."""
    import pipejit

    start = time.perf_counter()
    pipe = pipejit.pipeline("text-classification", model=model, compile_cache=cache)
    loaded = pipe.compile_cache.loaded_files
    artifacts = len(pipe.compile_cache.known)
    pipe(TEXTS, batch_size=8)
    stats = pipe.stats()
    return {
        "first_result_seconds": time.perf_counter() - start,
        "compile_seconds": sum(stats["compile_seconds"].values()),
        "compiles": stats["compiles"],
        "cache_files_loaded": loaded,
        "artifacts_loaded": artifacts,
    }


def run_child(model: str, cache: Path, scratch: Path, name: str, inductor: str = "") -> dict:
    """One process start on the ``cache`` folder, in the inductor cache directory
    ``inductor`` (by default its own, empty)."""
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(scratch / f"inductor-{inductor or name}"))
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pipejit.bench.cold_start", "--child", model, str(cache)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the {name} process failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"process_seconds": time.perf_counter() - start, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipejit.bench.cold_start", description=__doc__)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "CACHE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        model = tiny_classifier(root / "model", args.layers, args.hidden)
        for round_ in range(args.rounds):
            cache = root / f"compile-cache-{round_}"
            runs = {
                "cold": (cache, ""),
                "warm": (cache, ""),
                "local": (root / f"no-artifacts-{round_}", f"cold-{round_}"),
            }
            for name, (folder, inductor) in runs.items():
                result = run_child(model, folder, root, f"{name}-{round_}", inductor)
                print(
                    f"round {round_} {name}",
                    json.dumps({k: round(v, 2) for k, v in result.items()}),
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
