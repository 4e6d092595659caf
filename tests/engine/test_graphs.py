"""CUDA graphs per bucket: bucket choice, static buffers, padded rows, keys, fallbacks.

On a CPU the graph runner records with ``RecordingCapture``
(tests/engine/capture_standin.py), which traces the step and replays only its tensor
operations; everything but the CUDA recording is the engine's real code. The cuda-marked tests
capture real graphs.
"""

import warnings
from dataclasses import replace

import pytest
import torch
import transformers

import pipejit
from pipejit.contract import Params
from pipejit.engine.graphs import params_key
from pipejit.engine.shapes import ShapePolicy, capture_plan
from tests.engine.capture_standin import RecordingCapture, graphed, with_graphs
from tests.models import sentences
from tests.parity import assert_same

TEXTS = sentences(24, seed=5)


@pytest.fixture(scope="module")
def reference(model_folder):
    return transformers.pipeline(
        "text-classification", model=str(model_folder("text-classification"))
    )


def test_graph_batch_rounds_up_within_the_ladder():
    policy = ShapePolicy((8,), None, static=False, compiled=True, capture_sizes=(1, 2, 4, 8))
    assert policy.graph_batch(1) == 1
    assert policy.graph_batch(3) == 4
    assert policy.graph_batch(8) == 8
    assert policy.graph_batch(9) is None
    assert policy.graph_batch(3, sizes=(2, 8)) == 8


def test_capture_plan_is_largest_first_within_the_token_cap():
    plan = capture_plan([16, 32, 64], [1, 2, 4], max_tokens=128)
    assert plan == [(4, 32), (2, 64), (4, 16), (2, 32), (1, 64), (2, 16), (1, 32), (1, 16)]
    assert capture_plan([16], [8], max_tokens=64) == []


def test_params_key_tells_parameter_sets_apart():
    a = params_key(Params(postprocess={"top_k": 1, "function": "softmax"}))
    b = params_key(Params(postprocess={"function": "softmax", "top_k": 1}))
    c = params_key(Params(postprocess={"top_k": None, "function": "softmax"}))
    assert a == b and a != c
    assert params_key(Params(postprocess={"weights": torch.ones(2)})) is None
    assert params_key(Params(postprocess={"labels": ["x", "y"]})) is not None


def test_replay_matches_transformers_and_drops_padded_rows(reference):
    # one length bucket and one graph size: 5 texts run as a graph of 8 rows
    pj = graphed(reference, length_buckets=(128,), batch_sizes=(8,))
    texts = TEXTS[:5]
    assert_same(pj(texts), reference(texts))
    stats = pj.stats()
    assert stats["captures"] == 1 and stats["captured_buckets"] == [(8, 128)]
    assert stats["graph_hits"] == 1 and stats["graph_padded_rows"] == 3
    assert stats["buckets"] == [(8, 128)] and stats["batches"] == 1
    assert stats["padded_tokens"] == 8 * 128
    # the static buffers keep the first call's rows; the next call overwrites only its own
    other = TEXTS[5:8]
    assert_same(pj(other), reference(other))
    assert pj.stats()["captures"] == 1 and pj.stats()["graph_hits"] == 2


def test_warmup_captures_every_bucket_for_the_default_parameters(model_folder, reference):
    folder = str(model_folder("text-classification"))
    pj = pipejit.pipeline(
        "text-classification",
        model=folder,
        compile=False,
        length_buckets=(16, 32, 64, 128),
        top_k=None,
    )
    pj = with_graphs(pj, shapes=replace(pj.shapes, capture_sizes=(1, 2, 4, 8)))
    assert pj.warmup(batch_sizes=[1, 2, 4, 8])["captures"] == 16
    for size in (1, 3, 8):
        assert_same(pj(TEXTS[:size]), reference(TEXTS[:size], top_k=None))
    stats = pj.stats()
    assert stats["captures"] == 16 and stats["graph_fallbacks"] == 0
    assert stats["graph_hits"] == stats["batches"] >= 3
    # other parameters reduce differently: their graphs are new ones
    assert_same(pj(TEXTS[:3], top_k=1), reference(TEXTS[:3], top_k=1))
    assert pj.stats()["captures"] == 17


def test_captured_under_inference_mode_replays_outside_it(reference):
    pj = graphed(reference, length_buckets=(128,), batch_sizes=(4,))
    with torch.inference_mode():
        assert_same(pj(TEXTS[:3]), reference(TEXTS[:3]))
    assert_same(pj(TEXTS[3:7]), reference(TEXTS[3:7]))
    assert pj.stats()["captures"] == 1 and pj.stats()["graph_hits"] == 2


def test_lazy_capture_once_per_bucket_then_hits(reference):
    capture = RecordingCapture()
    pj = graphed(reference, capture, batch_sizes=(1, 2, 4, 8))
    expected = reference(TEXTS)
    assert_same(pj(TEXTS, batch_size=8), expected)
    first = pj.stats()
    buckets = first["captured_buckets"]
    assert first["captures"] == len(capture.recorded) == len(set(buckets)) == len(buckets) > 1
    assert first["graph_fallbacks"] == 0 and first["graph_hits"] == first["batches"]
    assert_same(pj(TEXTS, batch_size=8), expected)
    second = pj.stats()
    assert second["captures"] == first["captures"]
    assert second["graph_hits"] == 2 * first["graph_hits"]


def test_graphs_are_keyed_by_the_reduce_parameters(reference):
    pj = graphed(reference, length_buckets=(128,), batch_sizes=(4,))
    texts = TEXTS[:4]
    assert_same(pj(texts), reference(texts))
    assert_same(pj(texts, top_k=None), reference(texts, top_k=None))
    assert_same(
        pj(texts, top_k=2, function_to_apply="sigmoid"),
        reference(texts, top_k=2, function_to_apply="sigmoid"),
    )
    assert pj.stats()["captures"] == 3
    assert_same(pj(texts, top_k=None), reference(texts, top_k=None))
    assert pj.stats()["captures"] == 3


def test_past_the_largest_graph_bucket_runs_without_a_graph(reference):
    pj = graphed(reference, length_buckets=(128,), batch_sizes=(1, 2))
    assert_same(pj(TEXTS[:4], batch_size=4), reference(TEXTS[:4]))
    stats = pj.stats()
    assert stats["captures"] == 0 and stats["graph_hits"] == 0
    assert stats["graph_fallbacks"] == 1 and stats["buckets"] == [(4, 128)]


def test_token_cap_keeps_big_buckets_ungraphed(reference):
    pj = graphed(reference, length_buckets=(64, 128), batch_sizes=(1, 2, 4), max_tokens=128)
    assert_same(pj(TEXTS[:4], batch_size=4), reference(TEXTS[:4]))
    assert all(rows * length <= 128 for rows, length in pj.stats()["captured_buckets"])


def test_warmup_policy_pads_up_to_the_nearest_captured_bucket(reference):
    pj = graphed(reference, length_buckets=(128,), batch_sizes=(1, 2, 4, 8), policy="warmup")
    assert_same(pj(TEXTS[:3]), reference(TEXTS[:3]))
    assert pj.stats()["captures"] == 0 and pj.stats()["graph_fallbacks"] == 1
    pj.warmup(lengths=[128], batch_sizes=[8])
    assert_same(pj(TEXTS[3:6]), reference(TEXTS[3:6]))
    stats = pj.stats()
    assert stats["captured_buckets"] == [(8, 128)]
    assert stats["graph_hits"] == 1 and stats["graph_padded_rows"] == 5


def test_capture_failure_turns_graphs_off_with_one_warning(reference):
    capture = RecordingCapture(
        fail=lambda shape: RuntimeError("operation not permitted when capturing")
    )
    pj = graphed(reference, capture, batch_sizes=(1, 2, 4, 8))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert_same(pj(TEXTS, batch_size=8), reference(TEXTS))
    assert len([w for w in caught if "CUDA graphs turned off" in str(w.message)]) == 1
    stats = pj.stats()
    assert not stats["cuda_graphs"] and "not permitted" in stats["graphs_disabled"]
    assert stats["captures"] == 0 and stats["graph_fallbacks"] == stats["batches"]


def test_non_row_outputs_turn_graphs_off(reference):
    pj = graphed(reference, length_buckets=(128,), batch_sizes=(2,))
    reduce = pj.task.reduce
    # a per-label total: its first axis is the 3 labels, not the 2 rows
    pj.task.reduce = lambda outputs, inputs, params: {
        **reduce(outputs, inputs, params),
        "total": outputs.logits.sum(0),
    }
    with pytest.warns(RuntimeWarning, match=r"\['total'\] are not per-row"):
        got = pj(TEXTS[:2])
    assert_same(got, reference(TEXTS[:2]))
    assert pj.stats()["graphs_disabled"] and pj.stats()["graph_fallbacks"] == 1


def test_out_of_memory_while_capturing_splits_the_batch(reference):
    too_big = lambda shape: torch.OutOfMemoryError("CUDA out of memory") if shape[0] > 2 else None  # noqa: E731
    pj = graphed(
        reference, RecordingCapture(fail=too_big), length_buckets=(128,), batch_sizes=(1, 2, 4, 8)
    )
    assert_same(pj(TEXTS[:8], batch_size=8), reference(TEXTS[:8]))
    stats = pj.stats()
    assert stats["oom_splits"] == 2 and stats["oom_token_limit"] == 2 * 128
    assert stats["captured_buckets"] == [(2, 128)] and stats["graph_hits"] == 4


def test_cuda_graphs_option_is_checked(model_folder):
    folder = str(model_folder("text-classification"))
    with pytest.raises(ValueError, match="cuda_graphs=True needs a CUDA device"):
        pipejit.pipeline("text-classification", model=folder, cuda_graphs=True)
    with pytest.raises(ValueError, match="cuda_graphs must be one of"):
        pipejit.pipeline("text-classification", model=folder, cuda_graphs="always")
    pj = pipejit.pipeline("text-classification", model=folder, compile=False)
    assert pj.graphs is None and not pj.stats()["cuda_graphs"]
    with pytest.raises(ValueError, match="graph_capture must be one of"):
        pipejit.pipeline("text-classification", model=folder, graph_capture="eager")
    with pytest.raises(ValueError, match="graph_batch_sizes must be a sequence of positive"):
        pipejit.pipeline("text-classification", model=folder, graph_batch_sizes=(0, 4))


# ---- on a GPU: real captures ------------------------------------------------------------

CUDA_DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def cuda_pair(model_folder, dtype=torch.float32, **options):
    folder = str(model_folder("text-classification"))
    ref = transformers.pipeline("text-classification", model=folder, device="cuda", dtype=dtype)
    options.setdefault("cuda_graphs", True)
    pj = pipejit.pipeline(
        "text-classification", model=folder, device="cuda", dtype=dtype, **options
    )
    return ref, pj


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", CUDA_DTYPES, ids=str)
def test_cuda_replay_equals_transformers_at_every_bucket(model_folder, dtype):
    # warmup captures for the pipeline's defaults: top_k=None is made one
    ref, pj = cuda_pair(model_folder, dtype, length_buckets=(16, 32, 64, 128), top_k=None)
    stats = pj.warmup(batch_sizes=[1, 2, 4, 8])
    assert stats["captures"] == 16 and stats["compile_failed"] is None
    for size in (1, 2, 3, 4, 5, 8):
        texts = TEXTS[:size]
        assert_same(pj(texts), ref(texts, top_k=None), dtype=dtype)
    stats = pj.stats()
    assert stats["graph_hits"] > 0 and stats["graph_fallbacks"] == 0 and stats["captures"] == 16


@pytest.mark.cuda
def test_cuda_graphs_match_the_ungraphed_pipeline(model_folder):
    _, pj = cuda_pair(model_folder, length_buckets=(32, 64, 128))
    _, plain = cuda_pair(model_folder, length_buckets=(32, 64, 128), cuda_graphs=False)
    got, expected = pj(TEXTS, top_k=None), plain(TEXTS, top_k=None)
    assert pj.stats()["graph_hits"] > 0 and plain.stats()["graph_hits"] == 0
    assert_same(got, expected)


@pytest.mark.cuda
def test_cuda_graphs_share_one_pool_largest_first(model_folder):
    _, pj = cuda_pair(model_folder, length_buckets=(32, 64, 128), graph_capture="warmup")
    pj(TEXTS[:2])  # compile outside the measured captures
    torch.cuda.synchronize()
    before = torch.cuda.memory_reserved()
    pj.warmup(lengths=[128], batch_sizes=[64])
    largest = torch.cuda.memory_reserved() - before
    pj.warmup(lengths=[64, 128], batch_sizes=[16, 32, 48])
    grown = torch.cuda.memory_reserved() - before - largest
    assert pj.stats()["captures"] == 7
    # six graphs of a quarter to three quarters of the largest one's size reuse its
    # pool's blocks: only their small static outputs are new. Private pools would
    # hold about one and a half times the largest capture's memory more.
    assert grown < largest / 2, f"largest capture {largest} bytes, the six after it {grown}"


@pytest.mark.cuda
def test_cuda_fallback_past_the_largest_graph_bucket(model_folder):
    ref, pj = cuda_pair(model_folder, length_buckets=(128,), graph_batch_sizes=(1, 2))
    assert_same(pj(TEXTS[:8], batch_size=8), ref(TEXTS[:8]))
    stats = pj.stats()
    assert stats["graph_fallbacks"] >= 1 and all(b <= 2 for b, _ in stats["captured_buckets"])


@pytest.mark.cuda
def test_cuda_eager_capture_without_compile(model_folder):
    ref, pj = cuda_pair(model_folder, compile=False, length_buckets=(64, 128))
    assert_same(pj(TEXTS, batch_size=4), ref(TEXTS))
    assert pj.stats()["graph_hits"] > 0 and pj.stats()["graphs_disabled"] is None


@pytest.mark.cuda
def test_cuda_auto_turns_graphs_on_with_compile(model_folder):
    folder = str(model_folder("text-classification"))
    assert pipejit.pipeline("text-classification", model=folder, device="cuda").graphs is not None
    off = pipejit.pipeline("text-classification", model=folder, device="cuda", compile=False)
    assert off.graphs is None


TASK_CALLS = {
    "text-classification": {"top_k": None},
    "token-classification": {},
    "feature-extraction": {},
    "zero-shot-classification": {"candidate_labels": ["sports", "politics", "food"]},
}


@pytest.mark.cuda
@pytest.mark.parametrize("kind", sorted(TASK_CALLS))
def test_cuda_graphs_for_every_task(model_folder, kind):
    folder = str(model_folder(kind))
    kwargs = TASK_CALLS[kind]
    texts = TEXTS[:6]
    ref = transformers.pipeline(kind, model=folder, device="cuda")
    pj = pipejit.pipeline(kind, model=folder, device="cuda", cuda_graphs=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = pj(texts, batch_size=4, **kwargs)
    assert_same(got, ref(texts, **kwargs))
    assert pj.stats()["graph_hits"] > 0
    assert not [w for w in caught if "CUDA graphs turned off" in str(w.message)]


@pytest.mark.cuda
def test_cuda_graphs_refused_for_fill_mask(model_folder):
    """Its reduce sizes the result by the batch's mask count, read on the host."""
    folder = str(model_folder("fill-mask"))
    with pytest.raises(ValueError, match="CUDA graph cannot hold"):
        pipejit.pipeline("fill-mask", model=folder, device="cuda", cuda_graphs=True)
    assert pipejit.pipeline("fill-mask", model=folder, device="cuda").graphs is None


@pytest.mark.cuda
def test_cuda_out_of_memory_backs_off_and_loses_nothing(model_folder):
    # eager attention materialises the scores: 256 x 4 heads x 128 x 128 floats is 64 MiB
    ref, pj = cuda_pair(
        model_folder,
        compile=False,
        cuda_graphs=False,
        length_buckets=(128,),
        model_kwargs={"attn_implementation": "eager"},
    )
    texts = [f"{t} {' '.join(TEXTS[:5])}" for t in (TEXTS * 11)[:256]]
    expected = ref(texts, truncation=True)
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction((torch.cuda.memory_reserved() + 48 * 2**20) / total)
    try:
        got = pj(texts, batch_size=256, truncation=True)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert_same(got, expected)
    stats = pj.stats()
    assert stats["oom_splits"] >= 1 and stats["oom_token_limit"] < 256 * 128
