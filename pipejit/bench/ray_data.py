"""The ``ray`` suite: the same rows through one process, and through 1 and N Ray actors.

It starts a local Ray on this machine's cores, then alternates for the run's
repeats: single-process pipejit (one list call), and ``map_pipeline`` with 1
actor (all cores) and with ``--actors`` actors (the cores split between them).
Each actor stamps when it became ready and when each batch ran, so the result
separates startup (process, model load, warmup) from the steady state, and gives
the Ray overhead per batch: the time an actor spends between two of its batches,
outside the predictor.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import pipejit
from pipejit.bench.models import random_classifier
from pipejit.bench.parity import outputs_match
from pipejit.bench.results import engine_run, settings_case, unsupported
from pipejit.bench.suites import Options
from pipejit.bench.workloads import queries
from pipejit.integrations.ray import PipejitPredictor, map_pipeline

BATCH_SIZE = 256
COLUMNS = ("startup_s", "steady_rows_per_s", "overhead_ms_per_batch")


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


def suite(folder: Path, options: Options) -> list[dict[str, Any]]:
    """A MiniLM-size classifier (tiny with ``--tiny``) over ``16 x items`` queries."""
    name = f"text-classification x queries, Ray Data with {options.actors} actors"
    try:
        import ray
    except ImportError as error:
        return [unsupported(name, "text-classification", f"ray is not installed ({error})")]
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
        model = random_classifier("tiny" if options.tiny else "minilm", folder / "classifier")
        texts = queries(16 * options.items)
        return [run_ray_bench(name, model, texts, options.actors, options.repeats, cpus)]
    finally:
        ray.shutdown()


def run_ray_bench(
    name: str,
    model: str,
    texts: list[str],
    actors: int,
    rounds: int,
    cpus: int,
    batch_size: int = BATCH_SIZE,
) -> dict[str, Any]:
    """Single process, 1 actor and ``actors`` actors in turn for ``rounds`` rounds."""
    import ray

    pipe = pipejit.pipeline("text-classification", model=model, compile=False)
    expected = pipe(texts)
    ds = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)])
    ds = ds.materialize()
    modes = {"single-process": 0, "ray-1-actor": 1, f"ray-{actors}-actors": actors}
    done: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    parity = dict.fromkeys(modes, True)
    for _ in range(rounds):
        for mode, count in modes.items():
            if not count:
                start = time.time()
                pipe(texts)
                seconds = time.time() - start
                rate = len(texts) / seconds
                done[mode].append({"wall_s": seconds, "steady_rows_per_s": rate})
                continue
            run = ray_run(ds, model, count, cpus, batch_size)
            rows = sorted(run.pop("rows"), key=lambda r: r["id"])
            parity[mode] &= [r["id"] for r in rows] == list(range(len(texts)))
            parity[mode] &= outputs_match([r["output"] for r in rows], expected)
            done[mode].append(run)
    cells = {
        mode: engine_run(
            len(texts),
            [run["wall_s"] for run in mode_runs],
            parity[mode],
            **{k: statistics.median(r[k] for r in mode_runs) for k in COLUMNS if k in mode_runs[0]},
        )
        for mode, mode_runs in done.items()
    }
    return settings_case(
        name,
        task="text-classification",
        axis="batch",
        baseline="single-process",
        items_name="rows",
        columns=COLUMNS,
        runs={batch_size: cells},
        notes=[
            f"{len(texts)} rows, {cpus} CPUs, {rounds} rounds interleaved; rows/s over the "
            "whole run (startup included), steady rows/s from the first batch's start to the "
            "last batch's end; overhead: an actor's time between two of its batches."
        ],
    )
