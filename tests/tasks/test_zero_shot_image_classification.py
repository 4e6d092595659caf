"""zero-shot-image-classification (CLIP) at parity with transformers.pipeline."""

import pytest

from tests.parity import assert_same
from tests.vision_zero_shot_models import images, pipeline_pair

TASK = "zero-shot-image-classification"
LABELS = ["a cat", "the dog", "a photo of a car", "mountains"]
IMAGES = images(6, seed=3, modes=("RGB", "L", "RGBA"))


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return pipeline_pair("clip", TASK, tmp_path_factory.mktemp("clip"))


@pytest.mark.parametrize("batch_size", [1, 4, None])
def test_mixed_sizes_and_modes(pair, batch_size):
    ref, pj = pair
    got = pj(IMAGES, candidate_labels=LABELS, batch_size=batch_size)
    assert_same(got, ref(IMAGES, candidate_labels=LABELS))


def test_single_image_positional_labels_and_path(pair, tmp_path):
    ref, pj = pair
    path = tmp_path / "one.png"
    IMAGES[0].save(path)
    assert_same(pj(str(path), LABELS[:2]), ref(str(path), LABELS[:2]))
    assert_same(pj(IMAGES[1], candidate_labels=LABELS), ref(IMAGES[1], LABELS))


def test_hypothesis_template_and_one_label(pair):
    ref, pj = pair
    kwargs = {"candidate_labels": LABELS, "hypothesis_template": "a picture: {}"}
    assert_same(pj(IMAGES[:3], **kwargs), ref(IMAGES[:3], **kwargs))
    assert_same(pj(IMAGES[0], candidate_labels=["x"]), ref(IMAGES[0], candidate_labels=["x"]))


def test_text_tower_runs_once_per_label_set(pair, monkeypatch):
    _, pj = pair
    calls = []
    original = pj.model.get_text_features
    monkeypatch.setattr(
        pj.model, "get_text_features", lambda **kw: calls.append(1) or original(**kw)
    )
    labels = ["only", "for", "this", "test"]
    pj(IMAGES, candidate_labels=labels, batch_size=2)
    pj(IMAGES[0], candidate_labels=labels)
    assert len(calls) == 1
    pj(IMAGES[0], candidate_labels=labels, hypothesis_template="{}")
    assert len(calls) == 2


def test_bad_inputs(pair, tmp_path):
    _, pj = pair
    with pytest.raises(ValueError, match="at least one candidate label"):
        pj(IMAGES[0], candidate_labels=[])
    with pytest.raises(ValueError, match="needs candidate_labels"):
        pj(IMAGES[0])
    with pytest.raises(TypeError, match="list of strings"):
        pj(IMAGES[0], candidate_labels="cat, dog")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match="input 1: .*not an image"):
        pj([IMAGES[0], str(corrupt)], candidate_labels=LABELS)
    with pytest.raises(ValueError, match="input 0: .*neither an existing image file"):
        pj([str(tmp_path / "missing.png")], candidate_labels=LABELS)
    # a failed call leaves the pipeline as it was
    ref, _ = pair
    assert_same(pj(IMAGES[:2], candidate_labels=LABELS), ref(IMAGES[:2], candidate_labels=LABELS))


@pytest.mark.slow
def test_compiled_matches(tmp_path_factory):
    ref, pj = pipeline_pair("clip", TASK, tmp_path_factory.mktemp("clip_c"), compile=True)
    assert_same(pj(IMAGES, candidate_labels=LABELS, batch_size=4), ref(IMAGES, LABELS))
    assert pj.modules.runner("model").compiled and pj.modules.runner("model").stats.compile_seconds
