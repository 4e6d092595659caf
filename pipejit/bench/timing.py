"""The one way the benchmarks time things: steps run in turn, rates and percentiles.

A shared machine's speed drifts within minutes, so every benchmark runs the
things it compares round-robin (``interleaved``) and reports each one's median
rate with its spread (``rate``) and its latency percentiles (``percentiles``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable

import torch

from pipejit.engine.collector import collector_paused


def interleaved(
    steps: dict[str, Callable[[], object]],
    rounds: int = 3,
    *,
    device: str = "cpu",
    budget_s: float = 0.0,
    max_rounds: int = 50,
) -> dict[str, list[float]]:
    """Seconds of each step, the steps run in turn: ``rounds`` rounds at least, then
    more until ``budget_s`` has passed (at most ``max_rounds``); CUDA work is synchronised
    around every step."""
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    start = time.perf_counter()
    done = 0
    while done < rounds or (time.perf_counter() - start < budget_s and done < max_rounds):
        for name, step in steps.items():
            seconds[name].append(timed(step, device))
        done += 1
    return seconds


def timed(step: Callable[[], object], device: str = "cpu") -> float:
    """Wall seconds of one call of ``step`` (CUDA work included), with Python's cyclic
    garbage collector paused, as ``timeit`` does: a full collection walks every live
    object, such as another engine's millions of nested output floats, and would land
    on whichever step happened to be running. (No collection before it either: one
    would evict the step's data from the caches.)"""
    with collector_paused():
        sync(device)
        start = time.perf_counter()
        step()
        sync(device)
        return time.perf_counter() - start


def rate(units: float, seconds: Iterable[float]) -> dict[str, float | list[float]]:
    """``units`` per second at the median of ``seconds``, and the slowest and fastest."""
    seconds = list(seconds)
    return {
        "items_per_s": units / statistics.median(seconds),
        "spread": [units / max(seconds), units / min(seconds)],
    }


def percentiles(values: Iterable[float]) -> dict[str, float]:
    """p50 (the median), p90 and p99 of ``values``, in their unit (nearest rank)."""
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {"p50": statistics.median(ordered), "p90": at(0.9), "p99": at(0.99)}


def sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
