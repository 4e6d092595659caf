"""Inductor's probe of the CPU's vector instructions, remembered across process starts.

Before its first C++ compile in a process, inductor builds and loads a small test
library for each vector instruction set the CPU's flags list (AVX2, AVX-512, ...),
to learn which the compiler can target: about 1.3 s on a 2-core Xeon, in every new
process, cache or not. A compile cache probes once (``CompileCache``), keeps what the
probe found, and where it accepted every listed set tells inductor so, in that start
and every later one on the same machine (same flags, same torch), which then skip
the probe. Where the probe rejected one, or torch's internals differ, inductor
probes as usual.

Without a compile cache the probe runs in every process, and inductor runs it one set after
another in the middle of its first compile's code generation. ``probe_in_background`` starts
it earlier, as the first compile begins, each set on a thread of its own (the builds are
compiler processes): inductor then finds each answer made, or waits on the build under way.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading

import torch

from pipejit.engine.cpu_path import cpu_flags


def probe_key() -> str:
    """What the probe's result depends on: the CPU's flags and torch."""
    described = json.dumps([cpu_flags(), torch.__version__])
    return "vec-isa-" + hashlib.sha256(described.encode()).hexdigest()[:24]


def probed() -> list[str] | None:
    """The instruction sets inductor's probe accepted in this process (probing if it
    has not yet), or None where this torch has no such probe."""
    try:
        from torch._inductor.cpu_vec_isa import valid_vec_isa_list
    except ImportError:
        return None
    return [str(isa) for isa in valid_vec_isa_list()]


def listed() -> list[str] | None:
    """The instruction sets the CPU's flags list, as inductor names them (None where
    this torch has no such list)."""
    sets = _listed_sets()
    return None if sets is None else [str(isa) for isa in sets]


def _listed_sets() -> list | None:
    """Inductor's objects for the instruction sets the CPU's flags list."""
    try:
        from torch._inductor.cpu_vec_isa import supported_vec_isa_list, x86_isa_checker
    except ImportError:
        return None
    flags = x86_isa_checker()
    return [isa for isa in supported_vec_isa_list if all(f in flags for f in str(isa).split())]


@functools.cache  # once per process
def probe_in_background() -> list[threading.Thread]:
    """Starts inductor's probe of each listed set on a daemon thread of its own, unless
    inductor was told the answer (``trust_if_all_passed``); the threads started."""
    import torch._inductor.config as inductor_config

    sets = _listed_sets()
    if not sets or inductor_config.cpp.vec_isa_ok is not None:
        return []
    threads = [threading.Thread(target=bool, args=(isa,), daemon=True) for isa in sets]
    for thread in threads:
        thread.start()
    return threads


def trust_if_all_passed(accepted: list[str]) -> bool:
    """Tell inductor every set the CPU's flags list builds, when a probe (this
    process's or an earlier one's) ``accepted`` all of them; returns whether it did."""
    import torch._inductor.config as inductor_config

    sets = listed()
    if not sets or sets != accepted:
        return False
    inductor_config.cpp.vec_isa_ok = True
    return True
