"""image-feature-extraction at parity with transformers.pipeline."""

import pytest
import torch

from tests.parity import assert_same
from tests.vision_models import images, vision_pair

IMAGES = images(8, seed=2)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return vision_pair("image-feature-extraction", tmp_path_factory.mktemp("vit_features"))


def test_single_image(pair):
    ref, pj = pair
    assert_same(pj(IMAGES[0]), ref(IMAGES[0]))


@pytest.mark.parametrize("batch_size", [1, 3, None])
def test_mixed_sizes_in_batches(pair, batch_size):
    ref, pj = pair
    assert_same(pj(IMAGES, batch_size=batch_size), ref(IMAGES))


def test_pool(pair):
    ref, pj = pair
    assert_same(pj(IMAGES[:4], pool=True, batch_size=4), ref(IMAGES[:4], pool=True))
    assert_same(pj(IMAGES[0], pool=True), ref(IMAGES[0], pool=True))


@pytest.mark.parametrize("pool", [False, True])
def test_return_tensors(pair, pool):
    ref, pj = pair
    got = pj(IMAGES[:3], return_tensors=True, pool=pool, batch_size=2)
    assert all(isinstance(t, torch.Tensor) for t in got)
    assert_same(got, ref(IMAGES[:3], return_tensors=True, pool=pool))


def test_image_processor_kwargs(pair):
    ref, pj = pair
    kwargs = {"image_processor_kwargs": {"do_normalize": False}}
    assert_same(pj(IMAGES[:3], **kwargs), ref(IMAGES[:3], **kwargs))


def test_pool_without_a_pooler_is_a_clear_error(tmp_path):
    from transformers import ViTModel

    import pipejit

    _, with_pooler = vision_pair("image-feature-extraction", tmp_path / "pooled")
    model = ViTModel(with_pooler.model.config, add_pooling_layer=False).eval()
    pj = pipejit.pipeline(
        "image-feature-extraction",
        model=model,
        image_processor=with_pooler.task.image_processor,
        compile=False,
    )
    with pytest.raises(ValueError, match="pooled output"):
        pj(IMAGES[0], pool=True)
    assert len(pj(IMAGES[0])[0]) == 1 + (32 // 8) ** 2


def test_grayscale_rgba_and_bad_inputs(pair, tmp_path):
    ref, pj = pair
    inputs = [IMAGES[0].convert("L"), IMAGES[1].convert("RGBA"), IMAGES[2]]
    assert_same(pj(inputs, batch_size=3), ref(inputs))
    with pytest.raises(ValueError, match="input 1: .*neither an existing image file"):
        pj([IMAGES[0], str(tmp_path / "missing.jpg")])
    assert_same(pj(IMAGES[:2]), ref(IMAGES[:2]))
