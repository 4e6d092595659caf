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
Dynamo still traces the model in each new process. Measured with
``pipejit-bench run --suite cold-start``.

Each process that compiles something new writes one file of its artifacts; a
start loads every file. Files only ever add artifacts, so two processes writing
at once lose nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from torch._inductor.runtime.cache_dir_utils import default_cache_dir

SUFFIX = ".torchcache"
INDUCTOR_DIR = "inductor"
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

    def load(self) -> int:
        """Make the folder inductor's cache directory where no other is set, and load
        every artifact file of the folder; returns how many artifacts they held."""
        self.inductor_dir = self._inductor_dir()
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

    def _inductor_dir(self) -> Path:
        # importing dynamo sets the variable to torch's default: that one is not a choice
        chosen = os.environ.get(INDUCTOR_CACHE_ENV)
        if chosen and os.path.abspath(chosen) != os.path.abspath(default_cache_dir()):
            return Path(chosen)
        folder = (self.folder / INDUCTOR_DIR).absolute()
        folder.mkdir(parents=True, exist_ok=True)
        os.environ[INDUCTOR_CACHE_ENV] = str(folder)
        return folder


def _keys(info) -> set[tuple[str, str]]:
    return {(kind, key) for kind, keys in info.artifacts.items() for key in keys}
