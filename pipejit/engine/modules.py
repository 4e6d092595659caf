"""The modules of one pipeline, each with its runner: what ``Steps`` gives a step task.

A forward task has one module, ``"model"`` (its ``forward_module``). On a CPU each
runner's forward runs at the thread count the CPU path measures fastest. A step task
declares its own (``StepTask.modules()``); the engine builds a ``Runner`` for each,
a ``Decoder`` for a causal LM it decodes, a ``GenerateRunner`` for an
encoder-decoder's ``generate``, all from the one engine configuration and shape
policy, and each counting into its own ``ModuleStats``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from pipejit.contract import Decoded, ForwardTask, Module, StepTask, Task
from pipejit.engine import vec_isa
from pipejit.engine.aot_graph import AotGraph
from pipejit.engine.config import EngineConfig
from pipejit.engine.cpu_path import (
    ThreadChooser,
    with_column_major_weights,
    with_torch_linears,
)
from pipejit.engine.decoding import Decoder
from pipejit.engine.generation import GenerateRunner
from pipejit.engine.runner import Runner
from pipejit.engine.shapes import POWERS_OF_TWO, ShapePolicy
from pipejit.engine.stats import ModuleStats


class ModuleSet:
    """Runners of a task's modules by name, built on first use; implements ``Steps``."""

    def __init__(
        self,
        task: Task,
        config: EngineConfig,
        shapes: ShapePolicy,
        threads: ThreadChooser | None = None,
        guard_modules: bool = True,
        one_row_cpp: bool = False,
        one_row_linears: str = "onednn",
        unmasked_single_rows: bool = False,
        aot_folder: str | os.PathLike | None = None,
    ):
        self.config = config
        self.shapes = shapes
        self.threads = threads
        self.guard_modules = guard_modules
        self.one_row_cpp = one_row_cpp
        self.one_row_linears = one_row_linears  # see ``CpuPathChoice.sentence_linears``
        self.unmasked_single_rows = unmasked_single_rows
        self.aot_folder = aot_folder
        self.max_length = task.max_length
        if isinstance(task, ForwardTask):
            self.declared = {
                "model": Module(task.forward_module, dynamic_dims=(0, 1) if task.pads else (0,))
            }
            self.model_kwargs = task.model_kwargs()
        elif isinstance(task, StepTask):
            self.declared = dict(task.modules())
            self.model_kwargs = {}
        else:
            raise TypeError(f"{type(task).__name__} is neither a ForwardTask nor a StepTask")
        self.stats: dict[str, ModuleStats] = {name: ModuleStats() for name in self.declared}
        self._runners: dict[str, Runner] = {}
        self._decoders: dict[str, Decoder] = {}
        self._generators: dict[str, GenerateRunner] = {}

    def compiles(self, name: str) -> bool:
        """Whether module ``name`` is compiled on this pipeline's device."""
        spec = self.declared[name]
        return (
            self.config.compile and spec.compile and self.config.device.type in spec.compile_devices
        )

    def _compiles_cpp(self, name: str) -> bool:
        """Whether module ``name`` compiles to inductor's C++ (on this pipeline's CPU)."""
        return (
            self.compiles(name)
            and self.config.device.type == "cpu"
            and self.config.backend == "inductor"
        )

    def runner(self, name: str) -> Runner:
        if name not in self._runners:
            spec = self._spec(name)
            _move_plain_tensors(spec.module, self.config.device)
            if self._compiles_cpp(name):
                vec_isa.probe_in_background()  # the first C++ compile comes next
            one_row_cpp = self.one_row_cpp and self.compiles(name)
            # one-row graphs take torch's own linears (see ``Runner``), laid out as chosen
            one_row_module = with_torch_linears(spec.module) if one_row_cpp else None
            if one_row_cpp and self.one_row_linears == "aten_colmajor":
                one_row_module = with_column_major_weights(one_row_module)
            self._runners[name] = Runner(
                spec.module,
                compile=self.compiles(name),
                dynamic=self.config.shapes == "dynamic",
                backend=self.config.backend,
                mode=self.config.compile_mode,
                max_buckets=len(self.shapes.lengths) * len(self.shapes.batches or POWERS_OF_TWO),
                autocast=self.config.autocast,
                model_kwargs=self.model_kwargs,
                dynamic_dims=spec.dynamic_dims,
                stats=self.stats[name],
                freeze=self.config.autocast is not None and self.config.device.type == "cpu",
                guard_modules=self.guard_modules,
                one_row_cpp=one_row_cpp,
                one_row_prepacked=self.one_row_linears == "onednn",
                one_row_module=one_row_module if one_row_module is not spec.module else None,
                unmasked_single_rows=self.unmasked_single_rows,
                aot_graph=self._aot_graph(name),
            )
            if self.threads is not None:
                runner = self._runners[name]
                runner.forward = self.threads.wrap(runner.forward)
        return self._runners[name]

    def _aot_graph(self, name: str) -> AotGraph | None:
        """Batches of a forward task's padded text model from an ahead-of-time package, where
        the pipeline keeps one (``pipejit.engine.aot_graph``)."""
        spec = self.declared[name]
        if self.aot_folder is None or name != "model" or not self.compiles(name):
            return None
        if tuple(spec.dynamic_dims) != (0, 1):
            return None
        return AotGraph(
            with_torch_linears(spec.module),
            self.aot_folder,
            model_kwargs=self.model_kwargs,
            max_length=self.max_length,
        )

    # -- Steps --------------------------------------------------------------------------

    def forward(self, name: str, inputs: Mapping[str, torch.Tensor]) -> Any:
        return self.runner(name)(dict(inputs))

    def padded_length(self, name: str, length: int) -> int:
        return self.shapes.padded_length(length) if self.compiles(name) else length

    def decode(
        self, name: str, input_ids: torch.Tensor, attention_mask: torch.Tensor, **options: Any
    ) -> Decoded:
        """``Steps.decode``: the options are ``Decoder.decode``'s."""
        if name not in self._decoders:
            self._decoders[name] = Decoder(
                self._spec(name).module,
                compile=self.compiles(name),
                shapes=self.shapes,
                backend=self.config.backend,
                mode=self.config.compile_mode,
                max_graphs=len(self.shapes.lengths) * 16,
                autocast=self.config.autocast,
                stats=self.stats[name],
            )
        return self._decoders[name].decode(input_ids, attention_mask, **options)

    def generate(
        self,
        name: str,
        inputs: Mapping[str, torch.Tensor],
        options: dict[str, Any],
        *,
        static: bool,
    ) -> Any:
        if name not in self._generators:
            self._generators[name] = GenerateRunner(
                self._spec(name).module,
                compile=self.compiles(name),
                shapes=self.shapes,
                backend=self.config.backend,
                mode=self.config.compile_mode,
                autocast=self.config.autocast,
                stats=self.stats[name],
            )
        return self._generators[name](inputs, options, static=static)

    def _spec(self, name: str) -> Module:
        try:
            return self.declared[name]
        except KeyError:
            raise KeyError(
                f"the task declared no module {name!r}; it declared {sorted(self.declared)}"
            ) from None


def _move_plain_tensors(module: torch.nn.Module, device: torch.device) -> None:
    """Tensors a model keeps as plain attributes (neither parameters nor buffers, such as
    VideoMAE's position table) moved to ``device`` once: ``Module.to`` leaves them
    behind, and a forward that copies one over every call cannot be captured in a graph."""
    for sub in module.modules():
        for key, value in list(vars(sub).items()):
            if isinstance(value, torch.Tensor) and value.device != device:
                setattr(sub, key, value.to(device))
