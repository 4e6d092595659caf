"""What the engine has done, per module (compiles, batches, tokens, decode steps, graphs),
and where a call's time went, stage by stage."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ModuleStats:
    """One declared module's counters (a forward task has one module, ``"model"``)."""

    buckets: set[tuple[int, ...]] = field(default_factory=set)
    compile_seconds: dict[tuple[int, ...], float] = field(default_factory=dict)
    batches: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0
    decode_steps: int = 0
    captures: int = 0
    replays: int = 0
    compile_failed: str | None = None

    def count(self, shape: tuple[int, ...]) -> None:
        """One batch run at ``shape``."""
        self.buckets.add(shape)
        self.batches += 1

    def report(self) -> dict[str, Any]:
        return {
            "compiles": len(self.compile_seconds),
            "compiled_shapes": sorted(self.compile_seconds, key=str),
            "compile_seconds": round(sum(self.compile_seconds.values()), 3),
            "batches": self.batches,
            "buckets": sorted(self.buckets),
            "real_tokens": self.real_tokens,
            "padded_tokens": self.padded_tokens,
            "decode_steps": self.decode_steps,
            "captures": self.captures,
            "replays": self.replays,
            "compile_failed": self.compile_failed,
        }


def bucket_name(bucket: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in bucket)


# The stages of a call, in order, as ``StageClock`` names them.
STAGES = ("preprocess", "collate", "launch", "read", "postprocess")


@dataclass
class StageClock:
    """Seconds the host spent in each stage of the pipeline's calls: ``preprocess`` (input
    checks, tokenizing), ``collate`` (padding a batch, copying it to the device), ``launch``
    (the forward and reduce, all of it on a CPU, the kernel launches or a graph's replay on
    a GPU), ``read`` (waiting for a batch's reduced rows to reach the host) and
    ``postprocess`` (formatting the answers). Warmups are not counted."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def add(self, stage: str, since: float) -> float:
        """Count the time from ``since`` to now in ``stage``; returns now."""
        now = time.perf_counter()
        self.seconds[stage] += now - since
        return now

    def report(self) -> dict[str, float]:
        return {stage: round(seconds, 6) for stage, seconds in self.seconds.items()}


def stage_seconds_each(
    before: dict[str, float], after: dict[str, float], count: int
) -> dict[str, float]:
    """Seconds in each stage per call (or pass), between two ``stage_seconds`` reports
    ``count`` calls apart."""
    return {stage: (after[stage] - before[stage]) / count for stage in after}
