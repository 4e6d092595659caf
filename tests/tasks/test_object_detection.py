"""object-detection at parity with transformers.pipeline on a tiny DETR."""

import pytest

from tests.parity import assert_same
from tests.vision_models import images, vision_pair

IMAGES = images(10, seed=5)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return vision_pair("object-detection", tmp_path_factory.mktemp("detr"))


def test_single_image(pair):
    ref, pj = pair
    assert_same(pj(IMAGES[0]), ref(IMAGES[0]))


@pytest.mark.parametrize("batch_size", [1, 4, None])
def test_mixed_aspect_ratios_in_shape_groups(pair, batch_size):
    ref, pj = pair
    got = pj(IMAGES, batch_size=batch_size, threshold=0.0)
    assert_same(got, ref(IMAGES, threshold=0.0))
    assert all(len(boxes) > 0 for boxes in got)


@pytest.mark.parametrize("threshold", [0.0, 0.5, 0.9, 1.0])
def test_threshold(pair, threshold):
    ref, pj = pair
    got = pj(IMAGES[:4], threshold=threshold, batch_size=4)
    assert_same(got, ref(IMAGES[:4], threshold=threshold))
    assert_same(pj(IMAGES[0], threshold=threshold), ref(IMAGES[0], threshold=threshold))


def test_threshold_at_construction(pair):
    import pipejit

    ref, _ = pair
    pj = pipejit.pipeline(
        "object-detection", model=ref.model.name_or_path, threshold=0.0, compile=False
    )
    assert_same(pj(IMAGES[:3]), ref(IMAGES[:3], threshold=0.0))


def test_grayscale_rgba_and_bad_inputs(pair, tmp_path):
    ref, pj = pair
    inputs = [IMAGES[0].convert("L"), IMAGES[1].convert("RGBA"), IMAGES[2]]
    assert_same(pj(inputs, threshold=0.0), ref(inputs, threshold=0.0))
    with pytest.raises(ValueError, match="input 2: .*neither an existing image file"):
        pj([IMAGES[0], IMAGES[1], str(tmp_path / "gone.png")])
    with pytest.raises(TypeError, match="unexpected parameter"):
        pj(IMAGES[0], top_k=3)
    assert_same(pj(IMAGES[:2], threshold=0.0), ref(IMAGES[:2], threshold=0.0))
