"""``generate()`` of an encoder-decoder model (Whisper), run and counted by the engine.

The model's own ``generate`` keeps its decoding rules (initial tokens, language
detection, timestamps, seeking, temperature fallback, beams). What the engine
adds: where compiling is on for the device, the encoder is compiled in place
(``generate`` calls it for every window) and a ``static`` call decodes with a
static KV cache and ``generate``'s compiled one-token step, its batch filled to the
shape policy's decode size so that the step compiles once per size. A compiler
failure turns compiling off with one warning and the call is decoded eager. Each call
counts one batch, and a decode step per token position it returned, in the module's
stats (hooks inside the compiled step would make it recompile at every step).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from transformers import CompileConfig

from pipejit.compat import compile_everywhere
from pipejit.engine.runner import precision
from pipejit.engine.shapes import ShapePolicy
from pipejit.engine.stats import ModuleStats


class GenerateRunner:
    """Runs ``model.generate`` on batches of one encoder-decoder model."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        compile: bool,
        shapes: ShapePolicy,
        backend: Any = "inductor",
        mode: str | None = None,
        autocast: torch.dtype | None = None,
        stats: ModuleStats | None = None,
    ):
        self.model = model
        self.compile = compile
        self.shapes = shapes
        self.backend = backend
        self.mode = mode
        self.autocast = autocast
        self.stats = stats if stats is not None else ModuleStats()
        self._compiled_encoder = False
        self._compile_config: CompileConfig | None = None
        self._step_shapes: set[int] = set()

    def __call__(
        self, inputs: Mapping[str, torch.Tensor], options: dict[str, Any], *, static: bool
    ) -> Any:
        device = next(iter(inputs.values())).device
        run_options = dict(options)
        batch = dict(inputs)
        if self.compile:
            self._compile_encoder()
            if static:
                rows = next(iter(batch.values())).shape[0]
                filled = self.shapes.decode_rows(rows)
                batch = {k: _fill_rows(v, filled) for k, v in batch.items()}
                run_options.update(cache_implementation="static", compile_config=self._config())
                first = filled not in self._step_shapes
                self._step_shapes.add(filled)
        start = time.perf_counter()
        try:
            output = self._generate(batch, run_options, device)
        except torch.OutOfMemoryError:
            raise
        except Exception as error:  # noqa: BLE001 - a compiler failure means: decode eager
            if not self.compile:
                raise
            self._give_up_compiling(error)
            return self(inputs, options, static=False)
        if self.compile and static and first:
            self.stats.compile_seconds[("step", filled)] = time.perf_counter() - start
        self.stats.count(tuple(next(iter(batch.values())).shape))
        sequences = output if isinstance(output, torch.Tensor) else output["sequences"]
        self.stats.decode_steps += int(sequences.shape[-1])
        return output

    def _generate(self, batch: dict[str, torch.Tensor], options: dict, device) -> Any:
        with torch.inference_mode(), precision(self.autocast, device):
            return self.model.generate(**batch, **options)

    def _compile_encoder(self) -> None:
        if not self._compiled_encoder:
            self.model.get_encoder().compile(backend=self.backend, mode=self.mode)
            self._compiled_encoder = True

    def _config(self) -> CompileConfig:
        if self._compile_config is None:
            config = CompileConfig(
                fullgraph=True, dynamic=False, backend=self.backend, mode=self.mode or "default"
            )
            self._compile_config = compile_everywhere(config)
        return self._compile_config

    def _give_up_compiling(self, error: Exception) -> None:
        """A compiler failure: decode eager from now on, with one warning."""
        self.model.get_encoder()._compiled_call_impl = None
        self.compile = False
        self.stats.compile_failed = f"{type(error).__name__}: {error}"
        warnings.warn(
            f"torch.compile failed for {type(self.model).__name__}'s encoder or decode step "
            f"({type(error).__name__}: {str(error)[:200]}); decoding eager from now on. "
            "Pass compile=False to skip compiling.",
            RuntimeWarning,
            stacklevel=4,
        )


def _fill_rows(batch: torch.Tensor, rows: int) -> torch.Tensor:
    """The batch with copies of its last row up to ``rows`` rows."""
    extra = rows - batch.shape[0]
    if extra == 0:
        return batch
    return torch.cat([batch, batch[-1:].expand(extra, *batch.shape[1:])])
