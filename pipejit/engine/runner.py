"""How one module runs: eager, or ``torch.compile`` per bucket shape or once for all shapes.

``shapes="static"``: dynamo keys its compiled graphs by input shape, so each
(batch, length) bucket compiles once and is reused from then on, with kernels
specialised to it. The recompile limit is raised to the number of buckets the
pipeline may see, so no bucket silently falls back to eager.

``shapes="dynamic"``: the module's ``dynamic_dims`` (batch and length for padded
text, batch alone for unpadded items) are marked dynamic, so one graph serves every
bucket (batch 1 gets its own, as dynamo specialises sizes of 1). On a CPU, where
each static compile of a distilbert-size model costs about 10 s and the matrix
multiplies run the same library kernels either way, this keeps warmup to one or two
compiles while the bucket ladder can stay fine enough to pad little.

``freeze`` (the CPU's half-precision autocast): inductor compiles the weights as
constants, so the casts autocast would make of every weight on every forward are
folded away once and the half-precision weights are prepacked for the CPU's matrix
units (oneDNN, AMX where the CPU has it). Measured on a 2-core Xeon with AMX, an
all-MiniLM-L6-v2-size model under bf16 autocast: 2.0x faster at one sentence, 1.3x at
batches of 32, for about 3x the compile time. fp32 gains nothing from it under dynamic
shapes (the GEMM library packs its weights for one batch size only), so it is off there.

``guard_modules=False`` (the CPU path's models, which the pipeline loaded itself and never
changes once compiled): dynamo's checks, before every call, that the module's parameters,
buffers and attributes are still those it compiled for are dropped; the checks of the
inputs and of global state (grad mode, autocast, the thread count) stay. Measured on a
2-core Xeon at one short query: 0.3 ms a call, 6-9% of all-MiniLM-L6-v2's forward, 3-4% of
a distilbert-size classifier's. So are its checks that the module-level names the model's
code reads (torch's and transformers' functions, classes and flags, 236 checks for MiniLM)
are still what it traced: a name patched after the first call goes unseen. On a 2-core AMD
EPYC Zen 4, MiniLM's one-row graph spent 46 us a call in dynamo's lookup against 158, and
answered a sentence 4-6% faster in three interleaved runs of four (p50, one as fast); a
distilbert-size classifier's calls spent 1.36 ms outside its graph against 1.47.

``one_row_cpp`` (one-row graphs of the CPU path's fp32 models): a one-row graph compiles all
in C++. Inductor writes the code that calls its kernels in C++ instead of Python (its C++
wrapper), freezes the weights, and calls the library GEMM for a sentence's rows
(``pipejit.engine.all_cpp``): oneDNN's prepacked linear, or torch's default GEMM with
``one_row_prepacked=False``; inductor's C++ GEMM template serves GEMMs of a single row. At one
sentence a small model's forward is dozens of short kernels and library calls, whose Python
calling cost shows, and a GEMM of a few dozen rows, which a general library serves worst.
Measured on a 2-core AMD EPYC (Zen 3, AVX2), interleaved with ONNX Runtime:
all-MiniLM-L6-v2's forward at 16-48 tokens from 1.05-1.3x ONNX Runtime's time to 0.89x; a
distilbert-size classifier's at 16 tokens from 1.25x to 0.94x, equal at 48 (those graphs
then also timed the template against the library per linear shape). Batches compile as usual.
``one_row_module``: the module a one-row graph compiles instead (the model with torch's own
linears where the batches run oneDNN's, whose Python op the C++ wrapper cannot take; with
its weights column-major where torch's GEMM ran a sentence's linears faster so). It costs one
longer compile, once per process (the frozen oneDNN weights keep the graph out of inductor's
cache, so a pipeline with a compile cache does not ask for it): on that EPYC, while it still
timed the template, about 30 s for MiniLM and 50-70 s for the classifier with inductor's
cache warm, cold about 90 s and 80 s, where a plain one-row compile took about 20 s.

``unmasked_single_rows`` (the CPU path's text models): a single row whose attention mask
attends every position (a batch of one pads nothing) runs without the mask, which the model
then reads as all positions attended: the same attention, in a graph that builds no mask and
calls SDPA's unmasked kernel (eager transformers drops such a mask itself; a traced model
cannot look at its values). The smaller graph traces faster: on a 2-core AMD EPYC (Zen 3), a
warm start's first single sentence to a distilbert-size classifier took 3.9 s, against 4.6 s
with the mask (``cold-start`` suite, same hour). On that machine, one-row all-C++ graphs
with and without the mask, interleaved with ONNX Runtime in both orders (two identical
pipelines differed by up to 4% there), answered all-MiniLM-L6-v2's short queries 5-20%
faster and its sentences between 12% faster and 4% slower; the classifier's sentences 5-8%
faster and its short queries 4-6% slower.

``aot_graph`` (batches of the CPU path's fp32 text models under a compile cache): batches
run from an ahead-of-time package the next process loads without a trace
(``pipejit.engine.aot_graph``); the batches it does not serve run the compiled graph.

The compile settings (a patched recompile limit, ``freeze``, ``one_row_cpp``'s) are entered
only around a call that compiles: a graph key's first call, or a later one for which dynamo
would compile again, which is run first under the stance ``fail_on_recompile`` (dynamo
refuses to compile there) and then once more under the settings. Entered around every call,
they cost all-MiniLM-L6-v2's one-sentence answers 0.7-2.6% (p50, three runs of two pipelines
interleaved, a 2-core AMD EPYC Zen 4): inductor's config patches, run on caches the forward's
weights had flushed. The stance costs 6 us a call, so calls with no settings to skip go
without it.

A module that fails to compile runs eager, with one warning. Every batch is
counted in the module's ``ModuleStats`` unless run inside ``quiet()`` (graph
warmups and captures, whose replays count themselves).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import itertools
import time
import types
import warnings
from typing import Any

import torch

from pipejit.engine.all_cpp import all_cpp
from pipejit.engine.aot_graph import AotGraph
from pipejit.engine.freezing import freezing
from pipejit.engine.stats import ModuleStats


def compile_options(guard_modules: bool, dynamic: bool, backend: Any) -> dict[str, Any] | None:
    """``torch.compile``'s options; a new dict each time, as torch.compile takes the guard
    filter out of the one it is given.

    Without ``guard_modules``, dynamo's guards on module attributes are dropped (see
    Runner). Under dynamic shapes inductor's matmul padding is off (an option for
    inductor alone; another backend is handed the options): deciding whether to
    pad, it compares the symbolic length with a threshold, which guards the length to a
    range. Seen on an H200 (torch 2.11): a first dynamic compile at 16 tokens was guarded
    to 3-31 tokens, and the next bucket, 32 tokens, recompiled, specialised the length and
    failed (it is marked dynamic), leaving the model eager. Bucket lengths are multiples
    of 8 already, so the padding had nothing to add."""
    options: dict[str, Any] = {}
    if not guard_modules and hasattr(torch.compiler, "skip_guard_on_all_nn_modules_unsafe"):
        options["guard_filter_fn"] = _inputs_and_global_state_guards
    if dynamic and backend == "inductor":
        options["shape_padding"] = False
    return options or None


def _inputs_and_global_state_guards(entries: list) -> list[bool]:
    """dynamo's guard filter without module guards: those on the module's attributes and
    those on the module-level names its code reads (torch's and transformers' functions,
    classes and flags) go; those on the inputs and on global state stay."""
    kept = torch.compiler.skip_guard_on_all_nn_modules_unsafe(entries)
    return [keep and not entry.is_global for keep, entry in zip(kept, entries)]


_ENTRY_CODES: dict[str, types.CodeType] = {}
_ENTRY_NUMBERS = itertools.count()


def without_full_mask(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``inputs`` without their ``attention_mask`` where it attends every position."""
    mask = inputs.get("attention_mask")
    if mask is None or not bool(mask.all()):
        return inputs
    return {name: tensor for name, tensor in inputs.items() if name != "attention_mask"}


def own_entry(module: torch.nn.Module, frozen: bool):
    """A function that calls ``module``, with a code object shared only with runners of the
    same model.

    dynamo keeps its compiled graphs per code object, so every instance of one model class
    would otherwise share them, told apart by guards alone. Without the module guards
    (``guard_modules=False``) a graph compiled for one model would run another of the same
    class (one with more layers, another activation); with frozen weights it would answer
    with the first model's weights. So the code object is shared only between modules of
    one class, configuration and module tree (whose graphs read the weights at each call
    and may serve each other), and never by a ``frozen`` runner."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return module(*args, **kwargs)

    key = None if frozen else _architecture(module)
    code = _ENTRY_CODES.get(key) if key is not None else None
    if code is None:
        code = call.__code__.replace(co_name=f"pipejit_entry_{next(_ENTRY_NUMBERS)}")
        if key is not None:
            _ENTRY_CODES[key] = code
    return types.FunctionType(code, call.__globals__, code.co_name, None, call.__closure__)


def _architecture(module: torch.nn.Module) -> str:
    """What a graph compiled without module guards depends on besides the weights: the
    class, the configuration, the attention implementation (which the configuration's JSON
    leaves out), the module tree (sizes, layer counts, activations, epsilons), and any
    forward bound to an instance or hook (``pipejit.tasks.first_token``)."""
    config = getattr(module, "config", None)
    bound = []
    for name, sub in module.named_modules():
        hooks = [*sub._forward_pre_hooks.values(), *sub._forward_hooks.values()]
        if "forward" in vars(sub):
            hooks.append(sub.forward)
        bound += [f"{name}:{getattr(hook, '__qualname__', repr(hook))}" for hook in hooks]
    described = [
        type(module).__qualname__,
        config.to_json_string() if hasattr(config, "to_json_string") else repr(config),
        str(getattr(config, "_attn_implementation", None)),
        repr(module),
        *bound,
    ]
    return hashlib.sha256("\n".join(described).encode()).hexdigest()


def compile_limit(limit: int) -> tuple[dict[str, int], int | None]:
    """How a compiled function keeps up to ``limit`` graphs: ``torch.compile``'s keyword
    arguments, and the limit still to patch around each call (``recompile_limit``), ``None``
    where this torch takes a limit of its own (2.13 does). Set once that way, where patching
    dynamo's global limit costs about 0.1 ms every call, measured on a 2-core Zen 3 (1% of
    all-MiniLM-L6-v2's answer to one short query)."""
    if "recompile_limit" in inspect.signature(torch.compile).parameters:
        return {"recompile_limit": limit}, None
    return {}, limit


def recompile_limit(limit: int | None):
    """Let dynamo keep one graph per bucket (its default keeps 8 per function), for the
    compiles inside; nothing for ``None`` (a limit given to ``torch.compile`` itself)."""
    if limit is None:
        return contextlib.nullcontext()
    config = torch.compiler.config
    if not hasattr(config, "recompile_limit"):  # older torch keeps it with dynamo
        config = torch._dynamo.config
    if config.recompile_limit >= limit:
        return contextlib.nullcontext()  # a patch costs 30 us, every forward
    return config.patch(recompile_limit=limit)


def frozen(enabled: bool):
    """Inductor's weight freezing for the compiles inside, weights prepacked unless inductor
    is set not to (``TORCHINDUCTOR_CPP_WEIGHT_PREPACK=0``); nothing when not ``enabled``."""
    if not enabled:
        return contextlib.nullcontext()
    import torch._inductor.config as inductor_config

    return freezing(inductor_config.cpp.weight_prepack)


def precision(autocast: torch.dtype | None, device: torch.device):
    """The forward's precision context: ``torch.autocast`` to ``autocast``, or nothing."""
    if autocast is None:
        return contextlib.nullcontext()
    # Autocast's cache of cast weights would be freed after a capture while the graph
    # still reads it, so a capture casts inside the graph instead.
    capturing = device.type == "cuda" and torch.cuda.is_current_stream_capturing()
    return torch.autocast(device_type=device.type, dtype=autocast, cache_enabled=not capturing)


class Runner:
    """Runs one module on batches, compiled or eager, counting what it does."""

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        compile: bool,
        dynamic: bool,
        backend: Any = "inductor",
        mode: str | None = None,
        max_buckets: int = 64,
        autocast: torch.dtype | None = None,
        model_kwargs: dict[str, Any] | None = None,
        dynamic_dims: tuple[int, ...] = (0, 1),
        stats: ModuleStats | None = None,
        freeze: bool = False,
        guard_modules: bool = True,
        one_row_cpp: bool = False,
        one_row_prepacked: bool = True,
        one_row_module: torch.nn.Module | None = None,
        unmasked_single_rows: bool = False,
        aot_graph: AotGraph | None = None,
    ):
        self.model = module
        self.model_kwargs = dict(model_kwargs or {})
        self.autocast = autocast
        self.dynamic = dynamic
        self.dynamic_dims = dynamic_dims
        self.freeze = freeze
        self.one_row_cpp = one_row_cpp
        self.one_row_prepacked = one_row_prepacked
        self.one_row_module = one_row_module
        self.unmasked_single_rows = unmasked_single_rows
        self.aot_graph = aot_graph
        self.stats = stats if stats is not None else ModuleStats()
        self._graph_keys: set[tuple[int, ...]] = set()
        self._counting = True
        self._compiled, self._compiled_one_row = None, None
        per_function, self._patched_limit = compile_limit(max_buckets)
        if compile:

            def compiled(target: torch.nn.Module, frozen: bool):
                # graphs shared by code object with any other runner are safe only under
                # every guard and on weights read at each call (see ``own_entry``)
                return torch.compile(
                    target if guard_modules and not frozen else own_entry(target, frozen),
                    dynamic=None if dynamic else False,
                    backend=backend,
                    mode=mode,
                    options=None
                    if mode is not None
                    else compile_options(guard_modules, dynamic, backend),
                    **per_function,
                )

            # one-row graphs are frozen under ``one_row_cpp``: the batches' too where they share
            # the module
            self._compiled = compiled(module, freeze or (one_row_cpp and one_row_module is None))
            if one_row_module is not None:
                self._compiled_one_row = compiled(one_row_module, freeze or one_row_cpp)

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    def __call__(self, inputs: dict[str, torch.Tensor]) -> Any:
        if self._counting:
            self.stats.count(tuple(next(iter(inputs.values())).shape))
        return self.forward(inputs)

    @contextlib.contextmanager
    def quiet(self):
        """Forwards inside are not counted as batches: graph warmups and captures."""
        counting, self._counting = self._counting, False
        try:
            yield
        finally:
            self._counting = counting

    def forward(self, inputs: dict[str, torch.Tensor]) -> Any:
        """The module on one batch, compiled or eager, without counting it."""
        shape = tuple(next(iter(inputs.values())).shape)
        if shape[0] == 1 and self.unmasked_single_rows:
            inputs = without_full_mask(inputs)
        if self.aot_graph is not None and self.aot_graph.accepts(inputs):
            outputs = self._run_ahead_of_time(shape, inputs)
            if outputs is not None:
                return outputs
        key = self._graph_key(shape)
        first = key not in self._graph_keys
        self._graph_keys.add(key)
        device = next(iter(inputs.values())).device
        with torch.inference_mode(), precision(self.autocast, device):
            if self._compiled is None:
                return self.model(**inputs, **self.model_kwargs)
            return self._run_compiled(shape, inputs, first)

    def _run_ahead_of_time(self, shape: tuple[int, ...], inputs: dict[str, torch.Tensor]) -> Any:
        """The batch through the ahead-of-time package; ``None`` where it could not be had.
        Its first call (the package's load, or its build) is counted as a compile."""
        first = self.aot_graph.loaded is None
        start = time.perf_counter()
        outputs = self.aot_graph(inputs)
        if first and outputs is not None:
            self.stats.compile_seconds[shape] = time.perf_counter() - start
        return outputs

    def _run_compiled(
        self, shape: tuple[int, ...], inputs: dict[str, torch.Tensor], first: bool
    ) -> Any:
        start = time.perf_counter()
        self._mark_dynamic(inputs)
        one_row = shape[0] == 1
        compiled = self._compiled
        if one_row and self._compiled_one_row is not None:
            compiled = self._compiled_one_row
        all_cpp_here = self.one_row_cpp and one_row
        has_settings = self.freeze or all_cpp_here or self._patched_limit is not None
        try:
            if not first and has_settings:
                try:
                    with torch.compiler.set_stance("fail_on_recompile"):
                        return compiled(**inputs, **self.model_kwargs)
                except torch.OutOfMemoryError:
                    raise
                except Exception:  # noqa: BLE001 - dynamo's refusal to compile is a RuntimeError
                    first = True  # once more, under the compile's settings (see the docstring)
            with (
                recompile_limit(self._patched_limit),
                frozen(self.freeze),
                all_cpp(all_cpp_here, self.one_row_prepacked),
            ):
                outputs = compiled(**inputs, **self.model_kwargs)
        except torch.OutOfMemoryError:
            raise
        except Exception as error:  # noqa: BLE001 - any compiler failure means: run eager
            self._compiled = self._compiled_one_row = None
            self.stats.compile_failed = f"{type(error).__name__}: {error}"
            warnings.warn(
                f"torch.compile failed for {type(self.model).__name__} "
                f"({type(error).__name__}: {str(error)[:200]}); running eager from now on. "
                "Pass compile=False to skip compiling.",
                RuntimeWarning,
                stacklevel=4,
            )
            return self.model(**inputs, **self.model_kwargs)
        if first:
            self.stats.compile_seconds[shape] = time.perf_counter() - start
        return outputs

    def _mark_dynamic(self, inputs: dict[str, torch.Tensor]) -> None:
        if self.dynamic:
            for tensor in inputs.values():
                for dim in self.dynamic_dims:
                    if dim < tensor.dim() and tensor.shape[dim] > 1:
                        # a dimension some pass specialises recompiles rather than fails
                        torch._dynamo.maybe_mark_dynamic(tensor, dim)

    def _graph_key(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shapes that share one compiled graph share a key: the shape itself when
        static; when dynamic, only whether the batch is a single row."""
        return (min(shape[0], 2),) if self.dynamic else shape
