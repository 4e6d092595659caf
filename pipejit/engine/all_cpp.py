"""Inductor's settings for the all-C++ one-row graphs (``runner.one_row_cpp``).

Inside ``all_cpp(True)`` a compile writes inductor's C++ wrapper, freezes the weights, and
calls the library GEMM for every linear of a sentence's rows: oneDNN's prepacked linear
(inductor packs frozen fp32 weights for it) or, with ``prepacked=False``, torch's default
GEMM, MKL on x86, which on a 2-core AMD EPYC (Zen 3) with Intel's kernels
(``pipejit.engine.mkl_kernels``) served a sentence's few dozen rows faster than oneDNN's
prepacked linear (the CPU path's timings decide, see ``cpu_path``).

Inductor's C++ GEMM template (micro-kernels generated for one shape) is offered for GEMMs of a
single row alone: the heads of models whose last layer computes the first position alone
(``pipejit.tasks.first_token``) multiply one row by each weight, which the template serves
without a library call's fixed cost. It is not timed there (each timing builds its kernel once
more than the graph does: 5-9 s a shape cold on a 2-core Zen 3, where it had won all five of a
distilbert-size classifier's). Offering it costs the compile inductor's rendering of a template
for every GEMM (the library's are picked from the rendered candidates): on a 2-core Zen 4 the
classifier's one-row compile took 29.5-30.5 s with it, 22.3-22.5 s with every GEMM left to
oneDNN (no ``max_autotune``), all-MiniLM-L6-v2's 21.8 against 18.8, but the classifier then
answered one sentence 2-6% slower (p50, three runs of two pipelines of each in one process).

It is not offered for a sentence's rows: inductor times it on one linear at the graph's first
length, and those timings overrated it in the graph on both CPUs measured. On the Zen 3 a
kernel profile of all-MiniLM-L6-v2's one-row graph put the template GEMMs it had chosen at
104-115 GFLOP/s, oneDNN's at 118. On a 2-core Zen 4 (AVX-512) it timed the template 1.5x as
fast as oneDNN on MiniLM's 384x384 GEMMs at 48 rows, a rate past what the two cores sustain on
any GEMM, and the one-row graph that took it for three linears answered 3-6% slower than one on
oneDNN alone from 53 to 105 tokens, and at most shorter lengths (two pipelines of each, one
process, interleaved), after a compile 8 s longer (its timings).

Linears that read the same input (a layer's query, key and value) are concatenated into one
GEMM (inductor's ``cpp.enable_concat_linear``, off by default): a sentence's few dozen rows by
a weight three times as wide, one library call instead of three. On a 2-core Zen 4 it left
the outputs bit for bit as they were; a distilbert-size classifier's one-row graph answered a
sentence 2% and 4% faster than without, all-MiniLM-L6-v2's 3% faster, as fast, and 2% slower
(p50, two pipelines of each in one process, interleaved, a run per figure).

Inductor parses each of its C++ GEMM template strings anew at every use (jinja's
``from_string`` keeps no cache), hundreds of times for one model's graph. Inside
``all_cpp`` each string is parsed once per process: on the same Zen 3, a sampling
profiler put about 9 of the 55 busy seconds of a MiniLM one-row compile in that parsing.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools

from pipejit.engine.freezing import freezing

_COMPILING_ALL_CPP: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "pipejit_all_cpp", default=False
)


@contextlib.contextmanager
def all_cpp(enabled: bool, prepacked: bool = True):
    """The all-C++ settings for the compiles inside (nothing when not ``enabled``); the
    library GEMM is oneDNN's prepacked linear where ``prepacked``, torch's default GEMM (MKL
    on x86) where not."""
    if not enabled:
        yield
        return
    _hook_gemm_candidates()
    _parse_each_template_once()
    token = _COMPILING_ALL_CPP.set(True)
    try:
        with freezing(
            prepacked,
            cpp_wrapper=True,
            max_autotune=True,
            max_autotune_gemm_backends="CPP,ATEN",
            **_concatenated_linears(),
        ):
            yield
    finally:
        _COMPILING_ALL_CPP.reset(token)


def gemm_candidates(choices: list) -> list:
    """Inductor's candidates for one GEMM (it times several, takes one alone): in an all-C++
    compile, the C++ template alone where the GEMM has a single row, the library alone
    otherwise, so that nothing is timed."""
    if not _COMPILING_ALL_CPP.get() or not choices:
        return choices
    from torch._inductor.select_algorithm import ExternKernelCaller  # a library GEMM

    libraries = [c for c in choices if isinstance(c, ExternKernelCaller)]
    templates = [c for c in choices if not isinstance(c, ExternKernelCaller)]
    if templates and _one_row(choices[0].layout.size):
        return templates
    return libraries or choices


@functools.cache  # once per process: ``all_cpp`` is entered at every single-row call
def _concatenated_linears() -> dict[str, bool]:
    """Inductor's setting that concatenates linears of one input, where this torch has it."""
    import torch._inductor.config as inductor_config

    if not hasattr(inductor_config.cpp, "enable_concat_linear"):
        return {}
    return {"cpp.enable_concat_linear": True}


def _one_row(size) -> bool:
    """Whether an output of this size has a single row: every dimension but the last is 1
    (sympy compares structurally, so a dynamic length is not)."""
    return len(size) > 1 and all(dim == 1 for dim in size[:-1])


def _hook_gemm_candidates() -> None:
    """Puts ``gemm_candidates`` among inductor's preprocessing of GEMM candidates, once (a
    torch without that hook times every candidate of every GEMM)."""
    from torch._inductor import select_algorithm

    add = getattr(select_algorithm, "add_preprocessing_fn", None)
    cache = getattr(select_algorithm, "get_algorithm_selector_cache", None)
    if add is None or cache is None:
        return
    if gemm_candidates not in cache().preprocessing_fns:
        add(gemm_candidates)


@functools.cache  # once per process: ``all_cpp`` is entered at every single-row call
def _parse_each_template_once() -> None:
    """Memoizes inductor's template parsing by source string (a torch without that
    function parses as before). A parsed jinja template is immutable and renders anew
    at each call, so sharing it changes no generated code."""
    from torch._inductor.codegen.common import KernelTemplate

    parse = getattr(KernelTemplate, "_template_from_string", None)
    if parse is not None:
        KernelTemplate._template_from_string = staticmethod(functools.cache(parse))
