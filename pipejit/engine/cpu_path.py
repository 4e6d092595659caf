"""The CPU path: which GEMM library and attention kernel run a model fastest on this CPU.

Which is fastest depends on the chip, the model and the machine, which changes: on an
Intel Xeon with AMX torch's default GEMM (MKL) and oneDNN run a large fp32 linear about
equally fast, while at a sentence's few dozen rows oneDNN's prepacked linear is faster
(25% on cached weights, 4% on weights streamed from L3) but costs about 11 us more per
call, which small models feel; on an AMD EPYC oneDNN is about 2.3x MKL. So nothing is
assumed:
``optimize_for_cpu`` times the model's own eager forward under each candidate, on one
sentence and on a batch of 16 (what services and batch jobs send), in alternation, and
keeps the fastest over both, but only if it beats the default by ``MARGIN`` on one and is
behind it on neither (a shared machine's noise must not flip a choice, nor one regime's gain
pay for the other's loss; until 2026-12-06 it had to beat the default by ``MARGIN`` on each,
which on a 2-core AMD EPYC Zen 4 kept torch's GEMM for batches whose eager forward oneDNN ran
1-4% faster, where their compiled graphs ran 5-11% faster on oneDNN's linears). The
candidates:
- linears: ``"aten"`` (torch's default GEMM), ``"aten_colmajor"`` (the same on weights
  stored column-major, whose transpose the GEMM reads contiguous) or ``"onednn"`` (every
  ``nn.Linear`` swapped for one whose weight is prepacked once into oneDNN's blocked
  layout, called through an op that ``torch.compile`` keeps as one opaque call);
- attention: the model's current implementation (transformers' default, SDPA,
  whose fused CPU kernel is flash attention) or the other of ``sdpa`` / ``eager``.
Both keep fp32 and agree with transformers to float rounding. A single sentence's graph goes
further: it compiles all in C++ on a library GEMM (``runner.one_row_cpp``): oneDNN's
prepacked linears, or torch's default GEMM
where that ran a sentence's linears faster by ``MARGIN``, timed as that graph calls them
(``time_sentence_gemms``, ``CpuPathChoice.sentence_linears``), on torch's linears
(``with_torch_linears``) where the batches run oneDNN's, on weights laid out as the faster
GEMM had them (``with_column_major_weights``) where the batches keep
another layout (not under a compile cache, which cannot keep that graph). The intra-op
thread count is chosen continuously instead (``ThreadChooser``): contention from other
processes comes and goes. The factory wraps the runner's forward with it unless the model
compiles per bucket (``shapes="static"``), where a compile per thread count would double
every bucket's. bf16 is the separate opt-in ``autocast="bfloat16"``, under which the linears
stay torch's (the compiler freezes their cast weights: ``pipejit.engine.freezing``)
and only the attention kernel is measured; ``bf16_supported`` says whether the CPU computes
bf16 in hardware (avx512_bf16 or AMX), without which it is slower.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pipejit.engine import mkl_kernels
from pipejit.engine.runner import precision

# Instruction sets that decide the path, and that results name, as /proc/cpuinfo spells them.
ISA_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
# below this share of its threads' CPU time a forward lost cores to other work (measured on
# a 2-core Xeon: 0.99 for large GEMMs alone, 0.58 beside one busy process; one short
# sentence alone mostly 0.78 to 1.25, now and then lower, so one low forward is not enough)
BUSY = 0.7
# shorter forwards are not judged: waking the threads weighs too much in them (contention
# slows a forward down past this anyway)
JUDGED_SECONDS = 0.01
# a candidate must be this much faster than the default to be chosen (measured on a 2-core
# Xeon: oneDNN's linears 5-10% faster than MKL's on a distilbert-size model's sentence, 4-8%
# on its batch of two; 8-10% slower on all-MiniLM-L6-v2's, whose GEMMs are small enough for
# oneDNN's higher fixed cost per call to show)
MARGIN = 0.04
# rows x tokens of the timed inputs: a sentence, a batch. The batch is one the compiled batch
# graphs run: on a 2-core AMD EPYC (Zen 3), a batch of two had oneDNN's linears 8-16% ahead
# of the forward (oneDNN's prepacked weights win at few rows), while the compiled batch graphs
# ran 5-10% faster on torch's (all-MiniLM-L6-v2 and a distilbert-size classifier, batches
# of 8 and 32, three interleaved runs); at 16 x 32 the eager forwards agree with that.
EXAMPLE_SHAPES = ((1, 48), (16, 32))
ROUNDS = 5
# models whose linears hold fewer weights keep the default unmeasured (tests' tiny models)
MIN_MEASURED_WEIGHTS = 2**20
# a setup puts the model it is given into one configuration, in place
Setup = Callable[[torch.nn.Module], object]


@dataclass
class CpuPathChoice:
    """What the CPU path chose, and the milliseconds per forward it chose from."""

    linears: str = "aten"
    attention: str = "sdpa"
    measured_ms: dict[str, list[float]] = field(default_factory=dict)  # per EXAMPLE_SHAPES
    flags: list[str] = field(default_factory=list)
    error: str | None = None  # why nothing was measured, when the probe could not run
    recalled: bool = False  # the timings came from an earlier process (a compile cache)
    threads: ThreadChooser | None = None
    # ms per pass through the linears at a sentence's rows, by library (one-row graphs only)
    sentence_gemm_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "threads_us_per_token": self.threads.to_dict() if self.threads else None,
            "linears": self.linears,
            "attention": self.attention,
            "measured_ms": {k: [round(ms, 3) for ms in v] for k, v in self.measured_ms.items()},
            "flags": self.flags,
            "error": self.error,
            "recalled": self.recalled,
            "sentence_gemm_ms": {k: round(ms, 3) for k, ms in self.sentence_gemm_ms.items()},
        }

    def sentence_linears(self) -> str:
        """The linears of a one-row graph, from ``sentence_gemm_ms`` (``time_sentence_gemms``):
        ``"onednn"``, oneDNN's prepacked ones (inductor's own choice for frozen weights),
        unless torch's default GEMM ran the sentence's linears faster by ``MARGIN``, as every
        choice of the path must; then ``"aten"`` or ``"aten_colmajor"``, the weight layout it
        ran them faster on."""
        onednn = self.sentence_gemm_ms.get("onednn")
        torch_gemm = {
            layout: self.sentence_gemm_ms[layout]
            for layout in ("aten", "aten_colmajor")
            if layout in self.sentence_gemm_ms
        }
        if onednn is None or not torch_gemm:
            return "onednn"
        layout = min(torch_gemm, key=torch_gemm.__getitem__)
        return layout if _ahead_so_far([torch_gemm[layout]], [onednn], MARGIN) else "onednn"


def choose(measured_ms: dict[str, list[float]], default: str, margin: float = MARGIN) -> str:
    """Of the candidates that beat ``default`` by ``margin`` at one shape timed at least and
    are behind it at none (ms per forward, one per shape), the fastest over all shapes;
    ``default`` where none does."""
    if default not in measured_ms:
        raise ValueError(f"the default {default!r} was not measured: {sorted(measured_ms)}")
    baseline = measured_ms[default]
    ahead = [
        name
        for name, ms in measured_ms.items()
        if len(ms) == len(baseline)
        and _behind_nowhere(ms, baseline)
        and any(a < b * (1 - margin) for a, b in zip(ms, baseline))
    ]
    return min(ahead, key=lambda name: sum(measured_ms[name]), default=default)


def _behind_nowhere(ms: list[float], baseline: list[float]) -> bool:
    """Whether ``ms`` is as fast as ``baseline`` or faster at every shape both were timed at."""
    return all(a <= b for a, b in zip(ms, baseline))


def _ahead_so_far(ms: list[float], baseline: list[float], margin: float) -> bool:
    """Whether ``ms`` beats ``baseline`` by ``margin`` at every shape both were timed at."""
    return all(a < b * (1 - margin) for a, b in zip(ms, baseline))


def optimize_for_cpu(
    model: torch.nn.Module,
    *,
    autocast: torch.dtype | None = None,
    measure: Callable[[torch.nn.Module, dict[str, Setup]], dict[str, list[float]]] | None = None,
    measured_before: dict[str, list[float]] | None = None,
) -> tuple[torch.nn.Module, CpuPathChoice]:
    """``model`` (changed in place) on the fastest measured CPU path, and what was chosen.

    ``measure(model, setups)`` returns milliseconds per forward for each setup name, one
    per shape timed (a setup changes a model it is given in place into that
    configuration); the default, ``time_forwards``, times copies of the model on
    random batches of ``EXAMPLE_SHAPES``, under ``autocast`` when the pipeline runs
    under it. Under autocast the linears stay torch's (their weights are cast and
    prepacked by the compiler, see ``runner``), and only the attention kernel is chosen.
    ``measured_before``: the timings of an earlier process on this machine (see
    ``measurement_key``), chosen from again rather than measured anew, so that a warm
    start builds the graph its compile cache holds.
    """
    choice = CpuPathChoice(flags=cpu_flags())
    if measure is None and _linear_weights(model) < MIN_MEASURED_WEIGHTS:
        # too small for the GEMM library or the thread count to matter: not worth timing,
        # nor a compile per thread count
        choice.attention = _attention_of(model)
        return model, choice
    measure = measure or functools.partial(time_forwards, autocast=autocast)
    current = _attention_of(model)
    choice.attention = current
    default = f"aten+{current}"
    setups: dict[str, Setup] = {default: lambda m: None}
    if autocast is None and any(type(m) is torch.nn.Linear for m in model.modules()):
        if _onednn_available():
            setups[f"onednn+{current}"] = use_onednn_linears
        setups[f"aten_colmajor+{current}"] = use_column_major_weights
    other = {"sdpa": "eager", "eager": "sdpa"}.get(current)
    if other is not None and _can_set_attention(model, other):
        setups[f"aten+{other}"] = lambda m: m.set_attn_implementation(other)
    try:
        if _complete(measured_before, setups):
            choice.measured_ms, choice.recalled = dict(measured_before), True
        else:
            choice.measured_ms = measure(model, setups) if len(setups) > 1 else {}
    except Exception as error:  # noqa: BLE001 - a model the probe cannot run keeps the default
        choice.error = f"{type(error).__name__}: {str(error)[:200]}"
    best = choose(choice.measured_ms, default) if choice.measured_ms else default
    setups[best](model)
    choice.linears, choice.attention = best.split("+")
    choice.threads = ThreadChooser()
    return model, choice


def _complete(measured: dict | None, setups: dict[str, Setup]) -> bool:
    """Whether ``measured`` (kept by an earlier process) times every setup, one time per
    shape timed (``time_forwards`` stops timing a setup once it falls behind)."""
    return (
        measured is not None
        and set(measured) == set(setups)
        and all(
            isinstance(ms, list) and 1 <= len(ms) <= len(EXAMPLE_SHAPES) for ms in measured.values()
        )
    )


def measurement_key(model: torch.nn.Module, autocast: torch.dtype | None) -> str:
    """What the path's timings depend on: the model, the CPU, MKL's kernels, torch, threads,
    autocast, and the shapes timed."""
    config = getattr(model, "config", None)
    described = json.dumps(
        [
            type(model).__name__,
            config.to_json_string() if hasattr(config, "to_json_string") else repr(config),
            cpu_flags(),
            mkl_kernels.state,
            torch.__version__,
            torch.get_num_threads(),
            str(autocast),
            EXAMPLE_SHAPES,
        ]
    )
    return "cpu-path-" + hashlib.sha256(described.encode()).hexdigest()[:24]


def time_forwards(
    model: torch.nn.Module, setups: dict[str, Setup], autocast: torch.dtype | None = None
) -> dict[str, list[float]]:
    """Milliseconds per eager forward of a copy of ``model`` under each setup, at each of
    ``EXAMPLE_SHAPES`` in turn, rounds alternating, each shape keeping its best round (a
    shared machine only slows things down). The first setup is the default; another is
    timed at the next shape only while it is behind the default at no shape so far
    (``choose`` keeps no other), and none is once no other is left: on a 2-core AMD EPYC
    (Zen 3), all-MiniLM-L6-v2's timings took 0.7 s where every candidate was behind the
    default on the sentence, 2-2.5 s where the batch was timed too."""
    variants = {}
    for name, setup in setups.items():
        variants[name] = copy.deepcopy(model)
        setup(variants[name])
    default = next(iter(variants))
    per_shape: dict[str, list[float]] = {name: [] for name in variants}
    timed = list(variants)
    with torch.inference_mode(), precision(autocast, torch.device("cpu")):
        for shape in EXAMPLE_SHAPES:
            if len(timed) < 2:
                break
            inputs = example_inputs(model, shape)
            best = _best_ms({name: functools.partial(variants[name], **inputs) for name in timed})
            for name in timed:
                per_shape[name].append(best[name])
            timed = [default] + [
                n for n in timed[1:] if _behind_nowhere(per_shape[n], per_shape[default])
            ]
    return per_shape


def _best_ms(steps: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Milliseconds of each step at its best of ``ROUNDS`` rounds, the steps taking turns,
    after one untimed call each (allocations, oneDNN primitive creation)."""
    for step in steps.values():
        step()
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(ROUNDS):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            best[name] = min(best[name], 1e3 * (time.perf_counter() - start))
    return best


def time_sentence_gemms(
    model: torch.nn.Module, rows: int = EXAMPLE_SHAPES[0][1]
) -> dict[str, float]:
    """Milliseconds of one pass through the fp32 CPU linears of ``model``, in order, at a
    sentence's ``rows``, for each library GEMM a one-row graph can call, called as that
    graph calls it (on 2-D rows, weights frozen): ``"onednn"``, oneDNN's prepacked linear;
    ``"aten"`` and ``"aten_colmajor"``, torch's ``addmm`` (MKL on x86) on row-major weights
    and on column-major ones. Rounds alternate; each keeps its best. These calls are what
    differs between the one-row graphs on each; the eager forward, which the batches'
    choice is timed on, mispredicted them: on a 2-core Zen 4 it put MKL on column-major
    weights 3-10% ahead of oneDNN on all-MiniLM-L6-v2's sentence, where its one-row graphs
    compiled each way ran 5.7% faster on oneDNN (p50 of 64 sentences, in both orders)."""
    linears = [m for m in model.modules() if _fp32_cpu_linear(m) or isinstance(m, OneDnnLinear)]
    generator = torch.Generator().manual_seed(0)
    inputs = {
        size: torch.randn(rows, size, generator=generator)
        for size in {m.weight.shape[1] for m in linears}
    }

    def addmm_calls(weights: list[torch.Tensor]) -> list[Callable[[], object]]:
        return [
            functools.partial(torch.addmm, m.bias, inputs[w.shape[0]], w)
            if m.bias is not None
            else functools.partial(torch.mm, inputs[w.shape[0]], w)
            for m, w in zip(linears, weights)
        ]

    with torch.inference_mode():
        weights = [m.weight.detach() for m in linears]
        passes = {
            "aten": addmm_calls([w.contiguous().t() for w in weights]),
            "aten_colmajor": addmm_calls([w.t().contiguous() for w in weights]),
        }
        if _onednn_available():
            packed = [torch.ops.mkldnn._reorder_linear_weight(w.contiguous()) for w in weights]
            passes["onednn"] = [
                functools.partial(_onednn_rows, inputs[w.shape[1]], p, m.bias)
                for m, w, p in zip(linears, weights, packed)
            ]
        return _best_ms(
            {name: functools.partial(_call_each, calls) for name, calls in passes.items()}
        )


def _call_each(calls: list[Callable[[], object]]) -> None:
    """Each of ``calls`` in turn: one pass through a model's linears."""
    for call in calls:
        call()


def example_inputs(model: torch.nn.Module, shape: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Random token ids of ``shape`` (rows, tokens) for a text model; of two rows or more,
    the last is half padded."""
    config = model.config
    rows, tokens = shape
    tokens = min(tokens, getattr(config, "max_position_embeddings", tokens))
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, config.vocab_size, (rows, tokens), generator=generator)
    mask = torch.ones(rows, tokens, dtype=torch.long)
    if rows > 1:
        mask[-1, tokens // 2 :] = 0
    return {"input_ids": ids, "attention_mask": mask}


def applies_to(model: torch.nn.Module) -> bool:
    """Whether the path can time this model: a text model taking token ids."""
    import inspect

    config = getattr(model, "config", None)
    params = inspect.signature(model.forward).parameters
    return (
        config is not None
        and getattr(config, "vocab_size", None) is not None
        and "input_ids" in params
        and "attention_mask" in params
        and not getattr(config, "is_encoder_decoder", False)
        and not any(hasattr(config, k) for k in ("text_config", "vision_config", "audio_config"))
    )


def bf16_supported(flags: list[str] | None = None) -> bool:
    """Whether this CPU computes bf16 in hardware (avx512_bf16 or AMX)."""
    flags = cpu_flags() if flags is None else flags
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_flags() -> list[str]:
    """The ISA_FLAGS this CPU reports, read now (the machine changes from day to day)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            return [flag for flag in ISA_FLAGS if flag in present]
    return []


# -- oneDNN linears ------------------------------------------------------------------


def _onednn_rows(
    rows: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """oneDNN's linear of 2-D ``rows`` by a prepacked weight."""
    return torch.ops.mkldnn._linear_pointwise(rows, packed, bias, "none", [], "")


@torch.library.custom_op("pipejit::onednn_linear", mutates_args=())
def _onednn_linear(
    x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None, out_features: int
) -> torch.Tensor:
    return _onednn_rows(x, packed, bias)


@_onednn_linear.register_fake
def _(x, packed, bias, out_features):
    return x.new_empty((*x.shape[:-1], out_features))


class OneDnnLinear(torch.nn.Module):
    """An fp32 ``nn.Linear`` whose weight is prepacked once into oneDNN's layout."""

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach()
        self.register_buffer("packed", torch.ops.mkldnn._reorder_linear_weight(weight), False)
        bias = linear.bias.detach() if linear.bias is not None else None
        self.register_buffer("bias", bias, False)
        # kept so that state_dict() and weight tying still see the original parameter
        self.weight = linear.weight

    def as_torch_linear(self) -> torch.nn.Linear:
        """An ``nn.Linear`` on this one's weight and bias (shared, not copied)."""
        with torch.device("meta"):
            linear = torch.nn.Linear(
                self.in_features, self.out_features, bias=self.bias is not None
            )
        linear.weight = self.weight
        if self.bias is not None:
            linear.bias = torch.nn.Parameter(self.bias, requires_grad=False)
        return linear.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # autocast (the bf16 opt-in) casts F.linear's operands; the fp32 oneDNN op would not
        if x.dtype != torch.float32 or x.device.type != "cpu" or torch.is_autocast_enabled("cpu"):
            return torch.nn.functional.linear(x, self.weight, self.bias)
        # rows as one 2-D matrix, as compiled graphs hand them to oneDNN: a sentence's
        # [1, 48, 384] by 384 x 1536 ran 23% slower in 3-D on a 2-core Zen 4
        rows = x.reshape(-1, self.in_features).contiguous()
        if torch.compiler.is_compiling():
            out = _onednn_linear(rows, self.packed, self.bias, self.out_features)
        else:  # oneDNN's op itself, without the custom op's dispatch (about 6 us a call)
            out = _onednn_rows(rows, self.packed, self.bias)
        return out.reshape(*x.shape[:-1], self.out_features)


def use_onednn_linears(model: torch.nn.Module) -> int:
    """Swap every fp32 CPU ``nn.Linear`` of ``model`` for a ``OneDnnLinear``; how many."""

    return _swap_children(
        model, lambda child: OneDnnLinear(child) if _fp32_cpu_linear(child) else None
    )


def use_column_major_weights(model: torch.nn.Module) -> int:
    """Store the weight of every fp32 CPU ``nn.Linear`` of ``model`` column-major, in place:
    the same ``[outputs, inputs]`` values, laid out so that the transpose ``F.linear`` hands
    torch's GEMM is contiguous. MKL with its Intel kernels multiplied a few dozen rows up to
    2.6x faster so on a 2-core Zen 4 (48x1536x384: 193 against 75 GFLOP/s; from 320 rows up
    within 5%). A weight another module shares (tied embeddings) is left as it is. How many
    were laid out."""
    linears = _unshared_fp32_cpu_linears(model)
    for module in linears:
        weight = module.weight
        column_major = weight.detach().t().contiguous().t()
        module.weight = torch.nn.Parameter(column_major, requires_grad=weight.requires_grad)
    return len(linears)


def with_column_major_weights(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with its linears' weights column-major (``use_column_major_weights``): a copy
    sharing every other parameter and buffer with it, ``model`` itself where it has no
    weight to lay out. The copy holds the laid-out weights besides the model's own."""
    if all(m.weight.t().is_contiguous() for m in _unshared_fp32_cpu_linears(model)):
        return model
    tensors = [*model.parameters(), *model.buffers()]
    copied = copy.deepcopy(model, memo={id(t): t for t in tensors})
    use_column_major_weights(copied)
    return copied


def _unshared_fp32_cpu_linears(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The fp32 CPU ``nn.Linear`` modules of ``model`` whose weight no other module shares."""
    uses = Counter(id(p) for _, p in model.named_parameters(remove_duplicate=False))
    return [m for m in model.modules() if _fp32_cpu_linear(m) and uses[id(m.weight)] == 1]


def _fp32_cpu_linear(module: torch.nn.Module) -> bool:
    """Whether ``module`` is a plain ``nn.Linear`` with an fp32 weight on the CPU."""
    return (
        type(module) is torch.nn.Linear
        and module.weight.dtype == torch.float32
        and module.weight.device.type == "cpu"
    )


def with_torch_linears(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` as it was before ``use_onednn_linears``: a copy that shares every parameter
    and buffer with it, its ``OneDnnLinear`` modules back to ``nn.Linear`` (``model`` itself
    when it has none)."""
    if not any(isinstance(m, OneDnnLinear) for m in model.modules()):
        return model
    tensors = [*model.parameters(), *model.buffers()]
    copied = copy.deepcopy(model, memo={id(t): t for t in tensors})
    _swap_children(
        copied, lambda child: child.as_torch_linear() if isinstance(child, OneDnnLinear) else None
    )
    return copied


def _swap_children(model: torch.nn.Module, replace: Callable) -> int:
    """Every submodule of ``model`` for which ``replace(child)`` gives a module, swapped for
    it in its parent, in place; how many."""
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            replacement = replace(child)
            if replacement is not None:
                setattr(parent, name, replacement)
                swapped += 1
    return swapped


def _linear_weights(model: torch.nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if type(m) is torch.nn.Linear)


def _onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(
        torch.ops.mkldnn, "_reorder_linear_weight"
    )


# -- attention -----------------------------------------------------------------------


def _attention_of(model: torch.nn.Module) -> str:
    config = getattr(model, "config", None)
    return str(getattr(config, "_attn_implementation", None) or "eager")


def _can_set_attention(model: torch.nn.Module, implementation: str) -> bool:
    if not hasattr(model, "set_attn_implementation"):
        return False
    previous = _attention_of(model)
    try:
        model.set_attn_implementation(implementation)
    except (ValueError, ImportError, NotImplementedError):
        return False
    model.set_attn_implementation(previous)
    return True


# -- threads -------------------------------------------------------------------------


class ThreadChooser:
    """Runs each forward at the intra-op thread count measured fastest lately.

    torch's OpenMP kernels split every op evenly across their threads and wait for
    the slowest: on a CPU shared with other processes one descheduled thread stalls
    every op (measured on a 2-core machine at load 13: 2 threads 23x slower than 1),
    while on an idle machine all threads win. Contention comes and goes, so the
    choice is not made once: each forward runs at the count with the lowest recent
    seconds per token (the best of the last ``window`` calls at that count), and
    now and then one forward tries another count: after ``explore_every`` forwards,
    then twice as many each time the choice holds (up to 16 times), back to
    ``explore_every`` when it changes. A count is first tried only once the machine
    looks contended (``contended``): on a quiet machine the most threads win, and
    trying fewer would cost a compile for nothing. Single rows and batches are kept
    apart (their costs per token differ). dynamo guards on the thread count, so a
    compiled model compiles once per count it runs at.
    """

    def __init__(
        self, counts: tuple[int, ...] | None = None, explore_every: int = 16, window: int = 8
    ):
        most = torch.get_num_threads()
        self.counts = counts or tuple(sorted({most, 1}, reverse=True))
        self.window = window
        self.first_interval = explore_every
        self.costs: dict[tuple[bool, int], list[float]] = {}
        # the process's CPU seconds per thread per wall second of recent forwards
        self.cpu_shares: dict[tuple[bool, int], list[float]] = {}
        self.calls = 0
        self.interval = {True: explore_every, False: explore_every}
        self.next_explore = {True: explore_every, False: explore_every}
        self.explored: dict[bool, int] = {}

    def pick(self, single_row: bool) -> int:
        """The thread count for the next forward."""
        self.calls += 1
        unmeasured = [n for n in self.counts if not self.costs.get((single_row, n))]
        if len(unmeasured) == len(self.counts):
            return self.counts[0]
        if unmeasured:
            # a count not yet run costs a compile: tried only once the machine looks busy
            return unmeasured[0] if self.contended(single_row) else self.best(single_row)
        best = self.best(single_row)
        if self.calls < self.next_explore[single_row] or len(self.counts) == 1:
            return best
        # an exploration that confirms the choice doubles the wait before the next one
        confirmed = self.explored.get(single_row) == best
        self.interval[single_row] = (
            min(16 * self.first_interval, 2 * self.interval[single_row])
            if confirmed
            else self.first_interval
        )
        self.next_explore[single_row] = self.calls + self.interval[single_row]
        self.explored[single_row] = best
        others = [n for n in self.counts if n != best]
        return others[self.calls % len(others)]

    def contended(self, single_row: bool) -> bool:
        """Whether other work competes for the cores: the last three forwards at the
        current count (never its first, which compiled) each got less than ``BUSY`` of
        the CPU time its threads would have had to themselves (a descheduled thread's
        share goes to another process). Wall time alone would not tell: a forward's cost
        per token moves with its length, and one slow forward may be a recompile."""
        shares = self.cpu_shares.get((single_row, self.best(single_row)), [])
        return len(shares) >= 4 and max(shares[-3:]) < BUSY

    def best(self, single_row: bool) -> int:
        """The count with the lowest recent cost per token (the first count until measured)."""
        measured = [n for n in self.counts if self.costs.get((single_row, n))]
        if not measured:
            return self.counts[0]
        return min(measured, key=lambda n: min(self.costs[(single_row, n)]))

    def record(
        self,
        single_row: bool,
        threads: int,
        seconds: float,
        tokens: int,
        cpu_seconds: float | None = None,
    ) -> None:
        """One forward: its wall ``seconds`` and, when known, the process's CPU seconds."""
        costs = self.costs.setdefault((single_row, threads), [])
        costs.append(seconds / max(tokens, 1))
        del costs[: -self.window]
        if cpu_seconds is not None and seconds >= JUDGED_SECONDS:
            shares = self.cpu_shares.setdefault((single_row, threads), [])
            shares.append(cpu_seconds / (threads * seconds))
            del shares[: -self.window]

    def wrap(self, forward: Callable[[dict[str, torch.Tensor]], Any]):
        """``forward(inputs)`` run at the chosen thread count, timed into the choice."""

        def threaded(inputs: dict[str, torch.Tensor]) -> Any:
            first = next(iter(inputs.values()))
            single = first.shape[0] == 1
            threads, previous = self.pick(single), torch.get_num_threads()
            torch.set_num_threads(threads)
            start, cpu = time.perf_counter(), time.process_time()
            try:
                return forward(inputs)
            finally:
                seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
                self.record(single, threads, seconds, first.numel(), cpu)
                torch.set_num_threads(previous)

        return threaded

    def to_dict(self) -> dict[str, Any]:
        return {
            f"{'single' if s else 'batch'}@{n}": round(1e6 * min(c), 2)
            for (s, n), c in sorted(self.costs.items())
            if c
        }
