"""What the engine has done, per module: compiles, batches, tokens, decode steps, graphs."""

from __future__ import annotations

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
