"""image-segmentation at parity with transformers.pipeline: Segformer (semantic) and
DETR (semantic, instance, panoptic); masks are compared pixel for pixel."""

import pytest

from tests.parity import assert_same
from tests.vision_models import assert_same_images, images, vision_pair

IMAGES = images(8, seed=6)


@pytest.fixture(scope="module")
def segformer(tmp_path_factory):
    return vision_pair("image-segmentation", tmp_path_factory.mktemp("segformer"))


@pytest.fixture(scope="module")
def detr(tmp_path_factory):
    return vision_pair(
        "image-segmentation-detr", tmp_path_factory.mktemp("detr_seg"), "image-segmentation"
    )


def assert_same_segments(actual, expected, path="output"):
    """Same labels and scores in the same order; masks equal pixel for pixel."""
    assert isinstance(actual, list) and len(actual) == len(expected), f"{path}: segment count"
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert list(a) == list(e) == ["score", "label", "mask"], f"{path}[{i}] keys"
        assert_same({k: a[k] for k in ("score", "label")}, {k: e[k] for k in ("score", "label")})
        assert_same_images(a["mask"], e["mask"], f"{path}[{i}]['mask']")


def assert_same_lists(actual, expected):
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert_same_segments(a, e, f"output[{i}]")


def test_semantic_single_and_batched(segformer):
    ref, pj = segformer
    assert_same_segments(pj(IMAGES[0]), ref(IMAGES[0]))
    for batch_size in (1, 4, None):
        assert_same_lists(pj(IMAGES, batch_size=batch_size), ref(IMAGES))
    assert_same_lists(pj(IMAGES[:3], subtask="semantic"), ref(IMAGES[:3], subtask="semantic"))


def test_unsupported_subtask_fails_like_transformers(segformer):
    ref, pj = segformer
    with pytest.raises(ValueError, match="Subtask instance is not supported"):
        ref(IMAGES[0], subtask="instance")
    with pytest.raises(ValueError, match="Subtask instance is not supported"):
        pj(IMAGES[0], subtask="instance")
    with pytest.raises(ValueError, match="subtask must be one of"):
        pj(IMAGES[0], subtask="everything")


OPTIONS = [
    {"threshold": 0.0, "mask_threshold": 0.0},
    {"threshold": 0.1, "overlap_mask_area_threshold": 0.0},
    {"threshold": 0.1, "mask_threshold": 0.3, "overlap_mask_area_threshold": 0.2},
    {"threshold": 0.99},
]


@pytest.mark.parametrize("subtask", [None, "panoptic", "instance"])
@pytest.mark.parametrize("options", OPTIONS)
def test_detr_subtasks_and_thresholds(detr, subtask, options):
    ref, pj = detr
    expected = ref(IMAGES, subtask=subtask, **options)
    assert_same_lists(pj(IMAGES, subtask=subtask, batch_size=4, **options), expected)
    assert_same_segments(pj(IMAGES[0], subtask=subtask, **options), expected[0])


def test_detr_gives_segments_and_several_shape_groups(detr):
    ref, pj = detr
    got = pj(IMAGES, threshold=0.1, overlap_mask_area_threshold=0.0, batch_size=8)
    assert sum(len(segments) for segments in got) > len(IMAGES)
    shapes = {tuple(pj.task.image_processor(i)["pixel_values"][0].shape) for i in IMAGES}
    assert len(shapes) > 1


def test_detr_semantic(detr):
    ref, pj = detr
    assert_same_lists(pj(IMAGES, subtask="semantic"), ref(IMAGES, subtask="semantic"))


def test_grayscale_rgba_and_bad_inputs(segformer, tmp_path):
    ref, pj = segformer
    inputs = [IMAGES[0].convert("L"), IMAGES[1].convert("RGBA")]
    assert_same_lists(pj(inputs, batch_size=2), ref(inputs))
    corrupt = tmp_path / "bad.jpg"
    corrupt.write_bytes(b"GIF89 but not an image")
    with pytest.raises(ValueError, match="input 1: .*not an image"):
        pj([IMAGES[0], str(corrupt)])
    assert_same_lists(pj(IMAGES[:2]), ref(IMAGES[:2]))


@pytest.fixture(scope="module")
def mask2former(tmp_path_factory):
    return vision_pair(
        "image-segmentation-mask2former", tmp_path_factory.mktemp("m2f"), "image-segmentation"
    )


@pytest.mark.parametrize("subtask", [None, "semantic", "instance", "panoptic"])
@pytest.mark.parametrize("options", [{}, OPTIONS[0], OPTIONS[2]])
def test_mask2former_subtasks_and_thresholds(mask2former, subtask, options):
    ref, pj = mask2former
    expected = ref(IMAGES[:5], subtask=subtask, **options)
    assert_same_lists(pj(IMAGES[:5], subtask=subtask, batch_size=4, **options), expected)
    assert_same_segments(pj(IMAGES[0], subtask=subtask, **options), expected[0])


def test_mask2former_finds_instances_in_shape_groups(mask2former):
    _, pj = mask2former
    got = pj(IMAGES, subtask="instance", threshold=0.0, batch_size=8)
    assert all(len(segments) > 0 for segments in got)
    shapes = {tuple(pj.task.image_processor(i)["pixel_values"][0].shape) for i in IMAGES}
    assert len(shapes) > 1
