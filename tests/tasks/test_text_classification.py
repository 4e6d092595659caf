"""text-classification at parity with transformers.pipeline."""

import pytest

import pipejit
from tests.models import sentences
from tests.parity import assert_same

TEXTS = sentences(24, seed=3)


@pytest.fixture(scope="module")
def pair(pipelines):
    return pipelines("text-classification")


def test_single_text_is_wrapped_in_a_list_like_transformers(pair):
    ref, pj = pair
    assert_same(pj(TEXTS[0]), ref(TEXTS[0]))


@pytest.mark.parametrize("batch_size", [1, 8, None])
def test_mixed_lengths_keep_input_order(pair, batch_size):
    ref, pj = pair
    assert_same(pj(TEXTS, batch_size=batch_size), ref(TEXTS))


@pytest.mark.parametrize("top_k", [None, 1, 2])
def test_top_k(pair, top_k):
    ref, pj = pair
    assert_same(pj(TEXTS[:5], top_k=top_k), ref(TEXTS[:5], top_k=top_k))
    assert_same(pj(TEXTS[0], top_k=top_k), ref(TEXTS[0], top_k=top_k))


@pytest.mark.parametrize("function", ["softmax", "sigmoid", "none", "SIGMOID"])
def test_function_to_apply(pair, function):
    ref, pj = pair
    got = pj(TEXTS[:4], function_to_apply=function, top_k=None)
    assert_same(got, ref(TEXTS[:4], function_to_apply=function, top_k=None))


@pytest.mark.parametrize("kind", ["text-classification-single", "text-classification-regression"])
def test_default_function_follows_problem_type_and_label_count(pipelines, kind):
    ref, pj = pipelines(kind, "text-classification")
    assert_same(pj(TEXTS[:4], top_k=None), ref(TEXTS[:4], top_k=None))


def test_text_pairs(pair):
    ref, pj = pair
    pairs = [{"text": a, "text_pair": b} for a, b in zip(TEXTS[:4], TEXTS[4:8])]
    assert_same(pj(pairs), ref(pairs))
    assert_same(pj(pairs[0]), ref(pairs[0]))


def test_truncation_of_an_over_long_text(pair):
    ref, pj = pair
    long_text = " ".join(TEXTS) * 3
    assert_same(pj(long_text, truncation=True), ref(long_text, truncation=True))


def test_top_k_given_at_construction(model_folder):
    import transformers

    folder = str(model_folder("text-classification"))
    ref = transformers.pipeline("text-classification", model=folder, top_k=2)
    pj = pipejit.pipeline("text-classification", model=folder, top_k=2, compile=False)
    assert_same(pj(TEXTS[0]), ref(TEXTS[0]))
    assert_same(pj(TEXTS[:3]), ref(TEXTS[:3]))


def test_model_object_and_tokenizer(pair):
    ref, _ = pair
    pj = pipejit.pipeline(
        "sentiment-analysis", model=ref.model, tokenizer=ref.tokenizer, compile=False
    )
    assert_same(pj(TEXTS[:3]), ref(TEXTS[:3]))


@pytest.mark.slow
def test_compiled_matches_and_compiles_once_per_bucket(pipelines, counting_backend):
    ref, pj = pipelines(
        "text-classification", compile=True, compile_backend=counting_backend, shapes="static"
    )
    assert_same(pj(TEXTS, batch_size=8), ref(TEXTS))
    assert_same(pj(TEXTS, batch_size=8), ref(TEXTS))
    stats = pj.stats()
    assert stats["compiled"]
    assert 0 < counting_backend.graphs <= len(stats["buckets"])
    assert stats["compiles"] == len(stats["buckets"])


@pytest.mark.slow
def test_dynamic_shapes_compile_one_graph_for_all_batches(pipelines, counting_backend):
    ref, pj = pipelines(
        "text-classification", compile=True, compile_backend=counting_backend, shapes="dynamic"
    )
    assert_same(pj(TEXTS, batch_size=8), ref(TEXTS))
    assert_same(pj(TEXTS[:1], batch_size=1), ref(TEXTS[:1]))
    assert len(pj.stats()["buckets"]) > 3
    assert counting_backend.graphs <= 2  # one for batches of several rows, one for single rows


@pytest.mark.slow
def test_inductor_compile_matches(pipelines):
    ref, pj = pipelines("text-classification", compile=True, length_buckets=(32, 64, 128))
    texts = sentences(6, seed=11, max_words=12)
    assert_same(pj(texts, batch_size=8), ref(texts))
    assert pj.stats()["compiles"] >= 1 and pj.stats()["compile_failed"] is None


@pytest.mark.parametrize("function", ["softmax", "sigmoid", "none"])
def test_triton_kernel_in_the_path(pipelines, function):
    """The fused softmax/top-k kernel, forced (on CPU through Triton's interpreter)."""
    ref, pj = pipelines("text-classification")
    pj.task.kernel_impl = "triton"
    for top_k in (None, 1):
        got = pj(TEXTS[:5], function_to_apply=function, top_k=top_k, batch_size=4)
        assert_same(got, ref(TEXTS[:5], function_to_apply=function, top_k=top_k))
