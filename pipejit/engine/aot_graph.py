"""Batches of a CPU pipeline's text model, compiled ahead of time into its compile cache.

``torch.compile`` traces the model with dynamo in every new process, even where inductor's
cache holds the compiled code: on a 2-core AMD EPYC (Zen 3) that trace was most of a warm
start's first answer to a batch of 8 (9.6 s for a distilbert-size classifier). Under a
compile cache, batches of two rows or more run instead from an AOTInductor package
(``torch.export`` with a dynamic batch and length, then ``aoti_compile_and_package``),
which a later process loads, with nothing to trace.

Single rows keep dynamo's graph: a package for them, built as ``runner.one_row_cpp``
built its graph then (frozen weights, inductor's GEMM template), answered short queries as
fast as that graph but sentences 15-30% slower than the cached dynamo graph (measured on
a 2-core Zen 3, a distilbert-size classifier, whatever the GEMM choice or thread setting).
Batches from the package ran 1-8% slower than dynamo's graph on the CPU path's oneDNN
linears (same machine, batches of 8 and 32): the price of a warm start without a trace.

- The package holds code, not weights: they are the live module's, handed over at load
  (``load_constants``, shared, not copied). So two models of one architecture share a
  package and each answers with its own weights, and a package never outlives its weights.
- Its kernels read the thread count at each call (``cpp.dynamic_threads``), which the CPU
  path's ``ThreadChooser`` sets.
- Its key: the module's architecture (``runner._architecture``), the inputs' names and
  dtypes, the call's extra arguments, the length range, torch's and transformers' versions
  (the model's code is traced into the package) and the CPU's instruction sets.
- torch's own linears are exported: a oneDNN-prepacked weight is an opaque tensor that
  export cannot take.
- A model that export or the compiler cannot take, or a torch without this API, runs the
  ``torch.compile`` path instead, with one warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import torch

PACKAGE_DIR = "aot"
MIN_ROWS = 2  # dynamo and export both specialise a size of 1: single rows compile apart
MIN_LENGTH = 2
INDUCTOR_OPTIONS = {
    "aot_inductor.package_constants_in_so": False,
    "cpp.dynamic_threads": True,
}


class _Positional(torch.nn.Module):
    """The module called with its tensors by position and its extra arguments bound."""

    def __init__(self, module: torch.nn.Module, names: list[str], kwargs: dict[str, Any]):
        super().__init__()
        self.module, self.names, self.kwargs = module, names, kwargs

    def forward(self, *tensors: torch.Tensor) -> Any:
        return self.module(**dict(zip(self.names, tensors)), **self.kwargs)


class AotGraph:
    """``module`` on batches (rows x length inputs, ``MIN_ROWS`` rows or more) from a package
    in ``folder``: loaded where an earlier process built it, else built at the first batch
    it accepts and saved there."""

    def __init__(
        self,
        module: torch.nn.Module,
        folder: str | os.PathLike,
        *,
        model_kwargs: dict[str, Any] | None = None,
        max_length: int = 512,
    ):
        self.module = module
        self.folder = Path(folder) / PACKAGE_DIR
        self.model_kwargs = dict(model_kwargs or {})
        self.max_length = max_length
        self.names: list[str] | None = None
        self.loaded = None
        self.built = False  # this process exported and compiled the package
        self.failed: str | None = None

    def accepts(self, inputs: dict[str, torch.Tensor]) -> bool:
        """Whether the package serves this batch: every input is rows x length, with at
        least ``MIN_ROWS`` rows, a length in range, and the names it was built for (their
        dtypes are the tokenizer's, the same at every call)."""
        if self.failed is not None:
            return False
        shapes = {tuple(t.shape) for t in inputs.values()}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            return False
        rows, length = next(iter(shapes))
        if rows < MIN_ROWS or not MIN_LENGTH <= length <= self.max_length:
            return False
        return self.names is None or self.names == list(inputs)

    def __call__(self, inputs: dict[str, torch.Tensor]) -> Any:
        """The module's outputs on ``inputs``, which ``accepts``; ``None`` where the package
        could not be built or loaded (the caller runs its other path)."""
        if self.loaded is None:
            self.names = list(inputs)
            try:
                self.loaded = self._load_or_build(inputs)
            except Exception as error:  # noqa: BLE001 - any export or compiler failure
                self.failed = f"{type(error).__name__}: {str(error)[:200]}"
                warnings.warn(
                    f"no ahead-of-time package for {type(self.module).__name__} "
                    f"({self.failed}); its batches run torch.compile's graph",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return None
        with torch.inference_mode():
            return self.loaded(*inputs.values())

    def key(self, inputs: dict[str, torch.Tensor]) -> str:
        """What the package depends on besides the weights (see the module docstring)."""
        import transformers

        from pipejit.engine.cpu_path import cpu_flags
        from pipejit.engine.runner import _architecture

        described = json.dumps(
            [
                "aot-v1",
                _architecture(self.module),
                [(name, str(tensor.dtype)) for name, tensor in inputs.items()],
                repr(sorted(self.model_kwargs.items())),
                [MIN_ROWS, MIN_LENGTH, self.max_length],
                torch.__version__,
                transformers.__version__,
                cpu_flags(),
            ]
        )
        return hashlib.sha256(described.encode()).hexdigest()[:32]

    def _load_or_build(self, inputs: dict[str, torch.Tensor]):
        wrapped = _Positional(self.module, list(inputs), self.model_kwargs).eval()
        path = self.folder / f"{self.key(inputs)}.pt2"
        if not path.exists():
            self._build(wrapped, inputs, path)
            self.built = True
        loaded = torch._inductor.aoti_load_package(str(path))
        tensors = {
            **dict(wrapped.named_parameters(remove_duplicate=False)),
            **dict(wrapped.named_buffers(remove_duplicate=False)),
        }
        wanted = loaded.get_constant_fqns()
        missing = [name for name in wanted if name not in tensors]
        if missing:
            raise ValueError(f"the package wants tensors the module lacks: {missing[:3]}")
        with torch.no_grad():
            loaded.load_constants(
                {name: tensors[name].detach() for name in wanted},
                check_full_update=True,
                user_managed=True,
            )
        return loaded

    def _build(self, wrapped: torch.nn.Module, inputs: dict[str, torch.Tensor], path: Path) -> None:
        dims = {
            0: torch.export.Dim("rows", min=MIN_ROWS, max=2**16),
            1: torch.export.Dim("length", min=MIN_LENGTH, max=self.max_length),
        }
        example = tuple(inputs.values())
        with torch.no_grad():
            exported = torch.export.export(
                wrapped, example, dynamic_shapes=((dims,) * len(example),)
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.{time.time_ns()}.partial.pt2")
        import torch._inductor.config as inductor_config

        # the compile fills this dict in place (torch 2.13), and inductor's cache key of every
        # later compile in the process includes it: a start that built the package would then
        # compile its single rows under another key than the starts that load it
        metadata = dict(inductor_config.aot_inductor.metadata)
        with inductor_config.patch({"aot_inductor.metadata": metadata}):
            torch._inductor.aoti_compile_and_package(
                exported, package_path=str(partial), inductor_configs=dict(INDUCTOR_OPTIONS)
            )
        partial.replace(path)  # atomic: a concurrent start never loads half a package
