"""A CPU stand-in for CUDA graph capture, with a CUDA graph's semantics.

At capture, ``RecordingCapture`` traces the step's tensor operations with
``torch.fx``'s ``make_fx`` while a guard refuses every host sync (``.item()``,
``.tolist()``, ``.cpu()``, ``.numpy()``, Python branching on a tensor, ``nonzero``),
as a real capture would; ``torch.cuda.is_current_stream_capturing()`` answers True
meanwhile, as it does inside a real capture (transformers skips its own data-dependent
shortcuts on that answer). At replay it runs only the traced operations on the
static buffers: whatever the step did in Python at capture (a cache lookup, a
counter, a parameter read) stays frozen, as it would on a GPU. A traced step that
reads a tensor which is neither a static buffer nor a parameter or buffer of the
owning modules is refused too: a real graph would keep reading that memory after
its owner let it go.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from unittest import mock

import torch
from torch.fx.experimental.proxy_tensor import make_fx
from torch.overrides import TorchFunctionMode

import pipejit
from pipejit.engine.graphs import GraphRunner

# Tensor functions that read device values on the host, or size a result by them.
HOST_SYNCS = {
    "item",
    "tolist",
    "cpu",
    "numpy",
    "__bool__",
    "__int__",
    "__float__",
    "__index__",
    "nonzero",
    "masked_select",
    "unique",
}


class HostSyncError(RuntimeError):
    """A step read a device value on the host while it was being captured."""


class ForeignTensorError(RuntimeError):
    """A captured step read a tensor the engine does not own."""


class _RefuseHostSyncs(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in HOST_SYNCS:
            raise HostSyncError(f"{name}() reads a device value on the host during a capture")
        return func(*args, **(kwargs or {}))


class RecordingCapture:
    """Records a step as its traced tensor operations; a replay runs only those."""

    def __init__(
        self,
        owners: Iterable[torch.nn.Module] = (),
        fail: Callable[[tuple[int, ...]], Exception | None] | None = None,
    ):
        self.owned: set[int] = set()
        self.own(*owners)
        self.warmups = 0
        self.recorded: list[tuple[int, ...]] = []
        self.fail = fail  # fail(first output's shape) -> an error to raise while recording

    def own(self, *modules: torch.nn.Module) -> None:
        """Count the parameters, buffers and plain tensor attributes of ``modules`` (and
        their submodules) as the engine's own: they live as long as the model."""
        for module in modules:
            for sub in module.modules():
                tensors = [*sub.parameters(recurse=False), *sub.buffers(recurse=False)]
                tensors += [v for v in vars(sub).values() if isinstance(v, torch.Tensor)]
                self.owned |= {t.data_ptr() for t in tensors}

    def warmup(self, step):
        self.warmups += 1
        step()

    def record(self, step, buffers):
        capturing = mock.patch.object(torch.cuda, "is_current_stream_capturing", lambda: True)
        with capturing, _RefuseHostSyncs():
            graph = make_fx(lambda _: step())(buffers)
        self._check_constants(graph, buffers)
        with torch.inference_mode():
            outputs = graph(buffers)
        shape = tuple(next(iter(outputs.values())).shape)
        if self.fail is not None and (error := self.fail(shape)) is not None:
            raise error
        self.recorded.append(shape)

        def replay():
            with torch.inference_mode():
                for name, value in graph(buffers).items():
                    outputs[name].copy_(value)

        return replay, outputs

    def _check_constants(self, graph: torch.fx.GraphModule, buffers) -> None:
        """Every multi-element tensor the trace holds as a constant must be owned."""
        owned = self.owned | {t.data_ptr() for t in buffers.values()}
        for name, tensor in graph.named_buffers():
            if tensor.numel() > 1 and tensor.data_ptr() not in owned:
                raise ForeignTensorError(
                    f"the captured step reads a tensor of shape {tuple(tensor.shape)} ({name}) "
                    "that is neither a static input nor a model weight; pass it as an explicit "
                    "input (a call tensor)"
                )


def with_graphs(pj, capture: RecordingCapture | None = None, **options):
    """``pj`` with a graph runner that records through ``capture`` (a new
    ``RecordingCapture`` by default), owning the task's model, in place of CUDA graphs."""
    runner = pj.modules.runner("model")
    # graphs run on CUDA, where no CPU path drops a single row's mask (reading its values)
    runner.unmasked_single_rows = False
    capture = capture or RecordingCapture()
    capture.own(pj.task.model)
    pj.graphs = GraphRunner(
        pj._forward_step,
        shapes=options.pop("shapes", pj.shapes),
        module_stats=pj.modules.stats["model"],
        module_name=type(runner.model).__name__,
        quiet=runner.quiet,
        compiled=lambda: runner.compiled,
        units_per_token=pj.task.units_per_token,
        capture=capture,
        **options,
    )
    return pj


def graphed(reference, capture=None, **options):
    """An eager pipejit text-classification pipeline on ``reference``'s model whose graph
    runner records with ``capture``."""
    engine = {k: options.pop(k) for k in ("length_buckets", "token_budget") if k in options}
    pj = pipejit.pipeline(
        "text-classification", model=reference.model.name_or_path, compile=False, **engine
    )
    if "batch_sizes" in options or "max_tokens" in options:
        options["shapes"] = replace(
            pj.shapes,
            capture_sizes=tuple(options.pop("batch_sizes", pj.shapes.capture_sizes)),
            capture_max_tokens=options.pop("max_tokens", pj.shapes.capture_max_tokens),
        )
    return with_graphs(pj, capture, **options)
