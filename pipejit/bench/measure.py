"""One benchmark case: transformers.pipeline and pipejit on the same model and inputs.

For each batch size the engines' repeats are interleaved (this shared CPU's speed
drifts within minutes), the first pipejit pass is timed apart as warmup, every
pipejit output is checked against transformers (a run with wrong outputs is
marked failed), and for text the fp32 GEMM rate is probed between repeats, so
throughput is also a share of the machine's ceiling: real tokens x FLOPs per
token / GEMM FLOP/s. Batch-1 latency is timed call by call, engines alternating.
"""

from __future__ import annotations

import resource
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import transformers

import pipejit
from pipejit.bench.models import flops_per_token
from pipejit.bench.parity import TOLERANCE, outputs_match


@dataclass
class Case:
    """A task on a model folder over a workload, with the call's task parameters."""

    name: str
    task: str
    model: str
    inputs: list
    call_kwargs: dict[str, Any] = field(default_factory=dict)
    text: bool = True  # count tokens and report the share of the ceiling


def gemm_flops(size: int = 1024, repeats: int = 10) -> float:
    """Measured fp32 matrix-multiply FLOP/s of this machine, now."""
    a, b = torch.randn(size, 768), torch.randn(768, 3072)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size * 768 * 3072 * repeats / (time.perf_counter() - start)


def run_case(
    case: Case,
    batch_sizes: list[int],
    *,
    repeats: int = 3,
    latency_calls: int = 16,
    device: str = "cpu",
    dtype: str | None = None,
    compile: bool = True,
    cuda_graphs: bool | str = "auto",
    log=print,
) -> dict:
    """Both engines on ``case``; a dict of every figure (see the module docstring)."""
    loading = {"device": device, "dtype": dtype}
    try:
        ours = pipejit.pipeline(
            case.task, model=case.model, compile=compile, cuda_graphs=cuda_graphs, **loading
        )
    except ValueError as error:
        if "unsupported task" not in str(error) and "does not serve" not in str(error):
            raise
        log(f"{case.name}: not supported in this build ({error})")
        return {"case": case.name, "task": case.task, "supported": False, "reason": str(error)}
    reference = transformers.pipeline(case.task, model=case.model, **loading)
    kwargs = case.call_kwargs
    tolerance = TOLERANCE[dtype or "float32"]
    # batch_size=1: transformers' own per-item outputs, with no padding in them
    expected = reference(case.inputs, batch_size=1, **kwargs)
    result: dict[str, Any] = {
        "case": case.name,
        "task": case.task,
        "supported": True,
        "items": len(case.inputs),
        "runs": {},
    }
    ceilings: list[float] = []
    if case.text:
        tokenizer = reference.tokenizer
        result["real_tokens"] = sum(
            len(ids) for ids in tokenizer(case.inputs, truncation=True)["input_ids"]
        )
        result["flops_per_token"] = flops_per_token(reference.model)
    for batch_size in batch_sizes:
        runs = {"transformers": _EngineRun(), "pipejit": _EngineRun()}
        start = time.perf_counter()
        first = ours(case.inputs, batch_size=batch_size, **kwargs)
        runs["pipejit"].warmup_seconds = time.perf_counter() - start
        runs["pipejit"].parity = outputs_match(first, expected, *tolerance)
        for _ in range(repeats):
            if case.text:
                ceilings.append(gemm_flops())
            for name, engine in (("transformers", reference), ("pipejit", ours)):
                _sync(device)
                start = time.perf_counter()
                engine(case.inputs, batch_size=batch_size, **kwargs)
                _sync(device)
                runs[name].seconds.append(time.perf_counter() - start)
        result["runs"][batch_size] = {n: r.summary(result, ceilings) for n, r in runs.items()}
        log(_line(case.name, batch_size, result["runs"][batch_size]))
    result["latency_ms"] = _latency(case, reference, ours, latency_calls, device)
    stats = ours.stats()
    result["pipejit_stats"] = stats
    result["padding_ratio"] = stats["padding_ratio"]
    if ceilings:
        result["gemm_flops"] = statistics.median(ceilings)
    result["peak_memory_mb"] = _peak_memory_mb(device)
    result["failed"] = not all(runs["pipejit"]["parity"] for runs in result["runs"].values())
    return result


@dataclass
class _EngineRun:
    seconds: list[float] = field(default_factory=list)
    warmup_seconds: float = 0.0
    parity: bool = True

    def summary(self, result: dict, ceilings: list[float]) -> dict:
        items = result["items"]
        median = statistics.median(self.seconds)
        out = {
            "items_per_s": items / median,
            "spread": [items / max(self.seconds), items / min(self.seconds)],
            "warmup_seconds": self.warmup_seconds,
            "parity": self.parity,
        }
        if "real_tokens" in result:
            out["tokens_per_s"] = result["real_tokens"] / median
            if ceilings:
                work = result["real_tokens"] * result["flops_per_token"]
                out["ceiling_share"] = work / median / statistics.median(ceilings)
        return out


def _latency(case: Case, reference, ours, calls: int, device: str) -> dict:
    """Per-call milliseconds of single inputs, engines alternating item by item."""
    seconds: dict[str, list[float]] = {"transformers": [], "pipejit": []}
    items = [case.inputs[i % len(case.inputs)] for i in range(calls)]
    ours(items[0], **case.call_kwargs)  # the batch-1 graph, outside the timings
    for item in items:
        for name, engine in (("transformers", reference), ("pipejit", ours)):
            _sync(device)
            start = time.perf_counter()
            engine(item, **case.call_kwargs)
            _sync(device)
            seconds[name].append(1e3 * (time.perf_counter() - start))
    return {name: _percentiles(values) for name, values in seconds.items()}


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]  # noqa: E731
    return {"p50": statistics.median(ordered), "p90": pick(0.9), "p99": pick(0.99)}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_memory_mb(device: str) -> float:
    """The process's peak: resident memory on a CPU, allocated device memory on CUDA."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _line(name: str, batch_size: int, runs: dict) -> str:
    cells = []
    for engine, run in runs.items():
        share = f" ({run['ceiling_share']:4.0%} of ceiling)" if "ceiling_share" in run else ""
        cells.append(f"{engine} {run['items_per_s']:8.1f} items/s{share}")
    speedup = runs["pipejit"]["items_per_s"] / runs["transformers"]["items_per_s"]
    parity = "parity ok" if runs["pipejit"]["parity"] else "PARITY FAILED"
    warmup = runs["pipejit"]["warmup_seconds"]
    return (
        f"{name} batch {batch_size:>3}: "
        + " | ".join(cells)
        + f" | x{speedup:.2f} | warmup {warmup:.1f}s | {parity}"
    )
