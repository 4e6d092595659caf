"""The quick benchmark: transformers.pipeline and pipejit side by side, in one process.

For each batch size the two engines' repeats are interleaved (this shared CPU's
speed drifts within minutes), every output is checked against transformers, and
the fp32 GEMM rate is probed between repeats, so throughput is also reported as
a share of this machine's ceiling: real tokens x FLOPs per token / GEMM FLOP/s.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import torch
import transformers

import pipejit
from pipejit.bench.models import flops_per_token
from pipejit.bench.parity import outputs_match


@dataclass
class EngineRun:
    """One engine at one batch size: seconds of each repeat."""

    seconds: list[float] = field(default_factory=list)
    warmup_seconds: float = 0.0
    parity: bool = True


def gemm_flops(size: int = 1024, repeats: int = 10) -> float:
    """Measured fp32 matrix-multiply FLOP/s of this machine, now."""
    a, b = torch.randn(size, 768), torch.randn(768, 3072)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size * 768 * 3072 * repeats / (time.perf_counter() - start)


def run_quick(
    task: str,
    model: str,
    texts: list[str],
    batch_sizes: list[int],
    repeats: int = 3,
    compile: bool = True,
    log=print,
) -> dict:
    reference = transformers.pipeline(task, model=model)
    ours = pipejit.pipeline(task, model=model, compile=compile)
    tokens = sum(len(ids) for ids in reference.tokenizer(texts, truncation=True)["input_ids"])
    per_token = flops_per_token(reference.model)
    # batch_size=1: transformers' own per-item outputs, with no padding in them
    expected = reference(texts, batch_size=1, truncation=True)
    results = {}
    ceilings = []
    for batch_size in batch_sizes:
        runs = {"transformers": EngineRun(), "pipejit": EngineRun()}
        start = time.perf_counter()
        first = ours(texts, batch_size=batch_size, truncation=True)
        runs["pipejit"].warmup_seconds = time.perf_counter() - start
        runs["pipejit"].parity = outputs_match(first, expected)
        for _ in range(repeats):
            ceilings.append(gemm_flops())
            for name, engine in (("transformers", reference), ("pipejit", ours)):
                start = time.perf_counter()
                engine(texts, batch_size=batch_size, truncation=True)
                runs[name].seconds.append(time.perf_counter() - start)
            ceilings.append(gemm_flops())
        results[batch_size] = runs
        log(_line(batch_size, runs, len(texts), tokens, per_token, statistics.median(ceilings)))
    ceiling = statistics.median(ceilings)
    return {
        "task": task,
        "items": len(texts),
        "real_tokens": tokens,
        "flops_per_token": per_token,
        "gemm_flops": ceiling,
        "pipejit_stats": ours.stats(),
        "runs": {
            bs: {
                name: {
                    "items_per_s": len(texts) / statistics.median(run.seconds),
                    "spread": [len(texts) / max(run.seconds), len(texts) / min(run.seconds)],
                    "ceiling_share": tokens * per_token / statistics.median(run.seconds) / ceiling,
                    "warmup_seconds": run.warmup_seconds,
                    "parity": run.parity,
                }
                for name, run in runs.items()
            }
            for bs, runs in results.items()
        },
    }


def _line(batch_size, runs, items, tokens, per_token, ceiling) -> str:
    cells = []
    for name, run in runs.items():
        seconds = statistics.median(run.seconds)
        share = tokens * per_token / seconds / ceiling
        cells.append(f"{name} {items / seconds:7.1f} items/s ({share:4.0%} of ceiling)")
    speedup = statistics.median(runs["transformers"].seconds) / statistics.median(
        runs["pipejit"].seconds
    )
    parity = "parity ok" if runs["pipejit"].parity else "PARITY FAILED"
    return (
        f"batch {batch_size:>3}: "
        + " | ".join(cells)
        + f" | x{speedup:.2f} | warmup {runs['pipejit'].warmup_seconds:.1f}s | {parity}"
    )
