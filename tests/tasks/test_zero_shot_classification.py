"""zero-shot-classification at parity with transformers.pipeline."""

import pytest

from tests.models import sentences
from tests.parity import assert_same

TEXTS = sentences(8, seed=13)
LABELS = ["sports", "politics", "food", "travel"]


@pytest.fixture(scope="module")
def pair(pipelines):
    return pipelines("zero-shot-classification")


@pytest.mark.parametrize("batch_size", [1, 8, None])
def test_mixed_lengths(pair, batch_size):
    ref, pj = pair
    got = pj(TEXTS, candidate_labels=LABELS, batch_size=batch_size)
    assert_same(got, ref(TEXTS, candidate_labels=LABELS))


def test_labels_as_comma_string_and_positional(pair):
    ref, pj = pair
    assert_same(pj(TEXTS[0], "sports, food ,politics"), ref(TEXTS[0], "sports, food ,politics"))


@pytest.mark.parametrize("multi_label", [True, False])
def test_multi_label_and_template(pair, multi_label):
    ref, pj = pair
    kwargs = {
        "candidate_labels": LABELS,
        "multi_label": multi_label,
        "hypothesis_template": "This text is about {}.",
    }
    assert_same(pj(TEXTS[:3], **kwargs), ref(TEXTS[:3], **kwargs))


def test_one_label_scores_entailment_against_contradiction(pair):
    ref, pj = pair
    assert_same(
        pj(TEXTS[:2], candidate_labels=["sports"]), ref(TEXTS[:2], candidate_labels=["sports"])
    )


def test_template_without_placeholder(pair):
    _, pj = pair
    with pytest.raises(ValueError, match="hypothesis_template"):
        pj(TEXTS[0], candidate_labels=LABELS, hypothesis_template="no placeholder")


def test_missing_labels(pair):
    _, pj = pair
    with pytest.raises(ValueError, match="candidate_labels"):
        pj(TEXTS[0])
    with pytest.raises(ValueError, match="at least one candidate label"):
        pj(TEXTS[0], candidate_labels=[])


@pytest.mark.slow
def test_compiled_matches(pipelines):
    ref, pj = pipelines("zero-shot-classification", compile=True, length_buckets=(64, 128))
    texts = sentences(3, seed=14, max_words=10)
    assert_same(
        pj(texts, candidate_labels=LABELS, batch_size=8), ref(texts, candidate_labels=LABELS)
    )
    assert pj.stats()["compiles"] >= 1


@pytest.mark.parametrize("multi_label", [True, False])
def test_triton_kernel_in_the_path(pipelines, multi_label):
    """The fused entailment kernel, forced (on CPU through Triton's interpreter)."""
    ref, pj = pipelines("zero-shot-classification")
    pj.task.kernel_impl = "triton"
    kwargs = {"candidate_labels": LABELS, "multi_label": multi_label}
    assert_same(pj(TEXTS[:4], batch_size=3, **kwargs), ref(TEXTS[:4], **kwargs))
    assert_same(pj(TEXTS[0], candidate_labels=["food"]), ref(TEXTS[0], candidate_labels=["food"]))
