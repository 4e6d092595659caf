"""A persistent compile cache in a folder: what a process start needs to skip compiling.

Two things go in the folder:
- the artifacts of ``torch.compiler``'s public API (``save_cache_artifacts``), which
  ``load_cache_artifacts`` puts back before the first compile: inductor's generated
  code and, on CUDA, the built Triton kernels. They are portable to a fresh machine
  or container, but on a CPU they lack the C++ kernels built from that code, so a
  start from them alone still spends most of a compile building those;
- inductor's own cache directory, as ``inductor/`` in the folder, which holds those
  built kernels: the folder is made inductor's cache directory for the process
  (``TORCHINDUCTOR_CACHE_DIR``) unless the user chose another one, which is kept.
  Its entries are keyed by machine and compiler, so a folder carried to another CPU
  misses cleanly and compiles again.
The folder also keeps what inductor's probe of the CPU's vector instructions found
(``pipejit.engine.vec_isa``) and the CPU path's timings (``measured/``): a warm start chooses
from them rather than timing again, so it builds the graph the cache holds, and, as
``aot/``, the ahead-of-time packages a CPU text model's batches run from
(``pipejit.engine.aot_graph``), which no process traces again. Dynamo still traces
what runs through ``torch.compile`` (single rows, other models) in each new process.
Measured with
``pipejit-bench run --suite cold-start``.

Each process that compiles something new writes one file of its artifacts; a
start loads every file. Files only ever add artifacts, so two processes writing
at once lose nothing.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from pipejit.engine import vec_isa

SUFFIX = ".torchcache"
INDUCTOR_DIR = "inductor"
MEASURED_DIR = "measured"
INDUCTOR_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


class CompileCache:
    """Loads the artifacts of a cache folder, and saves the ones this process adds."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"compile_cache must be a folder, got the file {self.folder}")
        self.loaded_files = 0
        # (kind, key) of every artifact loaded or saved: a save of nothing new writes no file
        self.known: set[tuple[str, str]] = set()
        self.inductor_dir: Path | None = None  # inductor's cache directory, once loaded
        self.trusted_isa_probe = False  # the vector probe's earlier answer was reused

    def load(self, cpu: bool = False) -> int:
        """Make the folder inductor's cache directory where no other is set, settle the
        vector probe for a ``cpu`` pipeline, and load every artifact file of the folder;
        returns how many artifacts they held."""
        self.inductor_dir = self._inductor_dir()
        if cpu:
            self._settle_vector_probe()
        if not self.folder.is_dir():
            return 0
        for path in sorted(self.folder.glob(f"*{SUFFIX}")):
            info = torch.compiler.load_cache_artifacts(path.read_bytes())
            self.loaded_files += 1
            if info is not None:
                self.known |= _keys(info)
        return len(self.known)

    def save(self) -> Path | None:
        """Write the artifacts compiled in this process, if any are new; returns the file."""
        saved = torch.compiler.save_cache_artifacts()
        if saved is None:
            return None
        data, info = saved
        keys = _keys(info)
        if keys <= self.known:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{time.time_ns()}-{os.getpid()}{SUFFIX}"
        partial = path.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(path)  # atomic: a concurrent load never reads half a file
        self.known |= keys
        return path

    def recall(self, key: str) -> dict | None:
        """A measurement an earlier process saved under ``key`` (see ``remember``)."""
        path = self.folder / MEASURED_DIR / f"{key}.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def remember(self, key: str, measured: dict) -> None:
        """Keep a measurement for the next start: the CPU path's timings (a warm start
        that measured anew could choose otherwise and miss its cache), the vector probe's."""
        folder = self.folder / MEASURED_DIR
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f"{key}.{os.getpid()}.partial"
        partial.write_text(json.dumps(measured))
        partial.replace(folder / f"{key}.json")

    def _settle_vector_probe(self) -> None:
        """Probe once per folder and machine, and compile under the answer from then on:
        the same setting in the first start and the later ones keeps their cache keys
        equal (the setting is part of inductor's key)."""
        key = vec_isa.probe_key()
        previous = self.recall(key)
        accepted = previous["accepted"] if previous is not None else vec_isa.probed()
        if accepted is None:
            return
        if previous is None:
            self.remember(key, {"accepted": accepted})
        self.trusted_isa_probe = vec_isa.trust_if_all_passed(accepted)

    def _inductor_dir(self) -> Path:
        chosen = os.environ.get(INDUCTOR_CACHE_ENV)
        if chosen and os.path.abspath(chosen) != _torch_default_cache_dir():
            return Path(chosen)
        folder = (self.folder / INDUCTOR_DIR).absolute()
        folder.mkdir(parents=True, exist_ok=True)
        os.environ[INDUCTOR_CACHE_ENV] = str(folder)
        return folder


def _keys(info) -> set[tuple[str, str]]:
    return {(kind, key) for kind, keys in info.artifacts.items() for key in keys}


def _torch_default_cache_dir() -> str | None:
    """Where inductor caches when no one chose: importing dynamo sets the variable to it,
    which is not a choice (None where this torch keeps the default elsewhere)."""
    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    except ImportError:
        return None
    return os.path.abspath(default_cache_dir())
