"""Cold against warm process start: the time to a first compiled result, in fresh processes.

The ``cold-start`` suite runs rounds of three subprocesses, one after the other (a
shared machine's speed drifts: compare within a round), each building
``pipejit.pipeline(..., compile_cache=folder)`` and calling it once:
- ``cold``: an empty folder; compiles, and fills the folder (the batches' ahead-of-time
  package, ``pipejit.engine.aot_graph``, the artifacts of what ``torch.compile`` built,
  the single sentence's graph, and, as ``inductor/``, inductor's cache directory);
- ``warm``: the folder the cold start filled, as the next start on the same machine
  or in an image built with it;
- ``artifacts``: only the folder's portable files (packages and artifacts), with an
  empty inductor cache directory of its own, as a fresh machine given those files alone.
Each round's processes also get a temporary folder (``TMPDIR``) of the round's own, where
inductor keeps the C++ headers it precompiles (outside its cache directory, so an empty one
does not make a machine fresh; 7 s of compiler time each on a 2-core Zen 3): ``cold`` and
``warm`` share one, as one machine; ``artifacts`` starts on an empty one.
Each reports the whole process's seconds, the seconds from ``pipejit.pipeline(...)``
to the first result (a batch of 8), the compile seconds within it, the seconds of the
one sentence it answers next (what a service is sent: one row compiles a graph of its
own), the packages it loaded and the artifacts it loaded; its outputs are checked against
transformers.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pipejit.bench.models import random_classifier
from pipejit.bench.parity import TOLERANCE, outputs_match
from pipejit.bench.results import engine_run, settings_case
from pipejit.bench.suites import Options
from pipejit.engine.aot_graph import PACKAGE_DIR
from pipejit.engine.compile_cache import INDUCTOR_CACHE_ENV, SUFFIX

TASK = "text-classification"
TEXTS = ["a short one", "a somewhat longer sentence about the weather in paris today"] * 4
SINGLE = TEXTS[1]
STARTS = ("cold", "warm", "artifacts")
COLUMNS = (
    "first_result_seconds",
    "compile_seconds",
    "first_single_seconds",
    "packages_loaded",
    "artifacts_loaded",
)


def suite(folder: Path, options: Options) -> list[dict[str, Any]]:
    """The distilbert-size classifier (tiny with ``--tiny``): ``options.repeats`` rounds."""
    import transformers

    size = "tiny" if options.tiny else "distilbert"
    model = random_classifier(size, folder / "classifier")
    reference = transformers.pipeline(TASK, model=model)
    expected = [*reference(TEXTS, batch_size=1), reference(SINGLE)]
    done: dict[str, list[dict]] = {start: [] for start in STARTS}
    for round_ in range(options.repeats):
        for start, run in starts(model, folder / f"round-{round_}").items():
            done[start].append(run)
    runs = {
        start: engine_run(
            1,
            [r["process_seconds"] for r in results],
            all(outputs_match(r["outputs"], expected, *TOLERANCE["float32"]) for r in results),
            **{c: statistics.median(r[c] for r in results) for c in COLUMNS},
        )
        for start, results in done.items()
    }
    return [
        settings_case(
            f"{TASK} {size}: a new process's first compiled result",
            task=TASK,
            axis="model",
            baseline="cold",
            items_name="process starts",
            columns=COLUMNS,
            runs={size: runs},
            notes=[
                "cold: an empty compile_cache folder; warm: the folder the cold start filled; "
                "artifacts: the folder's portable files alone (packages and artifacts), with "
                "an empty inductor cache directory (a fresh machine given only those files)."
            ],
        )
    ]


def starts(model: str, scratch: Path) -> dict[str, dict]:
    """One round: the cold start, then the warm one on its folder, then one on its artifacts."""
    cache, machine = scratch / "cache", scratch / "machine-tmp"
    results = {
        "cold": run_child(model, cache, temp=machine),
        "warm": run_child(model, cache, temp=machine),
    }
    portable = scratch / "artifacts-only"
    portable.mkdir(parents=True)
    for path in cache.glob(f"*{SUFFIX}"):
        shutil.copy(path, portable / path.name)
    if (cache / PACKAGE_DIR).is_dir():
        shutil.copytree(cache / PACKAGE_DIR, portable / PACKAGE_DIR)
    results["artifacts"] = run_child(
        model, portable, inductor=scratch / "empty-inductor", temp=scratch / "fresh-tmp"
    )
    return results


def run_child(
    model: str, cache: Path, inductor: Path | None = None, temp: Path | None = None
) -> dict:
    """One process start on the ``cache`` folder; inductor's cache directory is the
    folder's own unless ``inductor`` names another; ``temp``: its temporary folder
    (``TMPDIR``; the parent's when None)."""
    env = {k: v for k, v in os.environ.items() if k != INDUCTOR_CACHE_ENV}
    if inductor is not None:
        env[INDUCTOR_CACHE_ENV] = str(inductor)
    if temp is not None:
        temp.mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = str(temp)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pipejit.bench.cold_start", model, str(cache)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"a process start on {cache} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"process_seconds": time.perf_counter() - start, **result}


def child(model: str, cache: str) -> dict:
    """One process start: build the pipeline on ``cache``, run it on a batch, then on one
    sentence."""
    import pipejit

    start = time.perf_counter()
    pipe = pipejit.pipeline(TASK, model=model, compile_cache=cache)
    outputs = pipe(TEXTS, batch_size=8)
    first_result = time.perf_counter() - start
    compile_seconds = sum(pipe.stats()["compile_seconds"].values())
    start = time.perf_counter()
    outputs.append(pipe(SINGLE))
    first_single = time.perf_counter() - start
    stats = pipe.stats()
    package = pipe.modules.runner("model").aot_graph
    return {
        "first_result_seconds": first_result,
        "compile_seconds": compile_seconds,
        "first_single_seconds": first_single,
        "compiles": stats["compiles"],
        "packages_loaded": int(package is not None and package.loaded is not None),
        "packages_built": int(package is not None and package.built),
        "cache_files_loaded": pipe.compile_cache.loaded_files,
        "artifacts_loaded": len(pipe.compile_cache.known),
        "inductor_dir": str(pipe.compile_cache.inductor_dir),
        "outputs": outputs,
    }


if __name__ == "__main__":  # the child process of ``run_child``
    print(json.dumps(child(*sys.argv[1:3])))
