"""One benchmark case: transformers.pipeline, pipejit and the alternatives on one model.

Engines: ``transformers`` (the reference), ``pipejit``; on a CPU also
``onnxruntime`` (the same model exported to ONNX and fused by ONNX Runtime's transformer
optimizer; batch 1 is the plain loop a user writes, larger batches the sorted, bucketed
batches pipejit runs) when the
``bench`` extra is installed and the task is one it runs, and ``pipejit-bf16``
(the ``autocast="bfloat16"`` opt-in) on a CPU with bf16 instructions.

For each batch size the engines' repeats are interleaved (this shared CPU's speed
drifts within minutes), each engine's first pass is timed apart as warmup, every
fp32 output is checked against transformers (a run with wrong outputs is marked
failed; bf16 is held to labels and cosine against fp32 instead, see
``pipejit.bench.parity``), and for text the machine's GEMM ceiling is probed through
every backend (``pipejit.bench.ceiling``) right before each batch size's repeats, so
throughput is also a share of the best one: real tokens x FLOPs per token / best GEMM
FLOP/s.
Batch-1 latency is timed call by call, each engine answering the items back to back
(a service under steady traffic) in blocks that take turns (``_latency``). Where ONNX
Runtime runs, its export runs in a child process while pipejit's first call at the
largest batch size compiles its graph for batches; then, on a machine quiet again for the
GEMM timings of inductor's all-C++ compile, its first single item
(``first_calls_seconds``, both). The per-batch-size warmup is then the first pass after
the compiles. A case with a unit (new tokens, seconds of audio) also reports units/s; all
timing goes through ``pipejit.bench.timing``.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import transformers

import pipejit
from pipejit.bench import ceiling as machine_ceiling
from pipejit.bench import onnx_engine
from pipejit.bench.models import flops_per_token
from pipejit.bench.parity import TOLERANCE, bf16_agreement, outputs_match
from pipejit.bench.timing import interleaved, percentiles, rate, timed
from pipejit.engine.cpu_path import bf16_supported
from pipejit.engine.stats import stage_seconds_each


@dataclass
class Case:
    """A task on a model folder over a workload, with the call's task parameters.

    ``unit`` and ``count_units``: what else one pass over ``inputs`` makes, counted
    from the inputs and transformers' batch-1 outputs (new tokens, seconds of audio),
    reported as units/s beside items/s."""

    name: str
    task: str
    model: str
    inputs: list
    call_kwargs: dict[str, Any] = field(default_factory=dict)
    text: bool = True  # count tokens and report the share of the ceiling
    unit: str | None = None
    count_units: Callable[[list, list], float] | None = None


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
    alternatives: bool = True,
    log=print,
) -> dict:
    """Every engine on ``case``; a dict of every figure (see the module docstring).

    ``alternatives``: add ONNX Runtime and the bf16 opt-in where they apply."""
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
    engines = {"transformers": reference, "pipejit": ours}
    kwargs = case.call_kwargs
    export = _start_onnx_export(case, device, dtype) if alternatives else None
    first_calls = None if export is None else _first_calls(ours, case, batch_sizes, export)
    if first_calls is not None:
        log(f"{case.name}: pipejit's first calls {first_calls:.1f}s")
    if alternatives:
        engines |= _alternatives(case, reference, device, dtype, compile, export)
    tolerance = TOLERANCE[dtype or "float32"]
    # batch_size=1: transformers' own per-item outputs, with no padding in them; where the
    # first batch size is 1, those of its first timed pass (a pass fewer)
    expected = None
    if batch_sizes[0] != 1 or case.count_units is not None:
        expected = reference(case.inputs, batch_size=1, **kwargs)
    result: dict[str, Any] = {
        "case": case.name,
        "task": case.task,
        "supported": True,
        "items": len(case.inputs),
        "engines": list(engines),
        "runs": {},
    }
    if first_calls is not None:
        result["first_calls_seconds"] = first_calls
    if case.count_units is not None:
        result["unit"] = case.unit
        result["units"] = case.count_units(case.inputs, expected)
    probes: list[machine_ceiling.Ceiling] = []
    if case.text:
        tokenizer = reference.tokenizer
        result["real_tokens"] = sum(
            len(ids) for ids in tokenizer(case.inputs, truncation=True)["input_ids"]
        )
        result["flops_per_token"] = flops_per_token(reference.model)
    for batch_size in batch_sizes:
        runs = {name: _EngineRun() for name in engines}
        firsts = {}
        for name, engine in engines.items():
            if name == "transformers":
                continue
            start = time.perf_counter()
            firsts[name] = engine(case.inputs, batch_size=batch_size, **kwargs)
            runs[name].warmup_seconds = time.perf_counter() - start
        steps = {
            name: lambda e=engine, b=batch_size: e(case.inputs, batch_size=b, **kwargs)
            for name, engine in engines.items()
        }
        kept: list = []
        if expected is None:
            steps["transformers"] = _keeping_first(steps["transformers"], kept)
        if case.text and device == "cpu":
            probes.append(machine_ceiling.probe(rounds=1, repeats=2))
        before = ours.stats()
        seconds = interleaved(steps, repeats, device=device)
        if expected is None:
            expected = kept[0]
        for name, first in firsts.items():
            if name.endswith("-bf16"):
                runs[name].agreement = bf16_agreement(first, expected)
                runs[name].parity = runs[name].agreement["ok"]
            else:
                runs[name].parity = outputs_match(first, expected, *tolerance)
        del firsts, kept
        after, passes = ours.stats(), len(seconds["pipejit"])
        each = stage_seconds_each(before["stage_seconds"], after["stage_seconds"], passes)
        result.setdefault("pipejit_stage_ms", {})[batch_size] = {
            stage: 1e3 * value for stage, value in each.items()
        }
        # the forwards a pass took: length buckets cut a batch where its items' lengths differ
        forwards = (after["batches"] - before["batches"]) / passes
        result.setdefault("pipejit_forwards_a_pass", {})[batch_size] = forwards
        for name, values in seconds.items():
            runs[name].seconds = values
        best = machine_ceiling.merge(probes) if probes else None
        result["runs"][batch_size] = {n: r.summary(result, best, n) for n, r in runs.items()}
        log(_line(case.name, batch_size, result["runs"][batch_size]))
    result["latency_ms"] = _latency(case, engines, latency_calls, device)
    stats = ours.stats()
    result["pipejit_stats"] = stats
    result["padding_ratio"] = stats["padding_ratio"]
    if probes:
        best = machine_ceiling.merge(probes)
        result["ceiling"] = best.to_dict()
        result["gemm_flops"] = best.best("float32")[1] * 1e9
    result["peak_memory_mb"] = _peak_memory_mb(device)
    result["failed"] = not all(
        run["parity"] for runs in result["runs"].values() for run in runs.values()
    )
    return result


def _start_onnx_export(case: Case, device: str, dtype: str | None):
    """The ONNX export of ``case``'s model, started in a child process, where ONNX
    Runtime applies to this case (else None)."""
    if device != "cpu" or dtype is not None or case.task not in onnx_engine.TASK_OUTPUTS:
        return None
    if not onnx_engine.available():
        return None
    folder = tempfile.mkdtemp(prefix="pipejit-onnx-")
    return onnx_engine.ExportJob(case.task, case.model, folder)


def _first_calls(engine, case: Case, batch_sizes: list[int], export) -> float:
    """Seconds of pipejit's first calls, around the ONNX ``export``: one batch of the largest
    size while the export runs (its graph for batches compiles; nothing is timed in that
    compile), then, once the export is done, one item (inductor times GEMMs in the single
    item's compile, which a process beside it would skew). The batch is copies of the first
    item: mixed items would plan into single rows too (an item no other is near in length
    runs alone), whose graph would compile beside the export."""
    seconds = 0.0
    largest = max(batch_sizes)
    if largest > 1:
        start = time.perf_counter()
        engine([case.inputs[0]] * largest, batch_size=largest, **case.call_kwargs)
        seconds += time.perf_counter() - start
    export.wait()
    if 1 in batch_sizes:
        start = time.perf_counter()
        engine(case.inputs[0], **case.call_kwargs)
        seconds += time.perf_counter() - start
    return seconds


def _alternatives(
    case: Case, reference, device: str, dtype: str | None, compile: bool, export
) -> dict:
    """ONNX Runtime (on the model ``export`` is writing) and the bf16 opt-in, where they
    apply to this case and machine."""
    engines: dict[str, Any] = {}
    if export is not None:
        engines["onnxruntime"] = onnx_engine.OnnxRuntimeEngine(reference, export.wait())
    if device != "cpu" or dtype is not None:
        return engines
    if case.text and bf16_supported():
        engines["pipejit-bf16"] = pipejit.pipeline(
            case.task, model=case.model, compile=compile, device=device, autocast="bfloat16"
        )
    return engines


@dataclass
class _EngineRun:
    seconds: list[float] = field(default_factory=list)
    warmup_seconds: float = 0.0
    parity: bool = True
    agreement: dict | None = None  # bf16 against fp32: labels equal, cosine

    def summary(self, result: dict, ceiling, engine: str) -> dict:
        median = statistics.median(self.seconds)
        out = {
            **rate(result["items"], self.seconds),
            "warmup_seconds": self.warmup_seconds,
            "parity": self.parity,
        }
        if "units" in result:
            out["units_per_s"] = result["units"] / median
        if self.agreement is not None:
            out["agreement"] = self.agreement
        if "real_tokens" in result:
            out["tokens_per_s"] = result["real_tokens"] / median
            if ceiling is not None:
                work = result["real_tokens"] * result["flops_per_token"]
                out["ceiling_share"] = work / median / (ceiling.best("float32")[1] * 1e9)
                if engine.endswith("-bf16") and "bfloat16" in ceiling.gflops:
                    bf16_rate = ceiling.best("bfloat16")[1] * 1e9
                    out["bf16_ceiling_share"] = work / median / bf16_rate
        return out


def _keeping_first(step: Callable[[], Any], kept: list) -> Callable[[], Any]:
    """``step``, keeping its first call's return value in ``kept``."""

    def run() -> Any:
        out = step()
        if not kept:
            kept.append(out)
        return out

    return run


def _latency(case: Case, engines: dict, calls: int, device: str, rounds: int = 2) -> dict:
    """Per-call milliseconds of single inputs. Each engine answers the items one call at a
    time, back to back, as a service under steady traffic sees them; the engines take turns
    by block, ``rounds`` times, so the machine's drift reaches them all. A block's first call
    is not timed: it pays for the engine before it, whose data fill the caches and whose idle
    threads may still spin (on a 2-core Zen 3, ONNX Runtime's p50 for all-MiniLM-L6-v2 read
    13-14 ms with the engines alternating call by call, 11-12.5 ms back to back)."""
    seconds: dict[str, list[float]] = {name: [] for name in engines}
    items = [case.inputs[i % len(case.inputs)] for i in range(calls)]
    for engine in engines.values():
        engine(items[0], **case.call_kwargs)  # the batch-1 graph, outside the timings
    for _ in range(rounds):
        for name, engine in engines.items():
            engine(items[-1], **case.call_kwargs)
            for item in items:
                step = lambda e=engine, x=item: e(x, **case.call_kwargs)  # noqa: E731
                seconds[name].append(timed(step, device))
    return {name: percentiles(1e3 * s for s in values) for name, values in seconds.items()}


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
    parity = "parity ok" if all(r["parity"] for r in runs.values()) else "PARITY FAILED"
    warmup = runs["pipejit"]["warmup_seconds"]
    return (
        f"{name} batch {batch_size:>3}: "
        + " | ".join(cells)
        + f" | x{speedup:.2f} | warmup {warmup:.1f}s | {parity}"
    )
