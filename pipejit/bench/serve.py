"""Serving benchmark: concurrent one-input callers, direct calls against the micro-batcher.

``python -m pipejit.bench.serve``: ``--callers`` threads each call in a closed
loop (send, wait for the answer, send the next) until ``--requests`` are done;
once calling the pipeline directly, once through ``pipe.serve()``. The two modes
alternate for ``--rounds`` rounds (this shared CPU's speed drifts), every served
answer is checked against the direct one, and the report gives requests/s and
the p50/p99 latency of each mode.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import pipejit
from pipejit.bench.models import random_classifier
from pipejit.bench.parity import outputs_match
from pipejit.bench.workloads import queries


def closed_loop(call: Callable[[str], Any], texts: list[str], callers: int) -> dict[str, Any]:
    """``callers`` threads share ``texts``, one request at a time each; wall time and latencies."""
    latencies = [0.0] * len(texts)
    outputs: list[Any] = [None] * len(texts)
    cursor = iter(range(len(texts)))
    lock = threading.Lock()

    def caller() -> None:
        while True:
            with lock:
                index = next(cursor, None)
            if index is None:
                return
            start = time.perf_counter()
            outputs[index] = call(texts[index])
            latencies[index] = time.perf_counter() - start

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"seconds": time.perf_counter() - start, "latencies": latencies, "outputs": outputs}


def run_serve_bench(
    model: str, texts: list[str], callers: int, rounds: int, compile: bool, max_wait_ms: float
) -> dict[str, Any]:
    pipe = pipejit.pipeline("text-classification", model=model, compile=compile)
    pipe.warmup()
    expected = [pipe(text) for text in texts[:64]]  # also warms the batch-1 shapes
    runs: dict[str, list[dict[str, Any]]] = {"direct": [], "micro-batcher": []}
    with pipe.serve(max_wait_ms=max_wait_ms) as server:
        closed_loop(lambda t: server.submit(t).result(), texts[:64], callers)  # warm batches
        parity = True
        for _ in range(rounds):
            runs["direct"].append(closed_loop(pipe, texts, callers))
            served = closed_loop(lambda t: server.submit(t).result(), texts, callers)
            runs["micro-batcher"].append(served)
            parity &= outputs_match(served["outputs"][:64], expected)
        stats = server.stats()
    return {
        "requests": len(texts),
        "callers": callers,
        "rounds": rounds,
        "compile": compile,
        "max_wait_ms": max_wait_ms,
        "torch_threads": torch.get_num_threads(),
        "parity": parity,
        "modes": {name: request_summary(mode_runs) for name, mode_runs in runs.items()},
        "batch_size_mean": round(stats["batch_size_mean"], 2),
        "server_stats": {k: stats[k] for k in ("batches", "wait_ms", "latency_ms", "failed")},
    }


def request_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Rounds of requests (their wall seconds and each request's latency) to the median
    requests/s, each round's, and the p50/p99 latency over all of them."""
    rates = [len(run["latencies"]) / run["seconds"] for run in runs]
    latencies = sorted(x for run in runs for x in run["latencies"])

    def at(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 1)

    return {
        "requests_per_s": round(statistics.median(rates), 1),
        "requests_per_s_each_round": [round(r, 1) for r in rates],
        "p50_ms": at(0.5),
        "p99_ms": at(0.99),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipejit.bench.serve", description=__doc__)
    parser.add_argument("--model", help="a text-classification model (default: MiniLM-size)")
    parser.add_argument("--requests", type=int, default=512)
    parser.add_argument("--callers", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--no-compile", action="store_true", help="pipejit runs eager")
    parser.add_argument("--out", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        model = args.model or random_classifier("minilm", Path(folder))
        report = run_serve_bench(
            model,
            queries(args.requests),
            args.callers,
            args.rounds,
            not args.no_compile,
            args.max_wait_ms,
        )
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    return 0 if report["parity"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
