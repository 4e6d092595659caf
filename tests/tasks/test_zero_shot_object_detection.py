"""zero-shot-object-detection (OWL-ViT, OWLv2) at parity with transformers.pipeline."""

import pytest

from tests.parity import assert_same
from tests.vision_zero_shot_models import images, pipeline_pair

TASK = "zero-shot-object-detection"
LABELS = ["a cat", "the dog", "photo"]
IMAGES = images(5, seed=5, modes=("RGB", "L", "RGBA"))


@pytest.fixture(scope="module", params=["owlvit", "owlv2"])
def pair(request, tmp_path_factory):
    return pipeline_pair(request.param, TASK, tmp_path_factory.mktemp(request.param))


@pytest.mark.parametrize("batch_size", [1, 4, None])
def test_images_with_shared_labels(pair, batch_size):
    ref, pj = pair
    got = pj(IMAGES, candidate_labels=LABELS, batch_size=batch_size)
    assert_same(got, ref(IMAGES, candidate_labels=LABELS))


def test_per_image_labels_dicts_and_label_strings(pair):
    ref, pj = pair
    per_image = [LABELS, ["car"], ["a cat", "tree", "sky", "the dog"]]
    assert_same(pj(IMAGES[:3], candidate_labels=per_image), ref(IMAGES[:3], per_image))
    dicts = [{"image": im, "candidate_labels": "cat,dog"} for im in IMAGES[3:]]
    assert_same(pj(dicts, batch_size=2), ref(dicts))
    assert_same(pj(IMAGES[0], "a cat, dog"), ref(IMAGES[0], "a cat, dog"))
    assert_same(pj(IMAGES[1], text_queries=["x"]), ref(IMAGES[1], text_queries=["x"]))


@pytest.mark.parametrize(
    "kwargs", [{"threshold": 0.95}, {"top_k": 3}, {"threshold": 0.5, "top_k": 2}]
)
def test_threshold_and_top_k(pair, kwargs):
    ref, pj = pair
    got = pj(IMAGES[:3], candidate_labels=LABELS, **kwargs)
    assert_same(got, ref(IMAGES[:3], candidate_labels=LABELS, **kwargs))
    assert all(len(found) == kwargs.get("top_k", len(found)) for found in got)


def test_text_tower_runs_once_per_label_set(pair, monkeypatch):
    _, pj = pair
    base = pj.task._base
    calls = []
    original = base.get_text_features
    monkeypatch.setattr(base, "get_text_features", lambda **kw: calls.append(1) or original(**kw))
    labels = ["only", "here"]
    pj(IMAGES, candidate_labels=labels, batch_size=2)
    pj(IMAGES[0], candidate_labels=labels)
    assert len(calls) == len(labels)


def test_bad_inputs(pair, tmp_path):
    ref, pj = pair
    with pytest.raises(ValueError, match="at least one candidate label"):
        pj(IMAGES[0], candidate_labels=[])
    with pytest.raises(ValueError, match="needs candidate_labels"):
        pj(IMAGES[0])
    with pytest.raises(ValueError, match="2 images but 3 candidate label lists"):
        pj(IMAGES[:2], candidate_labels=[["a"], ["b"], ["c"]])
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match="input 1: .*not an image"):
        pj([IMAGES[0], str(corrupt)], candidate_labels=LABELS)
    with pytest.raises(ValueError, match="neither an existing image file"):
        pj(str(tmp_path / "missing.png"), candidate_labels=LABELS)
    assert_same(pj(IMAGES[:2], candidate_labels=LABELS), ref(IMAGES[:2], candidate_labels=LABELS))


@pytest.mark.slow
def test_compiled_matches(tmp_path_factory):
    ref, pj = pipeline_pair("owlvit", TASK, tmp_path_factory.mktemp("owlvit_c"), compile=True)
    assert_same(pj(IMAGES, candidate_labels=LABELS, batch_size=4), ref(IMAGES, LABELS))
    assert pj.modules.runner("model").compiled and pj.modules.runner("model").stats.compile_seconds
