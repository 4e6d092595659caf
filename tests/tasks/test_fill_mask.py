"""fill-mask at parity with transformers.pipeline."""

import pytest

from pipejit.tasks import fill_mask
from tests.models import sentences
from tests.parity import assert_same


def _masked(texts):
    out = []
    for i, text in enumerate(texts):
        words = text.split()
        words[i % len(words)] = "[MASK]"
        out.append(" ".join(words))
    return out


TEXTS = _masked(sentences(12, seed=7, min_words=3))


@pytest.fixture(scope="module")
def pair(pipelines):
    return pipelines("fill-mask")


@pytest.mark.parametrize("batch_size", [1, 4, None])
def test_mixed_lengths(pair, batch_size):
    ref, pj = pair
    assert_same(pj(TEXTS, batch_size=batch_size), ref(TEXTS))


@pytest.mark.parametrize("top_k", [1, 3, 10])
def test_top_k(pair, top_k):
    ref, pj = pair
    assert_same(pj(TEXTS[:4], top_k=top_k), ref(TEXTS[:4], top_k=top_k))


def test_several_masks_in_one_input(pair):
    ref, pj = pair
    texts = ["the [MASK] was [MASK] good .", "[MASK] [MASK] [MASK] paris", TEXTS[0]]
    assert_same(pj(texts, top_k=2), ref(texts, top_k=2))
    assert_same(pj(texts[0]), ref(texts[0]))


def test_targets(pair):
    ref, pj = pair
    for targets in (["good", "bad", "movie"], "paris", ["good", "zyx"]):
        assert_same(pj(TEXTS[:3], targets=targets), ref(TEXTS[:3], targets=targets))
    assert_same(
        pj(TEXTS[0], targets=["good", "bad"], top_k=5),
        ref(TEXTS[0], targets=["good", "bad"], top_k=5),
    )


def test_list_of_one_is_unwrapped_like_transformers(pair):
    ref, pj = pair
    assert_same(pj(TEXTS[:1]), ref(TEXTS[:1]))


def test_no_mask_token_is_a_clear_error(pair):
    _, pj = pair
    with pytest.raises(ValueError, match=r"input 1: No mask_token \(\[MASK\]\)"):
        pj([TEXTS[0], "there is no mask here"])


@pytest.mark.slow
def test_compiled_matches(pipelines):
    ref, pj = pipelines("fill-mask", compile=True, length_buckets=(32, 128))
    assert_same(pj(TEXTS[:6], batch_size=8), ref(TEXTS[:6]))
    assert pj.stats()["compiles"] >= 1


def test_head_runs_on_mask_rows_only(pair):
    ref, pj = pair
    assert pj.task.head_split is not None
    seen = []
    hook = pj.model.cls.register_forward_hook(lambda m, args, out: seen.append(args[0].shape))
    try:
        texts = ["the [MASK] was [MASK] good .", TEXTS[1], TEXTS[2]]
        assert_same(pj(texts, batch_size=3), ref(texts))
    finally:
        hook.remove()
    # the head saw 2-D [mask rows, hidden] batches holding the 4 masks, not batch x length rows
    assert all(len(shape) == 2 for shape in seen) and sum(shape[0] for shape in seen) == 4


def test_full_forward_when_the_head_cannot_be_split(pipelines, monkeypatch):
    monkeypatch.setattr(fill_mask, "lm_head_split", lambda model: None)
    ref, pj = pipelines("fill-mask")
    assert pj.task.head_split is None and pj.modules.runner("model").model is pj.model
    assert_same(pj(TEXTS[:5], batch_size=4), ref(TEXTS[:5]))
    assert_same(pj(TEXTS[:3], targets=["good", "bad"]), ref(TEXTS[:3], targets=["good", "bad"]))


def test_triton_kernel_in_the_path(pipelines):
    """The fused softmax/top-k kernel, forced (on CPU through Triton's interpreter)."""
    ref, pj = pipelines("fill-mask")
    pj.task.kernel_impl = "triton"
    texts = ["the [MASK] was [MASK] good .", *TEXTS[:3]]
    assert_same(pj(texts, batch_size=4, top_k=3), ref(texts, top_k=3))
    targets = ["good", "bad", "movie"]
    assert_same(pj(TEXTS[:3], targets=targets), ref(TEXTS[:3], targets=targets))
