"""depth-estimation at parity with transformers.pipeline: the depth tensor and the depth image."""

import pytest
import torch

from tests.parity import assert_same
from tests.vision_models import assert_same_images, images, vision_pair

IMAGES = images(8, seed=4)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return vision_pair("depth-estimation", tmp_path_factory.mktemp("glpn"))


def assert_same_depth(actual, expected):
    assert list(actual) == list(expected) == ["predicted_depth", "depth"]
    assert_same(actual["predicted_depth"], expected["predicted_depth"])
    assert actual["predicted_depth"].dtype == expected["predicted_depth"].dtype
    assert_same_images(actual["depth"], expected["depth"])


def test_single_image(pair):
    ref, pj = pair
    assert_same_depth(pj(IMAGES[0]), ref(IMAGES[0]))


@pytest.mark.parametrize("batch_size", [1, 4, None])
def test_mixed_sizes_give_several_groups(pair, batch_size):
    ref, pj = pair
    before = pj.stats()["batches"]
    got, expected = pj(IMAGES, batch_size=batch_size), ref(IMAGES)
    assert len(got) == len(expected)
    for a, e in zip(got, expected):
        assert_same_depth(a, e)
    shapes = {
        tuple(t.shape) for t in (pj.task.image_processor(i)["pixel_values"][0] for i in IMAGES)
    }
    assert len(shapes) > 1  # the processor keeps sizes, so batches are grouped by shape
    assert pj.stats()["batches"] - before >= len(shapes)


def test_depth_is_at_the_image_size(pair):
    _, pj = pair
    out = pj(IMAGES[1])
    assert out["depth"].size == IMAGES[1].size
    assert out["predicted_depth"].shape == torch.Size(IMAGES[1].size[::-1])


def test_grayscale_rgba_and_bad_inputs(pair, tmp_path):
    ref, pj = pair
    inputs = [IMAGES[0].convert("L"), IMAGES[1].convert("RGBA")]
    for a, e in zip(pj(inputs, batch_size=2), ref(inputs)):
        assert_same_depth(a, e)
    corrupt = tmp_path / "bad.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(ValueError, match="input 0: .*not an image"):
        pj([str(corrupt), IMAGES[0]])
    with pytest.raises(TypeError, match="unexpected parameter"):
        pj(IMAGES[0], threshold=0.1)
    assert_same_depth(pj(IMAGES[2]), ref(IMAGES[2]))
