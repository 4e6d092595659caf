"""The one shape of a benchmark result, whatever measured it.

A result ("case") compares engines at each value of a setting: batch size for a
task case (``pipejit.bench.measure.run_case``), callers for the micro-batcher,
clients for HTTP, a kernel's shape. ``runs[setting][engine]`` holds the engine's
median rate (``items_per_s``, items being what ``items_name`` says), its
``spread``, its ``parity`` with the reference (``None``: not checked there) and,
where measured, ``latency_ms`` percentiles and the extra figures ``columns`` names.
``pipejit.bench.report`` writes every case as one table and one plot panel.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipejit.bench.timing import percentiles, rate


def engine_run(
    items: float,
    seconds: Iterable[float],
    parity: bool | None,
    latencies_s: Iterable[float] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One engine at one setting: ``items`` done in each of ``seconds``, its parity,
    the percentiles of per-item ``latencies_s`` and any ``extra`` figures."""
    run: dict[str, Any] = {**rate(items, seconds), "parity": parity}
    if latencies_s is not None:
        run["latency_ms"] = percentiles(1e3 * x for x in latencies_s)
    return run | extra


def settings_case(
    name: str,
    *,
    axis: str,
    baseline: str,
    runs: dict[Any, dict[str, dict[str, Any]]],
    task: str | None = None,
    items_name: str = "items",
    columns: Iterable[str] = (),
    notes: Iterable[str] = (),
    **extra: Any,
) -> dict[str, Any]:
    """A case of engines (the keys of each setting's runs) across ``axis`` settings,
    ratios against ``baseline``; failed when any engine's parity is False."""
    engines = list(dict.fromkeys(engine for cells in runs.values() for engine in cells))
    return {
        "case": name,
        "task": task,
        "supported": True,
        "axis": axis,
        "engines": engines,
        "baseline": baseline,
        "items_name": items_name,
        "columns": list(columns),
        "runs": {str(setting): cells for setting, cells in runs.items()},
        "notes": list(notes),
        "failed": any(
            run.get("parity") is False for cells in runs.values() for run in cells.values()
        ),
        **extra,
    }


def unsupported(name: str, task: str | None, reason: str) -> dict[str, Any]:
    """A case this build or machine cannot run, and why."""
    return {"case": name, "task": task, "supported": False, "reason": reason}
