"""The ``serve`` suite: concurrent one-input callers, direct calls against the micro-batcher.

At each caller count, ``callers`` threads each call in a closed loop (send, wait
for the answer, send the next) until the requests are done: once calling the
pipeline directly, once through ``pipe.serve()``. The two alternate for the run's
repeats (this shared CPU's speed drifts); every served answer is checked against
the direct one. Per engine: requests/s and the latency percentiles of every request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pipejit
from pipejit.bench.models import random_classifier
from pipejit.bench.parity import outputs_match
from pipejit.bench.results import engine_run, settings_case
from pipejit.bench.suites import Options
from pipejit.bench.workloads import queries

MAX_WAIT_MS = 5.0
CHECKED = 64  # served answers checked against direct ones, per round


def suite(folder: Path, options: Options) -> list[dict[str, Any]]:
    """A MiniLM-size classifier (tiny with ``--tiny``) over ``4 x items`` queries."""
    size = "tiny" if options.tiny else "minilm"
    model = random_classifier(size, folder / "classifier")
    wait = MAX_WAIT_MS if options.max_wait_ms is None else options.max_wait_ms
    return [
        micro_batcher(
            f"text-classification {size} x queries, one per request",
            model,
            queries(4 * options.items),
            options.callers,
            options.repeats,
            compile=options.compile,
            device=options.device,
            max_wait_ms=wait,
        )
    ]


def micro_batcher(
    name: str,
    model: str,
    texts: list[str],
    callers: list[int],
    rounds: int,
    *,
    compile: bool,
    device: str,
    max_wait_ms: float,
) -> dict[str, Any]:
    """Direct calls against ``pipe.serve()`` at each caller count, rounds interleaved."""
    pipe = pipejit.pipeline("text-classification", model=model, compile=compile, device=device)
    pipe.warmup()
    expected = [pipe(text) for text in texts[:CHECKED]]  # also warms the batch-1 shapes
    done: dict[int, dict[str, list]] = {c: {"direct": [], "micro-batcher": []} for c in callers}
    parity = {c: True for c in callers}
    with pipe.serve(max_wait_ms=max_wait_ms) as server:
        served = lambda text: server.submit(text).result()  # noqa: E731
        closed_loop(served, texts[:CHECKED], max(callers))  # warm the batch shapes
        for _ in range(rounds):
            for count in callers:
                done[count]["direct"].append(closed_loop(pipe, texts, count))
                run = closed_loop(served, texts, count)
                done[count]["micro-batcher"].append(run)
                parity[count] &= outputs_match(run["outputs"][:CHECKED], expected)
        stats = server.stats()
    runs = {
        count: {
            engine: engine_run(
                len(texts),
                [run["seconds"] for run in engine_runs],
                True if engine == "direct" else parity[count],
                [x for run in engine_runs for x in run["latencies"]],
            )
            for engine, engine_runs in cells.items()
        }
        for count, cells in done.items()
    }
    return settings_case(
        name,
        task="text-classification",
        axis="callers",
        baseline="direct",
        items_name="requests",
        runs=runs,
        notes=[
            f"{len(texts)} requests per round, {rounds} rounds interleaved, "
            f"max_wait_ms={max_wait_ms}, {'compiled' if compile else 'eager'}; the "
            f"micro-batcher formed batches of {stats['batch_size_mean']:.2f} requests on "
            f"average ({stats['batches']} batches, {stats['failed']} failed)."
        ],
        server_stats={k: stats[k] for k in ("batches", "wait_ms", "latency_ms", "failed")},
    )


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
