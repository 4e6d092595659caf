"""The machine ceiling over every GEMM backend, bf16 agreement, and ONNX Runtime's engine."""

from __future__ import annotations

import pytest
import torch
import transformers

import pipejit
from pipejit.bench import ceiling
from pipejit.bench.parity import bf16_agreement, outputs_match
from pipejit.engine.cpu_path import bf16_supported
from tests.models import sentences


def test_probe_names_backends_and_the_best():
    found = ceiling.probe(rounds=1, repeats=1, bf16=False)
    rates = found.gflops["float32"]
    assert {"torch matmul", "torch F.linear", "numpy"} <= set(rates)
    assert all(rate > 0 for rate in rates.values())
    backend, rate = found.best("float32")
    assert rate == max(rates.values()) and rates[backend] == rate
    summary = found.to_dict()
    assert summary["best_float32"] == {"backend": backend, "gflops": rate}
    assert "float32 ceiling" in ceiling.describe(found)
    with pytest.raises(ValueError, match="bfloat16"):
        found.best("bfloat16")


needs_bf16 = pytest.mark.skipif(
    not bf16_supported(), reason="bf16 GEMMs are probed on CPUs with bf16 instructions only"
)


@pytest.mark.parametrize(
    "backends", [ceiling.fp32_backends, pytest.param(ceiling.bf16_backends, marks=needs_bf16)]
)
def test_every_backend_runs_its_gemm(backends):
    calls = backends((8, 32, 64))
    assert calls
    for name, call in calls.items():
        assert call() is not None, name


@pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="torch built without MKL")
def test_mkl_prepacked_linear_computes_what_f_linear_does():
    backends = ceiling.fp32_backends((8, 32, 64))
    packed, plain = backends["MKL prepacked linear"](), backends["torch F.linear"]()
    torch.testing.assert_close(packed, plain, rtol=1e-5, atol=1e-5)


def test_probe_waits_out_spinning_threads_before_the_next_backend(monkeypatch):
    events = []
    backends = ceiling.fp32_backends()
    logged = {
        name: (lambda n=name, c=call: (events.append(n), c())) for name, call in backends.items()
    }
    monkeypatch.setattr(ceiling, "fp32_backends", lambda shape: logged)
    monkeypatch.setattr(ceiling.time, "sleep", lambda s: events.append(("pause", s)))
    ceiling.probe(rounds=2, repeats=1, bf16=False)
    pauses = [i for i, event in enumerate(events) if isinstance(event, tuple)]
    # one pause per round, each right after numpy's calls (its warmup and timed call)
    assert [events[i - 1] for i in pauses] == ["numpy", "numpy"]
    assert all(events[i] == ("pause", ceiling.SPINS_AFTER["numpy"]) for i in pauses)
    assert ceiling.SPINS_AFTER["numpy"] >= 0.15


def test_other_gemm_shapes_are_probed_and_reported_each_apart(tmp_path, capsys):
    import json

    assert ceiling.gemm_shape("48x384X1536") == (48, 384, 1536)
    for bad in ("48x384", "0x384x384", "ax384x384"):
        with pytest.raises(Exception, match="ROWSxINNERxOUTPUTS"):
            ceiling.gemm_shape(bad)
    assert ceiling.repeats_for(ceiling.GEMM_SHAPE) == 4
    assert ceiling.repeats_for((48, 384, 1536)) > 100  # a round of a small GEMM is not a few us
    args = ["--rounds", "1", "--shape", "8x32x64", "--shape", "4x16x16", "--out", str(tmp_path)]
    assert ceiling.main(args) == 0
    probes = json.loads((tmp_path / "ceiling.json").read_text())["probes"]
    assert [p["shape"] for p in probes] == [[8, 32, 64], [4, 16, 16]]
    assert all(p["best_float32"]["gflops"] > 0 for p in probes)
    table = (tmp_path / "ceiling.md").read_text()
    assert "## 8x32 by 32x64" in table and "## 4x16 by 16x16" in table
    with pytest.raises(SystemExit):
        ceiling.main(["--shape", "2x2"])
    assert "ROWSxINNERxOUTPUTS" in capsys.readouterr().err


def test_merge_keeps_each_backends_best_probe():
    a = ceiling.Ceiling({"float32": {"x": 10.0, "y": 30.0}}, ["avx2"])
    b = ceiling.Ceiling({"float32": {"x": 20.0, "y": 5.0}, "bfloat16": {"z": 90.0}}, ["avx2"])
    merged = ceiling.merge([a, b])
    assert merged.gflops == {"float32": {"x": 20.0, "y": 30.0}, "bfloat16": {"z": 90.0}}
    assert merged.best("float32") == ("y", 30.0) and merged.flags == ["avx2"]


def test_bf16_agreement_counts_labels_and_pooled_cosine():
    expected = [{"label": "A", "score": 0.51}, {"label": "B", "score": 0.9}]
    assert bf16_agreement(expected, expected)["ok"]
    flipped = [{"label": "B", "score": 0.50}, {"label": "B", "score": 0.9}]
    result = bf16_agreement(flipped, expected)
    assert result["labels_equal"] == 0.5 and not result["ok"]
    features = [[[[1.0, 0.0], [0.0, 1.0]]]]
    assert bf16_agreement([[[[1.0, 0.001], [0.0, 1.0]]]], features)["ok"]
    opposite = bf16_agreement([[[[-1.0, 0.0], [0.0, -1.0]]]], features)
    assert opposite["min_cosine"] < 0 and not opposite["ok"]


@pytest.mark.parametrize("task", ["text-classification", "feature-extraction"])
def test_onnxruntime_engine_matches_transformers(model_folder, tmp_path, task):
    pytest.importorskip("onnxruntime")
    from pipejit.bench.onnx_engine import OnnxRuntimeEngine

    reference = transformers.pipeline(task, model=str(model_folder(task)))
    engine = OnnxRuntimeEngine(reference, tmp_path)
    texts = sentences(9, seed=5)
    expected = reference(texts, batch_size=1, truncation=True)
    assert outputs_match(engine(texts, batch_size=1, truncation=True), expected)
    assert outputs_match(engine(texts, batch_size=4, truncation=True), expected)
    assert outputs_match(engine(texts[0], truncation=True), expected[0])
    with pytest.raises(ValueError, match="ONNX Runtime engine runs"):
        OnnxRuntimeEngine(
            transformers.pipeline("fill-mask", model=str(model_folder("fill-mask"))), tmp_path
        )


def test_onnxruntime_runs_its_fused_transformer_graph(model_folder, tmp_path):
    pytest.importorskip("onnxruntime")
    from pipejit.bench.onnx_engine import MODEL_FILE, OnnxRuntimeEngine, fused_operators

    reference = transformers.pipeline(
        "feature-extraction", model=str(model_folder("feature-extraction"))
    )
    layers = reference.model.config.num_hidden_layers
    attention = reference.model.config._attn_implementation
    OnnxRuntimeEngine(reference, tmp_path)
    fused = fused_operators(tmp_path / MODEL_FILE)
    assert fused["Attention"] == layers and fused["SkipLayerNormalization"] == 2 * layers
    # the reference pipeline's own model is left as it was
    assert reference.model.config._attn_implementation == attention != "eager"


def test_onnxruntime_engine_runs_the_batches_a_pipejit_cpu_pipeline_runs(model_folder, tmp_path):
    pytest.importorskip("onnxruntime")
    from pipejit.bench.onnx_engine import OnnxRuntimeEngine

    task = "feature-extraction"
    folder = str(model_folder(task))
    engine = OnnxRuntimeEngine(transformers.pipeline(task, model=folder), tmp_path)
    ours = pipejit.pipeline(task, model=folder, compile=False, cpu_path=False)
    texts = sentences(24, seed=11, max_words=40)
    run, shapes = engine.session.run, {"onnxruntime": [], "pipejit": []}

    def recorded(names, feed):
        shapes["onnxruntime"].append(tuple(feed["input_ids"].shape))
        return run(names, feed)

    engine.session.run = recorded
    ours.task.model.register_forward_pre_hook(
        lambda module, args, kwargs: shapes["pipejit"].append(tuple(kwargs["input_ids"].shape)),
        with_kwargs=True,
    )
    engine(texts, batch_size=8, truncation=True)
    ours(texts, batch_size=8, truncation=True)
    assert sorted(shapes["onnxruntime"]) == sorted(shapes["pipejit"])
    # cut by padding, not only by count: more batches than 24 texts in eights
    assert len(shapes["pipejit"]) > 3


def test_an_export_job_exports_in_a_child_process(model_folder, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from pipejit.bench import onnx_engine

    task = "text-classification"
    folder = str(model_folder(task))
    exported = onnx_engine.ExportJob(task, folder, tmp_path / "onnx").wait()
    # the engine loads the child's file: an export in this process would fail
    monkeypatch.setattr(onnx_engine, "export", lambda *args: pytest.fail("exported again"))
    reference = transformers.pipeline(task, model=folder)
    engine = onnx_engine.OnnxRuntimeEngine(reference, exported)
    texts = sentences(5, seed=2)
    expected = reference(texts, batch_size=1, truncation=True)
    assert outputs_match(engine(texts, batch_size=4, truncation=True), expected)
    with pytest.raises(RuntimeError, match="ONNX export failed"):
        onnx_engine.ExportJob(task, str(tmp_path / "no-model"), tmp_path / "x").wait()
