"""Every launch configuration the kernel launchers select, listed for ahead-of-time builds.

A configuration is what Triton compiles one binary for: a kernel, the type of each
runtime argument, the constexpr values and the warp count. The list is not written
by hand: each public kernel function is called with ``impl="triton"`` on small CPU
tensors, over fp32/fp16/bf16 inputs and the row lengths and ``k`` values that the
tasks pass, with the launch recorded instead of run. So the list follows the
launchers' own block, tile and warp choices, and a launcher change shows up here.

The domain is the tasks' defaults and documented options at typical model sizes (below),
not every value a user may pass: a top_k of, say, 20 on a 1000-label head selects a
32-wide merge list, between the 16 and 128 built here, and a 3000-label head the same
1024-column blocks as 1000 labels.

Runtime integers are listed as ``i32`` (or ``i64`` past its range) without Triton's
value specialisations (an integer equal to 1, divisibility by 16): those are further
variants of the same code, which the JIT builds at run time.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from unittest import mock

import torch

from pipejit.kernels import _triton
from pipejit.kernels.pooling import MODES, masked_pool
from pipejit.kernels.sampling import sample
from pipejit.kernels.softmax_topk import FUNCTIONS, MAX_KERNEL_K, softmax_topk
from pipejit.kernels.token_scores import token_scores
from pipejit.kernels.zero_shot import zero_shot_scores

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
TYPE_NAMES = {
    torch.float32: "fp32",
    torch.float16: "fp16",
    torch.bfloat16: "bf16",
    torch.int64: "i64",
    torch.int32: "i32",
    torch.bool: "i1",
}
# What the tasks pass, per kernel (see each _..._calls below for the task behind each value).
# softmax_topk: text-classification heads of 2 labels (sentiment; k=1 by default, k=2 with
# top_k=None) and 28 (go_emotions, multi-label: sigmoid), function_to_apply any of the three;
# audio-classification 35 (speech commands) and 527 (AudioSet), video-classification 400
# (Kinetics), image-classification 1000 (ImageNet), all at k=5; fill-mask over a 30522-token
# vocabulary, k=5, with and without targets; a user top_k at the kernel's limit, and one past it
# (impl="triton" runs it: scores written, then sorted by torch).
CLASSIFIER_HEADS = ((35, 5), (400, 5), (527, 5), (1000, 5), (1000, MAX_KERNEL_K))
WRITE_ALL_K = MAX_KERNEL_K + 1
VOCAB = 30522
FILL_MASK_TARGETS = 3
# token-classification: 2, 9 (CoNLL-2003) and 37 (OntoNotes) labels
TOKEN_LABELS = (2, 9, 37)
# feature-extraction pooling: every mode and normalize at 768 (BERT-base), mean + normalize
# (sentence-transformers) at 384 (MiniLM), 1024 (BERT-large) and 4096 (LLM embedders)
POOLING_DIM = 768
NORMALIZED_MEAN_DIMS = (384, 1024, 4096)
# sampling (text-generation): GPT-2's vocabulary; each filter on and off (top_k 50 is
# generate's default, top_p 0.9 and a repetition penalty of 1.2 are common settings)
SAMPLING_VOCAB = 50257
SAMPLING_FILTERS = tuple(itertools.product((1.0, 1.2), (0, 50), (1.0, 0.9)))


@dataclass(frozen=True)
class LaunchConfig:
    """One binary: ``kernel`` (the module's family name), where its function lives, the
    Triton type of each runtime argument, the constexpr values and the warp count."""

    kernel: str
    module: str
    attribute: str
    signature: tuple[tuple[str, str], ...]
    constexprs: tuple[tuple[str, int | bool], ...]
    num_warps: int

    @property
    def name(self) -> str:
        values = ",".join(f"{k}={int(v)}" for k, v in self.constexprs)
        return f"{self.kernel}[{self.input_type}]({values},warps={self.num_warps})"

    @property
    def input_type(self) -> str:
        """The Triton type of the first pointer argument: the kernel's input dtype."""
        return self.signature[0][1].lstrip("*")

    def function(self) -> Callable[..., None]:
        """The Python kernel function (what ``triton.jit`` wraps)."""
        return getattr(importlib.import_module(self.module), self.attribute).fn


def launch_configs() -> list[LaunchConfig]:
    """Every distinct configuration, in a stable order (kernel, then first seen)."""
    seen: dict[LaunchConfig, None] = {}
    for call in _calls():
        for config in _recorded(call):
            seen.setdefault(config)
    return list(seen)


def _calls() -> Iterator[Callable[[], object]]:
    """One closure per call of a public kernel function over the task domain."""
    yield from _softmax_topk_calls()
    yield from _token_scores_calls()
    yield from _pooling_calls()
    yield from _zero_shot_calls()
    yield from _sampling_calls()


def _softmax_topk_calls():
    for dtype in DTYPES:
        for n, k, function in [
            *((2, k, f) for k in (1, 2) for f in FUNCTIONS),
            *((28, k, f) for k in (1, 28) for f in ("softmax", "sigmoid")),
            *((n, k, "softmax") for n, k in CLASSIFIER_HEADS),
            (1000, WRITE_ALL_K, "softmax"),
            (VOCAB, 5, "softmax"),
        ]:
            x = torch.zeros(1, n, dtype=dtype)
            yield lambda x=x, k=k, f=function: softmax_topk(x, k, function=f, impl="triton")
        x, targets = torch.zeros(1, VOCAB, dtype=dtype), torch.arange(FILL_MASK_TARGETS)
        yield lambda x=x, t=targets: softmax_topk(x, FILL_MASK_TARGETS, columns=t, impl="triton")


def _token_scores_calls():
    for dtype, labels in itertools.product(DTYPES, TOKEN_LABELS):
        x = torch.zeros(1, 4, labels, dtype=dtype)
        yield lambda x=x: token_scores(x, impl="triton")


def _pooling_calls():
    shapes = [
        *((POOLING_DIM, mode, normalize) for mode in MODES for normalize in (False, True)),
        *((dim, "mean", True) for dim in NORMALIZED_MEAN_DIMS),
    ]
    for dtype, (dim, mode, normalize) in itertools.product(DTYPES, shapes):
        hidden = torch.zeros(1, 2, dim, dtype=dtype)
        mask = torch.ones(1, 2, dtype=torch.int64)
        yield lambda h=hidden, m=mask, mo=mode, no=normalize: masked_pool(
            h, m, mo, normalize=no, impl="triton"
        )


def _zero_shot_calls():
    for dtype in DTYPES:
        logits = torch.zeros(4, 3, dtype=dtype)
        for offsets in (None, torch.tensor([0, 2, 4])):
            yield lambda x=logits, o=offsets: zero_shot_scores(
                x, entailment=2, contradiction=0, offsets=o, impl="triton"
            )


def _sampling_calls():
    for dtype, (penalty, top_k, top_p) in itertools.product(DTYPES, SAMPLING_FILTERS):
        logits = torch.zeros(1, SAMPLING_VOCAB, dtype=dtype)
        held = torch.zeros(1, 2, dtype=torch.int64)
        yield lambda x=logits, h=held, r=penalty, k=top_k, p=top_p: sample(
            x, top_k=k, top_p=p, repetition_penalty=r, previous_tokens=h, impl="triton"
        )


def _recorded(call: Callable[[], object]) -> list[LaunchConfig]:
    """The launches one call makes, recorded instead of run."""
    launches: list[LaunchConfig] = []

    def record(kernel: _triton.Kernel, grid: tuple[int, ...]) -> Callable[..., None]:
        def launch(*args, num_warps: int = 4, **constexprs) -> None:
            launches.append(_config(kernel, args, constexprs, num_warps))

        return launch

    with mock.patch.object(_triton.Kernel, "__getitem__", record):
        call()
    return launches


def _config(kernel: _triton.Kernel, args: tuple, constexprs: dict, num_warps: int) -> LaunchConfig:
    fn = kernel.fn
    names = list(inspect.signature(fn).parameters)
    runtime = names[: len(args)]
    if names[len(args) :] != list(constexprs):
        raise ValueError(f"{fn.__name__}: launched with constexprs {sorted(constexprs)}")
    return LaunchConfig(
        kernel=fn.__module__.rsplit(".", 1)[-1],
        module=fn.__module__,
        attribute=fn.__name__,
        signature=tuple((name, _type_of(value)) for name, value in zip(runtime, args)),
        constexprs=tuple(constexprs.items()),
        num_warps=num_warps,
    )


def _type_of(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return "*" + TYPE_NAMES[value.dtype]
    if isinstance(value, bool):
        return "i1"
    if isinstance(value, int):
        return "i32" if -(2**31) <= value < 2**31 else "i64"
    if isinstance(value, float):
        return "fp32"
    raise TypeError(f"no Triton type for a runtime argument of type {type(value).__name__}")
