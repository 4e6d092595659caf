"""Inductor's settings for the all-C++ one-row graphs (``runner.one_row_cpp``).

Inside ``all_cpp(True)`` a compile writes inductor's C++ wrapper, freezes the weights, and
times, per GEMM shape, inductor's C++ template against the library GEMM, keeping the faster.
The library GEMM is oneDNN's prepacked linear (inductor packs frozen fp32 weights for it) or,
with ``prepacked=False``, torch's default GEMM: MKL on x86, which on a 2-core AMD EPYC (Zen 3)
with Intel's kernels (``pipejit.engine.mkl_kernels``) served a sentence's few dozen rows
faster than oneDNN's prepacked linear (the CPU path's timings decide, see ``cpu_path``).
Inductor offers no template beside torch's GEMM (see ``pipejit.engine.freezing``): those
graphs run it untimed.

Except for GEMMs of a single row: the heads of models whose last layer computes the first
position alone (``pipejit.tasks.first_token``) multiply one row by each weight. Those take
the template without timing, as each timing builds the template's kernel apart, once more
than the graph does: on a 2-core AMD EPYC (Zen 3) 5-9 s of a cold compile per shape, five
shapes for a distilbert-size classifier. The template had won all five there; a one-row GEMM
reads its weights once, so the two differ little, in a forward a hundred times longer.

Nor is the template timed again where it lost clearly: once the library GEMM ran one shape
of a compile ``TEMPLATE_BEHIND`` times as fast as the template or more, the compile's other
shapes take the library untimed, and so do the process's later all-C++ compiles on the same
library (what was timed is the template's micro-kernels against the library on this CPU,
which another model's shapes do not change). On a 2-core AMD EPYC Zen 4 (AVX-512) the
template ran each of a distilbert-size classifier's four timed one-row shapes at 41-42% of
oneDNN's speed, all-MiniLM-L6-v2's first at 57%, and each timing cost a 2.4-2.6 s build; on
the Zen 3 above it won all five of the classifier's.

Inductor parses each of its C++ GEMM template strings anew at every use (jinja's
``from_string`` keeps no cache), hundreds of times for one model's graph. Inside
``all_cpp`` each string is parsed once per process: on the same Zen 3, a sampling
profiler put about 9 of the 55 busy seconds of a MiniLM one-row compile in that parsing.

Each timed template kernel is a C++ library of its own, which inductor builds without the
precompiled header its other CPU kernels get, so each build parses that header anew. Inside
``all_cpp`` they get it too. On the same Zen 3, a distilbert-size classifier's one-row
compile on a fresh machine (its first single sentence after its batch graph, with a fresh
temporary folder, where inductor keeps its caches and precompiled headers) took 40-44 s
against 54-55 s, the compiler's CPU time 24-27 s against 38 s (two runs each, alternating);
with the headers of earlier processes at hand, 21-24 s of compiler time against 27-29 s.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from dataclasses import dataclass

from pipejit.engine.freezing import freezing

# the library GEMM at least this many times as fast as the template on one shape: the
# compile's other shapes, and the process's later compiles on that library, take it untimed
TEMPLATE_BEHIND = 1.5
# the libraries (by ``prepacked``) the template fell behind in this process; only oneDNN's is
# ever timed against it (see ``freezing``)
_BEHIND_IN_PROCESS: set[bool] = set()


@dataclass
class _AllCppCompile:
    """What an all-C++ compile learnt from its GEMM timings so far."""

    prepacked: bool
    template_behind: bool = False


_COMPILING_ALL_CPP: contextvars.ContextVar[_AllCppCompile | None] = contextvars.ContextVar(
    "pipejit_all_cpp", default=None
)


@contextlib.contextmanager
def all_cpp(enabled: bool, prepacked: bool = True):
    """The all-C++ settings for the compiles inside (nothing when not ``enabled``); the
    library GEMM timed against the template is oneDNN's prepacked linear where
    ``prepacked``, torch's default GEMM (MKL on x86) where not."""
    if not enabled:
        yield
        return
    _hook_gemm_timings()
    _parse_each_template_once()
    _precompile_timed_kernels_header()
    current = _AllCppCompile(prepacked, template_behind=prepacked in _BEHIND_IN_PROCESS)
    token = _COMPILING_ALL_CPP.set(current)
    try:
        with freezing(
            prepacked,
            cpp_wrapper=True,
            max_autotune=True,
            max_autotune_gemm_backends="CPP,ATEN",
        ):
            yield
    finally:
        _COMPILING_ALL_CPP.reset(token)


def gemm_candidates(choices: list) -> list:
    """Inductor's candidates for one GEMM, as it times them: in an all-C++ compile, the C++
    template alone where the GEMM has a single row, the library alone once the template fell
    ``TEMPLATE_BEHIND`` behind it (else all of them)."""
    current = _COMPILING_ALL_CPP.get()
    if current is None or not choices:
        return choices
    from torch._inductor.select_algorithm import ExternKernelCaller  # a library GEMM

    libraries = [c for c in choices if isinstance(c, ExternKernelCaller)]
    templates = [c for c in choices if not isinstance(c, ExternKernelCaller)]
    if templates and _one_row(choices[0].layout.size):
        return templates
    if libraries and current.template_behind:
        return libraries
    return choices


def note_gemm_timing(timings: dict, *rest) -> None:
    """Inductor's timings of one GEMM's candidates (milliseconds by candidate): in an all-C++
    compile, whether the template fell ``TEMPLATE_BEHIND`` behind the library."""
    current = _COMPILING_ALL_CPP.get()
    if current is None:
        return
    from torch._inductor.select_algorithm import ExternKernelCaller

    library = [ms for c, ms in timings.items() if isinstance(c, ExternKernelCaller)]
    template = [ms for c, ms in timings.items() if not isinstance(c, ExternKernelCaller)]
    if library and template and min(template) >= TEMPLATE_BEHIND * min(library):
        current.template_behind = True
        _BEHIND_IN_PROCESS.add(current.prepacked)


def _one_row(size) -> bool:
    """Whether an output of this size has a single row: every dimension but the last is 1
    (sympy compares structurally, so a dynamic length is not)."""
    return len(size) > 1 and all(dim == 1 for dim in size[:-1])


def _hook_gemm_timings() -> None:
    """Puts ``gemm_candidates`` among inductor's preprocessing of GEMM candidates and
    ``note_gemm_timing`` among its readers of their timings, once (a torch without those
    hooks times every candidate of every GEMM)."""
    from torch._inductor import select_algorithm

    add = getattr(select_algorithm, "add_preprocessing_fn", None)
    cache = getattr(select_algorithm, "get_algorithm_selector_cache", None)
    if add is None or cache is None:
        return
    selector = cache()
    if gemm_candidates not in selector.preprocessing_fns:
        add(gemm_candidates)
    savers = getattr(selector, "feedback_saver_fns", None)
    if savers is not None and note_gemm_timing not in savers:
        select_algorithm.add_feedback_saver(note_gemm_timing)


@functools.cache  # once per process: ``all_cpp`` is entered at every single-row call
def _parse_each_template_once() -> None:
    """Memoizes inductor's template parsing by source string (a torch without that
    function parses as before). A parsed jinja template is immutable and renders anew
    at each call, so sharing it changes no generated code."""
    from torch._inductor.codegen.common import KernelTemplate

    parse = getattr(KernelTemplate, "_template_from_string", None)
    if parse is not None:
        KernelTemplate._template_from_string = staticmethod(functools.cache(parse))


@functools.cache  # once per process
def _precompile_timed_kernels_header() -> None:
    """Gives the C++ kernels inductor builds alone (each GEMM template it times) the
    precompiled header of its other CPU kernels, inside ``all_cpp`` (a torch without
    that hook builds them as before): on a 2-core AMD EPYC (Zen 3) one such kernel built
    in 2.1 s with it, 4.5-5 s without."""
    from torch._inductor import codecache

    cache = getattr(codecache, "CppCodeCache", None)
    prefix = getattr(codecache, "_get_cpp_prefix_header", None)
    if cache is None or prefix is None or "_get_uncompiled_header" not in vars(cache):
        return
    inductors_choice = cache._get_uncompiled_header

    def header(cls, device: str) -> str | None:
        if _COMPILING_ALL_CPP.get() is not None and cls is cache:
            return prefix(device)
        return inductors_choice.__func__(cls, device)

    cache._get_uncompiled_header = classmethod(header)
