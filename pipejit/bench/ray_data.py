"""Ray Data benchmark: the same rows through one process, and through 1 and N Ray actors.

``python -m pipejit.bench.ray_data`` starts a local Ray on this machine's cores,
then alternates for ``--rounds`` rounds: single-process pipejit (one list call),
and ``map_pipeline`` with 1 actor (all cores) and with ``--actors`` actors (the
cores split between them). Each actor stamps when it became ready and when each
batch ran, so the report separates startup (process, model load, warmup) from
the steady state, and gives the Ray overhead per batch: the time an actor spends
between two of its batches, outside the predictor.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pipejit
from pipejit.bench.models import random_classifier
from pipejit.bench.parity import outputs_match
from pipejit.bench.workloads import queries
from pipejit.integrations.ray import PipejitPredictor, map_pipeline


class TimedPredictor(PipejitPredictor):
    """``PipejitPredictor`` that adds when it was ready and when each batch ran."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.ready = time.time()

    def __call__(self, batch: Any) -> Any:
        start = time.time()
        batch = super().__call__(batch)
        rows = len(batch[self.output_column])
        batch["_actor"] = [os.getpid()] * rows
        batch["_ready"] = [self.ready] * rows
        batch["_start"] = [start] * rows
        batch["_end"] = [time.time()] * rows
        return batch


def ray_run(ds: Any, model: str, actors: int, cpus: int, batch_size: int) -> dict[str, Any]:
    start = time.time()
    mapped = map_pipeline(
        ds,
        "text-classification",
        model,
        num_actors=actors,
        cpus_per_actor=cpus // actors,
        batch_size=batch_size,
        predictor=TimedPredictor,
        compile=False,
    )
    rows = mapped.take_all()
    wall = time.time() - start
    spans: dict[int, set[tuple[float, float]]] = {}
    for row in rows:
        spans.setdefault(row["_actor"], set()).add((row["_start"], row["_end"]))
    batches = sum(len(s) for s in spans.values())
    first = min(start for s in spans.values() for start, _ in s)
    last = max(end for s in spans.values() for _, end in s)
    # between two batches of one actor: Ray handing it the next batch and taking
    # the last one's output (idle time after an actor's last batch is not counted)
    gaps = [b[0] - a[1] for s in spans.values() for a, b in zip(sorted(s), sorted(s)[1:])]
    return {
        "rows": rows,
        "wall_s": wall,
        "rows_per_s": len(rows) / wall,
        "startup_s": max(row["_ready"] for row in rows) - start,
        "steady_rows_per_s": len(rows) / (last - first),
        "batches": batches,
        "batch_ms": sum(end - begin for s in spans.values() for begin, end in s) / batches * 1000,
        "overhead_ms_per_batch": statistics.mean(gaps) * 1000 if gaps else 0.0,
    }


def run_ray_bench(
    model: str, texts: list[str], actors: int, rounds: int, batch_size: int, cpus: int
) -> dict[str, Any]:
    import ray

    pipe = pipejit.pipeline("text-classification", model=model, compile=False)
    expected = pipe(texts)
    ds = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)])
    ds = ds.materialize()
    runs: dict[str, list[dict[str, Any]]] = {"single-process": [], "ray-1": [], f"ray-{actors}": []}
    parity = True
    for _ in range(rounds):
        start = time.time()
        pipe(texts)
        seconds = time.time() - start
        rate = len(texts) / seconds
        runs["single-process"].append(
            {"wall_s": seconds, "rows_per_s": rate, "steady_rows_per_s": rate}
        )
        for count in (1, actors):
            run = ray_run(ds, model, count, cpus, batch_size)
            rows = sorted(run.pop("rows"), key=lambda r: r["id"])
            parity &= [r["id"] for r in rows] == list(range(len(texts)))
            parity &= outputs_match([r["output"] for r in rows], expected)
            runs[f"ray-{count}"].append(run)
    return {
        "rows": len(texts),
        "batch_size": batch_size,
        "cpus": cpus,
        "rounds": rounds,
        "parity": parity,
        "modes": {
            name: {
                key: round(statistics.median(run[key] for run in mode_runs), 3)
                for key in mode_runs[0]
            }
            for name, mode_runs in runs.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipejit.bench.ray_data", description=__doc__)
    parser.add_argument("--model", help="a text-classification model (default: MiniLM-size)")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--out", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    import ray

    cpus = os.cpu_count() or 1
    root = str(Path(pipejit.__file__).resolve().parents[1])
    ray.init(
        num_cpus=cpus,
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": root}},
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        with tempfile.TemporaryDirectory() as folder:
            model = args.model or random_classifier("minilm", Path(folder))
            report = run_ray_bench(
                model, queries(args.rows), args.actors, args.rounds, args.batch_size, cpus
            )
    finally:
        ray.shutdown()
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    return 0 if report["parity"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
