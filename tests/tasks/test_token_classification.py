"""token-classification at parity with transformers.pipeline."""

import pytest

from tests.models import sentences
from tests.parity import assert_same

TEXTS = sentences(16, seed=5)
STRATEGIES = ["none", "simple", "first", "average", "max"]


@pytest.fixture(scope="module")
def pair(pipelines):
    return pipelines("token-classification")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_aggregation_strategies(pair, strategy):
    ref, pj = pair
    assert_same(
        pj(TEXTS, aggregation_strategy=strategy, batch_size=4),
        ref(TEXTS, aggregation_strategy=strategy),
    )
    assert_same(
        pj(TEXTS[0], aggregation_strategy=strategy), ref(TEXTS[0], aggregation_strategy=strategy)
    )


@pytest.mark.parametrize("batch_size", [1, 8, None])
def test_ignore_labels_and_batch_sizes(pair, batch_size):
    ref, pj = pair
    got = pj(TEXTS, ignore_labels=[], batch_size=batch_size)
    assert_same(got, ref(TEXTS, ignore_labels=[]))
    assert any(e["entity"] == "O" for entities in got for e in entities)


def test_stride_over_long_text_merges_chunks(pair):
    ref, pj = pair
    long_text = " ".join(TEXTS * 2)
    got = pj(long_text, aggregation_strategy="simple", stride=16)
    assert_same(got, ref(long_text, aggregation_strategy="simple", stride=16))
    assert max(e["end"] for e in got) > len(long_text) // 2


def test_stride_needs_aggregation(pair):
    _, pj = pair
    with pytest.raises(ValueError, match="stride"):
        pj(TEXTS[0], aggregation_strategy="none", stride=16)


def test_pre_split_words(pair):
    ref, pj = pair
    words = TEXTS[1].split()
    assert_same(pj(words, is_split_into_words=True), ref(words, is_split_into_words=True))


def test_unknown_strategy_is_named(pair):
    _, pj = pair
    with pytest.raises(ValueError, match="aggregation_strategy"):
        pj(TEXTS[0], aggregation_strategy="longest")


@pytest.mark.slow
def test_compiled_matches(pipelines):
    ref, pj = pipelines("token-classification", "ner", compile=True, length_buckets=(64, 128))
    texts = sentences(5, seed=12, max_words=10)
    assert_same(
        pj(texts, batch_size=8, aggregation_strategy="simple"),
        ref(texts, aggregation_strategy="simple"),
    )
    assert pj.stats()["compiles"] >= 1


@pytest.mark.parametrize("strategy", ["none", "average"])
def test_triton_kernel_in_the_path(pipelines, strategy):
    """The fused per-token softmax kernel, forced (on CPU through Triton's interpreter)."""
    ref, pj = pipelines("token-classification")
    pj.task.kernel_impl = "triton"
    got = pj(TEXTS[:6], aggregation_strategy=strategy, ignore_labels=[], batch_size=4)
    assert_same(got, ref(TEXTS[:6], aggregation_strategy=strategy, ignore_labels=[]))
