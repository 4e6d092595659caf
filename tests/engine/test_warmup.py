"""Warmup policy, stats, and the persistent compile cache."""

import os

import pytest
import torch
import transformers

import pipejit
from pipejit.engine.aot_graph import PACKAGE_DIR
from pipejit.engine.compile_cache import INDUCTOR_CACHE_ENV, INDUCTOR_DIR, SUFFIX, CompileCache
from pipejit.engine.shapes import capture_plan
from tests.engine.capture_standin import RecordingCapture, graphed
from tests.models import sentences
from tests.parity import assert_same

TEXTS = sentences(16, seed=3)


@pytest.fixture(scope="module")
def reference(model_folder):
    return transformers.pipeline(
        "text-classification", model=str(model_folder("text-classification"))
    )


def test_default_warmup_captures_the_plan_largest_first(reference):
    capture = RecordingCapture()
    pj = graphed(
        reference, capture, length_buckets=(32, 64, 128), batch_sizes=(1, 2, 4), max_tokens=256
    )
    stats = pj.warmup()
    plan = capture_plan((32, 64, 128), (1, 2, 4), 256)
    assert sorted(stats["captured_buckets"]) == sorted(plan)
    assert [shape[0] for shape in capture.recorded] == [rows for rows, _ in plan]
    assert stats["captures"] == len(plan) and set(stats["capture_seconds"]) == {
        f"{b}x{n}" for b, n in plan
    }
    assert stats["batches"] == 0  # warmups and captures are not batches
    texts = [t for t in TEXTS if len(reference.tokenizer(t)["input_ids"]) <= 64][:4]
    assert_same(pj(texts, batch_size=4), reference(texts))
    after = pj.stats()
    assert after["captures"] == len(plan) and after["graph_hits"] >= 1


def test_warmup_skips_what_ran_out_of_memory_and_lowers_the_limit(reference):
    too_big = lambda shape: torch.OutOfMemoryError("out of memory") if shape[0] > 2 else None  # noqa: E731
    pj = graphed(
        reference, RecordingCapture(fail=too_big), length_buckets=(64, 128), batch_sizes=(1, 2, 4)
    )
    stats = pj.warmup()
    # 4x128 fails (limit 256), then 4x64 fails (limit 128): 2x128 is skipped untried
    assert stats["captured_buckets"] == [(1, 64), (1, 128), (2, 64)]
    assert stats["oom_splits"] == 2 and stats["oom_token_limit"] == 128


def test_warmup_without_graphs_compiles_each_length_at_batch_one(model_folder, counting_backend):
    pj = pipejit.pipeline(
        "text-classification",
        model=str(model_folder("text-classification")),
        shapes="static",
        compile_backend=counting_backend,
        length_buckets=(16, 32, 64),
    )
    stats = pj.warmup()
    assert stats["buckets"] == [(1, 16), (1, 32), (1, 64), (1, 128)]
    assert stats["compiles"] == counting_backend.graphs == 4
    assert stats["captures"] == 0 and not stats["cuda_graphs"]


def test_stats_keep_the_old_keys_and_add_graphs_and_backoff(pipelines):
    ref, pj = pipelines("text-classification")
    assert_same(pj(TEXTS, batch_size=4), ref(TEXTS))
    stats = pj.stats()
    old = {"compiled", "buckets", "compiles", "compile_seconds", "batches", "real_tokens"}
    old |= {"padded_tokens", "padding_ratio", "compile_failed"}
    new = {"cuda_graphs", "graphs_disabled", "captures", "captured_buckets", "capture_seconds"}
    new |= {"graph_hits", "graph_fallbacks", "graph_padded_rows", "oom_splits", "oom_token_limit"}
    assert old | new <= set(stats)
    assert stats["real_tokens"] <= stats["padded_tokens"]
    assert 0 <= stats["padding_ratio"] < 1 and stats["oom_splits"] == 0


def test_compile_cache_folder_is_checked(tmp_path, monkeypatch):
    file = tmp_path / "not-a-folder"
    file.write_text("x")
    with pytest.raises(ValueError, match="compile_cache must be a folder"):
        CompileCache(file)
    monkeypatch.setenv(INDUCTOR_CACHE_ENV, str(tmp_path / "chosen"))
    cache = CompileCache(tmp_path / "missing")
    assert cache.load() == 0
    assert cache.inductor_dir == tmp_path / "chosen"  # a directory already chosen is kept


def test_compile_cache_folder_holds_inductors_cache_when_none_is_chosen(tmp_path, monkeypatch):
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.setenv(INDUCTOR_CACHE_ENV, default_cache_dir())  # torch's: no one's choice
    cache = CompileCache(tmp_path / "cache")
    cache.load()
    assert cache.inductor_dir == tmp_path / "cache" / INDUCTOR_DIR and cache.inductor_dir.is_dir()
    assert os.environ[INDUCTOR_CACHE_ENV] == str(cache.inductor_dir)


@pytest.mark.slow
def test_a_second_process_starts_from_the_saved_folder(tmp_path):
    from pipejit.bench.cold_start import run_child
    from pipejit.bench.models import random_classifier

    model = random_classifier("tiny", tmp_path / "model")
    cache, machine = tmp_path / "cache", tmp_path / "machine-tmp"
    cold = run_child(model, cache, temp=machine)
    # inductor's precompiled headers land in the temporary folder the process was given
    assert list(machine.glob("torchinductor_*/precompiled_headers/*.gch"))
    packages = sorted(p.name for p in (cache / PACKAGE_DIR).glob("*.pt2"))
    files = sorted(p.name for p in cache.glob(f"*{SUFFIX}"))
    # the batch's package (pipejit.engine.aot_graph), the single sentence's compiled graph
    assert cold["packages_built"] == 1 and cold["packages_loaded"] == 1 and len(packages) == 1
    assert cold["cache_files_loaded"] == 0 and len(files) == 1
    assert cold["inductor_dir"] == str(cache / INDUCTOR_DIR)
    assert any((cache / INDUCTOR_DIR).iterdir())  # the built kernels are kept in the folder
    warm = run_child(model, cache, temp=machine)
    assert warm["packages_loaded"] == 1 and warm["packages_built"] == 0
    assert warm["cache_files_loaded"] == 1 and warm["artifacts_loaded"] > 0
    assert warm["compiles"] == cold["compiles"]
    assert warm["outputs"] == cold["outputs"]
    assert sorted(p.name for p in (cache / PACKAGE_DIR).glob("*.pt2")) == packages
    assert len(list(cache.glob(f"*{SUFFIX}"))) == 1  # nothing new compiled: no new file


@pytest.mark.slow
def test_compiled_graphs_leave_their_artifacts_for_the_next_start(
    model_folder, reference, tmp_path
):
    """A pipeline that torch.compile runs (here the CPU path is off, so no packages) saves
    its artifacts once per call that compiled, and a new cache on the folder loads them."""
    folder = str(model_folder("text-classification"))
    cache = tmp_path / "cache"
    ours = pipejit.pipeline(
        "text-classification", model=folder, compile_cache=cache, cpu_path=False
    )
    assert_same(ours(TEXTS[:4], batch_size=4), reference(TEXTS[:4], batch_size=1))
    assert len(list(cache.glob(f"*{SUFFIX}"))) == 1
    assert CompileCache(cache).load() > 0
    ours(TEXTS[:4], batch_size=4)
    assert len(list(cache.glob(f"*{SUFFIX}"))) == 1  # nothing new compiled: no new file


def test_compile_cache_keeps_the_cpu_paths_timings_for_the_next_start(
    model_folder, tmp_path, monkeypatch
):
    from pipejit.engine import cpu_path

    monkeypatch.setattr(cpu_path, "MIN_MEASURED_WEIGHTS", 0)
    calls = []

    def measure(model, setups, autocast=None):
        calls.append(1)
        return {n: [1.0 if "onednn" in n else 5.0] * len(cpu_path.EXAMPLE_SHAPES) for n in setups}

    monkeypatch.setattr(cpu_path, "time_forwards", measure)
    monkeypatch.setenv(INDUCTOR_CACHE_ENV, str(tmp_path / "inductor"))
    folder = str(model_folder("text-classification"))
    # compiled pipelines (a compile cache is for them), never called: nothing compiles
    first = pipejit.pipeline("text-classification", model=folder, compile_cache=tmp_path / "c")
    second = pipejit.pipeline("text-classification", model=folder, compile_cache=tmp_path / "c")
    assert len(calls) == 1  # the second start chose from the first one's timings
    a, b = first.stats()["cpu_path"], second.stats()["cpu_path"]
    assert not a["recalled"] and b["recalled"]
    assert a["measured_ms"] == b["measured_ms"] and a["linears"] == b["linears"] == "onednn"


def test_vector_probe_is_trusted_only_when_it_accepted_every_listed_set():
    import torch._inductor.config as inductor_config

    from pipejit.engine import vec_isa

    accepted = vec_isa.probed()
    if not accepted:
        pytest.skip("no vector instruction set to probe on this CPU")
    with inductor_config.patch({"cpp.vec_isa_ok": None}):
        assert not vec_isa.trust_if_all_passed(accepted[1:])  # one was rejected
        assert inductor_config.cpp.vec_isa_ok is None
        assert vec_isa.trust_if_all_passed(accepted) == (accepted == vec_isa.listed())


_PROBE_AHEAD = """
import json
from torch._inductor import cpu_vec_isa
from pipejit.engine import vec_isa

threads = vec_isa.probe_in_background()
for thread in threads:
    thread.join()
asked = []
cpu_vec_isa.VecISA.check_build = lambda self, code: asked.append(str(self))
print(json.dumps({
    "started": len(threads),
    "listed": vec_isa.listed(),
    "valid": [str(isa) for isa in cpu_vec_isa.valid_vec_isa_list()],
    "built_again": asked,
}))
"""


def test_vector_probe_run_ahead_leaves_inductor_nothing_to_build(tmp_path):
    import json
    import subprocess
    import sys

    env = {**os.environ, INDUCTOR_CACHE_ENV: str(tmp_path / "inductor"), "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE_AHEAD], env=env, capture_output=True, text=True, check=True
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    if not found["listed"]:
        pytest.skip("no vector instruction set to probe on this CPU")
    assert found["started"] == len(found["listed"])  # a thread a set
    assert found["built_again"] == []  # inductor's own probe found every answer made
    assert found["valid"] and set(found["valid"]) <= set(found["listed"])


def test_vector_probe_starts_with_a_cpu_pipelines_first_compiled_module(model_folder, monkeypatch):
    import torch._inductor.config as inductor_config

    from pipejit.engine import vec_isa

    unpatched = vec_isa.probe_in_background.__wrapped__  # the probe, not its once-per-process cache
    started = []
    monkeypatch.setattr(vec_isa, "probe_in_background", lambda: started.append(1))
    folder = str(model_folder("text-classification"))
    eager = pipejit.pipeline("text-classification", model=folder, compile=False)
    eager.modules.runner("model")
    assert started == []
    compiled = pipejit.pipeline("text-classification", model=folder)
    compiled.modules.runner("model")  # built at the first forward, before its compile
    assert started == [1]
    with inductor_config.patch({"cpp.vec_isa_ok": True}):  # told the answer: no probe
        assert unpatched() == []
