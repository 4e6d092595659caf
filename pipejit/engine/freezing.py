"""Inductor's weight freezing, its weights packed as each compile asks.

Inductor registers the patterns that pack frozen weights for oneDNN (or MKL) once per
process, at its first frozen compile, and only if ``cpp.weight_prepack`` is set at that
moment; once registered they apply to every frozen compile, whatever the setting says. So
the process's first frozen compile decided for all the others. Seen with torch 2.13 and
all-MiniLM-L6-v2 (profiled in one process): after a prepacked compile, a one-row graph the
CPU path had put on torch's GEMM ran oneDNN's packed linears; after a one-row graph on
torch's GEMM, a second pipeline's one-row graph asked for oneDNN ran MKL's GEMM on transposed
weights (its p50 1.5x), and a bf16 pipeline's frozen linears would go unpacked.

``freezing(prepack)`` makes the setting hold for the frozen compiles inside: the patterns are
registered up front (unless a frozen compile outside pipejit settled them first), and where
prepacking is off their pass is set aside for the while. Where inductor's internals are
not as expected, it only sets the flag.

The flag stays off there: inductor offers its C++ GEMM template only while it is on, and
offered on unpacked frozen weights (the flag on, the pass set aside) the template answered
wrong in a tiny BERT classifier's one-row graph whenever its timing won (torch 2.13: labels
and scores far from eager's). So the all-C++ one-row graphs on torch's GEMM never get the
template, not even for a single row.
"""

from __future__ import annotations

import contextlib
import functools

# inductor's freezing pattern pass that packs linear (and quantized) weights
_PACKING_PASS = 1


@contextlib.contextmanager
def freezing(prepack: bool = True, **settings):
    """Inductor's weight freezing for the compiles inside, with ``settings`` (more of
    inductor's config), their weights packed if and only if ``prepack``.

    Set around each call: given as ``torch.compile(options={"freezing": True})`` instead,
    it froze nothing (torch 2.13, checked by profiling: the linears stayed ``addmm``).
    """
    import torch._inductor.config as inductor_config

    passes = _packing_passes()
    with inductor_config.patch({"freezing": True, "cpp.weight_prepack": prepack, **settings}):
        if prepack or passes is None:
            yield
            return
        from torch._inductor.pattern_matcher import PatternMatcherPass

        packing = passes[_PACKING_PASS]
        passes[_PACKING_PASS] = PatternMatcherPass()
        try:
            yield
        finally:
            passes[_PACKING_PASS] = packing


@functools.cache
def _packing_passes() -> list | None:
    """Inductor's freezing pattern passes, the packing ones registered (outside autocast);
    None where this torch lays them out otherwise."""
    import torch
    import torch._inductor.config as inductor_config

    try:
        from torch._inductor.fx_passes import freezing_patterns
    except ImportError:
        return None
    passes = getattr(freezing_patterns, "pass_patterns", None)
    lazy_init = getattr(freezing_patterns, "lazy_init", None)
    if not isinstance(passes, list) or len(passes) <= _PACKING_PASS or lazy_init is None:
        return None
    # traced under the bf16 opt-in's autocast, the patterns would be bf16 ones: the
    # concatenation of linears of one input (``all_cpp``) then never matched an fp32 graph
    with inductor_config.patch({"cpp.weight_prepack": True}), torch.autocast("cpu", enabled=False):
        lazy_init()
    return passes
