"""image-classification at parity with transformers.pipeline."""

import numpy as np
import pytest
from PIL import Image

from tests.parity import assert_same
from tests.vision_models import images, vision_pair

IMAGES = images(12, seed=1)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return vision_pair("image-classification", tmp_path_factory.mktemp("vit_cls"))


def test_single_image(pair):
    ref, pj = pair
    assert_same(pj(IMAGES[0]), ref(IMAGES[0]))


@pytest.mark.parametrize("batch_size", [1, 4, None])
def test_mixed_sizes_keep_input_order(pair, batch_size):
    ref, pj = pair
    assert_same(pj(IMAGES, batch_size=batch_size), ref(IMAGES))
    assert pj.stats()["batches"] > 0


def test_batches_really_hold_several_images(pair):
    _, pj = pair
    before = pj.stats()["batches"]
    pj(IMAGES, batch_size=4)
    assert pj.stats()["batches"] - before == 3


@pytest.mark.parametrize("top_k", [1, 3, 10, None])
def test_top_k(pair, top_k):
    ref, pj = pair
    assert_same(pj(IMAGES[:3], top_k=top_k), ref(IMAGES[:3], top_k=top_k))
    assert_same(pj(IMAGES[0], top_k=top_k), ref(IMAGES[0], top_k=top_k))


@pytest.mark.parametrize("function", ["softmax", "sigmoid", "none", "SIGMOID"])
def test_function_to_apply(pair, function):
    ref, pj = pair
    got = pj(IMAGES[:4], function_to_apply=function, top_k=5)
    assert_same(got, ref(IMAGES[:4], function_to_apply=function, top_k=5))


def test_paths_arrays_grayscale_and_rgba(pair, tmp_path):
    ref, pj = pair
    path = tmp_path / "one.png"
    IMAGES[1].save(path)
    inputs = [
        str(path),
        IMAGES[2].convert("L"),
        IMAGES[3].convert("RGBA"),
        np.asarray(IMAGES[4]),
    ]
    assert_same(pj(inputs, batch_size=4), ref(inputs))
    assert_same(pj(np.asarray(IMAGES[5])), ref(np.asarray(IMAGES[5])))


def test_bad_inputs_name_the_input_and_leave_the_pipeline_working(pair, tmp_path):
    ref, pj = pair
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff not a jpeg")
    with pytest.raises(ValueError, match="input 1: .*not an image"):
        pj([IMAGES[0], str(corrupt), IMAGES[1]])
    with pytest.raises(ValueError, match="input 2: .*neither an existing image file"):
        pj([IMAGES[0], IMAGES[1], str(tmp_path / "missing.png")])
    with pytest.raises(TypeError, match="got int"):
        pj([IMAGES[0], 7])
    assert_same(pj(IMAGES[:3], batch_size=2), ref(IMAGES[:3]))


def test_bad_parameters(pair):
    _, pj = pair
    with pytest.raises(ValueError, match="function_to_apply"):
        pj(IMAGES[0], function_to_apply="relu")
    with pytest.raises(ValueError, match="top_k"):
        pj(IMAGES[0], top_k=-1)
    with pytest.raises(TypeError, match="unexpected parameter"):
        pj(IMAGES[0], threshold=0.5)


def test_task_inferred_from_the_folder_and_model_object_with_its_processor(pair):
    import pipejit

    ref, pj = pair
    inferred = pipejit.pipeline(model=ref.model.name_or_path, compile=False)
    assert inferred.task.name == "image-classification"
    given = pipejit.pipeline(
        "image-classification",
        model=ref.model,
        image_processor=ref.image_processor,
        compile=False,
    )
    assert_same(given(IMAGES[:3]), ref(IMAGES[:3]))


@pytest.mark.slow
def test_compiled_matches(tmp_path_factory):
    ref, pj = vision_pair(
        "image-classification", tmp_path_factory.mktemp("vit_cls_compiled"), compile=True
    )
    assert_same(pj(IMAGES, batch_size=4), ref(IMAGES))
    assert pj.stats()["compile_failed"] is None


def test_a_single_transparent_rgba_image_loads_as_rgb(pair):
    # a single RGBA image loads as RGB, as transformers loads it
    ref, pj = pair
    image = Image.new("RGBA", (40, 30), (10, 200, 30, 0))
    assert_same(pj(image), ref(image))


def test_timeout_is_accepted(pair, tmp_path):
    ref, pj = pair
    path = tmp_path / "timed.png"
    IMAGES[6].save(path)
    assert_same(pj(str(path), timeout=5.0), ref(str(path), timeout=5.0))


@pytest.mark.cuda
@pytest.mark.parametrize("shapes", ["static", "dynamic"])
def test_cuda_compiled_matches_transformers(tmp_path_factory, shapes):
    import torch

    ref, pj = vision_pair(
        "image-classification",
        tmp_path_factory.mktemp("vit_cls_cuda"),
        device="cuda",
        compile=True,
        shapes=shapes,
    )
    # GPU matmuls may use TF32: compare with the half-precision tolerance
    assert_same(pj(IMAGES, batch_size=4), ref(IMAGES), dtype=torch.float16)
    assert_same(pj(IMAGES[0]), ref(IMAGES[0]), dtype=torch.float16)


def test_a_stream_of_images_comes_back_in_order(pair):
    ref, pj = pair
    stream = pj((image for image in IMAGES), batch_size=4)
    assert not isinstance(stream, list)
    assert_same(list(stream), ref(IMAGES))
