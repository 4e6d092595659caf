"""A persistent compile cache in a folder, through ``torch.compiler``'s public artifact API.

torch already keeps inductor's compiled code in a local cache directory; this
folder carries the same artifacts (``torch.compiler.save_cache_artifacts``) to a
fresh machine or container, where ``load_cache_artifacts`` puts them back before
the first compile. Dynamo still traces the model in a new process: what the warm
start skips is inductor's lowering and code generation, and on CUDA the Triton
kernel builds (bundled into the artifacts). On a CPU the C++ kernels are not in the
artifacts and are built again, so there it gains little (measured with
``python -m pipejit.bench.cold_start``: first result 17.7 s cold, 16.1 s from the
artifacts, 5.0 s from torch's own on-disk cache of the same machine); point
``TORCHINDUCTOR_CACHE_DIR`` at a lasting folder for warm starts on one machine.

Each process that compiles something new writes one file of its artifacts; a
start loads every file. Files only ever add artifacts, so two processes writing
at once lose nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

SUFFIX = ".torchcache"


class CompileCache:
    """Loads the artifacts of a cache folder, and saves the ones this process adds."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"compile_cache must be a folder, got the file {self.folder}")
        self.loaded_files = 0
        # (kind, key) of every artifact loaded or saved: a save of nothing new writes no file
        self.known: set[tuple[str, str]] = set()

    def load(self) -> int:
        """Load every artifact file of the folder; returns how many artifacts they held."""
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


def _keys(info) -> set[tuple[str, str]]:
    return {(kind, key) for kind, keys in info.artifacts.items() for key in keys}
