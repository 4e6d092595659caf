"""Freed object arenas are reused by the next objects, within the cap, in a fresh process."""

import json
import os
import subprocess
import sys

import pytest

from pipejit.engine import arena_cache

# builds 40 MB of floats in rows of 384, as token vectors come, frees the floats (not the
# rows, whose memory is the C library's) and builds new ones: the page faults of that build
SCRIPT = """
import json, resource
from pipejit.engine import arena_cache
state = arena_cache.keep_freed_arenas()
def fill(rows, start):
    for row in rows:
        for i in range(384):
            row[i] = float(start + i)
rows = [[None] * 384 for _ in range(4400)]
fill(rows, 0)
fill(rows, 1)  # the floats of the first fill freed one by one, their arenas with them
for row in rows:
    row[:] = [None] * 384
kept = arena_cache.kept_bytes()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
fill(rows, 2)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"state": state, "kept": kept, "faults": faults}))
"""


def _run(tmp_path, megabytes: str | None) -> dict:
    env = {**os.environ, "PIPEJIT_CACHE_DIR": str(tmp_path)}
    env.pop("PIPEJIT_ARENA_CACHE_MB", None)
    if megabytes is not None:
        env["PIPEJIT_ARENA_CACHE_MB"] = megabytes
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(sys.platform != "linux", reason="the layer is built on Linux only")
def test_freed_arenas_are_reused_without_faulting_pages_in(tmp_path):
    kept = _run(tmp_path, None)
    assert kept["state"] == "freed arenas kept, up to 64 MiB"
    assert 32 << 20 <= kept["kept"] <= 64 << 20  # the 40 MB of floats, freed
    off = _run(tmp_path, "0")
    assert off["state"] == "CPython's own (PIPEJIT_ARENA_CACHE_MB=0)"
    assert off["kept"] == 0
    # 40 MB are about 10,000 pages: every one faulted in again without the layer
    assert off["faults"] > 5000
    assert kept["faults"] < off["faults"] / 10


@pytest.mark.skipif(sys.platform != "linux", reason="the layer is built on Linux only")
def test_no_more_than_the_cap_is_kept(tmp_path):
    capped = _run(tmp_path, "8")
    assert capped["state"] == "freed arenas kept, up to 8 MiB"
    assert 0 < capped["kept"] <= 8 << 20


def test_a_cap_that_is_no_number_is_named(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", "import pipejit.engine.arena_cache as a; a.keep_freed_arenas()"],
        env={**os.environ, "PIPEJIT_ARENA_CACHE_MB": "lots", "PIPEJIT_CACHE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "PIPEJIT_ARENA_CACHE_MB must be a number of MiB, got 'lots'" in done.stderr


def test_a_layer_that_cannot_be_built_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", "false")
    monkeypatch.setenv("PIPEJIT_CACHE_DIR", str(tmp_path))
    library, failure = arena_cache._built()
    assert library is None
    assert failure.startswith(f"the layer could not be built in {tmp_path}")
    assert not list(tmp_path.glob("*.so"))


def test_a_layer_that_cannot_be_loaded_leaves_the_import_working(tmp_path, monkeypatch):
    broken = tmp_path / "arena_cache_broken.so"
    broken.write_bytes(b"not a shared library")
    monkeypatch.setattr(arena_cache, "state", "not tried")
    monkeypatch.setattr(arena_cache, "_library", None)
    monkeypatch.setattr(arena_cache, "_built", lambda: (broken, ""))
    state = arena_cache.keep_freed_arenas()
    assert state.startswith(f"CPython's own (the layer in {broken} could not be loaded")
    assert arena_cache.kept_bytes() == 0
