"""mask-generation (SAM) at parity with transformers.pipeline.

transformers' SAM post-processing needs torchvision's ``batched_nms``; where
torchvision is absent, the reference is given a plain all-pairs NMS instead, so
that every other step of the oracle runs as shipped.
"""

import importlib.metadata
import sys
import types

import numpy as np
import pytest
import torch

from pipejit.tasks.mask_generation import box_nms, rle_to_mask
from tests.parity import assert_same
from tests.vision_zero_shot_models import images, pipeline_pair

TASK = "mask-generation"
IMAGES = images(4, seed=2, modes=("RGB", "L", "RGBA"))
# The tiny random model's masks all span their crop, so their boxes coincide: no
# thresholds and no NMS by default, so that every mask is compared; NMS is exercised
# with crops, whose boxes differ.
LOOSE = {
    "pred_iou_thresh": 0.0,
    "stability_score_thresh": 0.0,
    "points_per_crop": 4,
    "crops_nms_thresh": 1.0,
}


def all_pairs_nms(boxes, scores, idxs, iou_threshold):
    x0, y0, x1, y1 = boxes.unbind(1)
    area = (x1 - x0) * (y1 - y0)
    w = (torch.minimum(x1[:, None], x1[None]) - torch.maximum(x0[:, None], x0[None])).clamp(min=0)
    h = (torch.minimum(y1[:, None], y1[None]) - torch.maximum(y0[:, None], y0[None])).clamp(min=0)
    iou = w * h / (area[:, None] + area[None] - w * h)
    keep = []
    for i in scores.argsort(descending=True, stable=True).tolist():
        if all(iou[i, j] <= iou_threshold for j in keep):
            keep.append(i)
    return torch.tensor(keep, dtype=torch.long)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    ref, pj = pipeline_pair("sam", TASK, tmp_path_factory.mktemp("sam"))
    if not _torchvision_installed():
        _give_reference_an_nms(ref)
    return ref, pj


def _torchvision_installed() -> bool:
    """Whether the real torchvision is installed (another module may have put the
    stand-in below into sys.modules already; each reference still needs its NMS)."""
    try:
        importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _give_reference_an_nms(ref):
    from transformers.models.sam import image_processing_pil_sam as sam_post

    boxes = types.ModuleType("torchvision.ops.boxes")
    boxes.batched_nms = all_pairs_nms
    ops = types.ModuleType("torchvision.ops")
    ops.boxes = boxes
    vision = types.ModuleType("torchvision")
    vision.ops = ops
    for name, module in (
        ("torchvision", vision),
        ("torchvision.ops", ops),
        ("torchvision.ops.boxes", boxes),
    ):
        sys.modules.setdefault(name, module)
    ref.image_processor.post_process_for_mask_generation = (
        sam_post._post_process_for_mask_generation
    )


def assert_same_masks(got, expected):
    assert isinstance(got, list) and len(got) == len(expected)
    for g, e in zip(got, expected):
        g_masks, e_masks = g.pop("masks"), e.pop("masks")
        assert len(g_masks) == len(e_masks)
        for gm, em in zip(g_masks, e_masks):
            assert gm.dtype == em.dtype and gm.shape == em.shape
            assert np.array_equal(gm, em)
        assert_same(g, e)


@pytest.mark.parametrize("batch_size", [1, 3, None])
def test_images_batched(pair, batch_size):
    ref, pj = pair
    got = pj(IMAGES, batch_size=batch_size, **LOOSE)
    expected = [ref(image, **LOOSE) for image in IMAGES]
    assert any(len(e["masks"]) > 1 for e in expected)
    assert_same_masks(got, expected)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"points_per_batch": 7},
        {"points_per_batch": None},
        {"crops_n_layers": 1, "crops_nms_thresh": 0.5},
        {"crops_n_layers": 1, "crop_overlap_ratio": 0.5, "crop_n_points_downscale_factor": 1},
        {"output_rle_mask": True, "output_bboxes_mask": True},
        {"mask_threshold": 0.5, "stability_score_offset": 2, "stability_score_thresh": 0.2},
        {"pred_iou_thresh": 0.1},
        {"crops_nms_thresh": 0.7},
    ],
)
def test_each_parameter(pair, kwargs):
    ref, pj = pair
    options = {**LOOSE, **kwargs}
    got = pj(IMAGES[:2], **options)
    assert_same_masks(got, [ref(image, **options) for image in IMAGES[:2]])


def test_single_image(pair):
    ref, pj = pair
    assert_same_masks([pj(IMAGES[0], **LOOSE)], [ref(IMAGES[0], **LOOSE)])


def test_nms_and_rle_helpers():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 5, 10]]).float()
    scores = torch.tensor([0.5, 0.9, 0.8, 0.7])
    assert box_nms(boxes, scores, 0.7).tolist() == [1, 2, 3]
    assert box_nms(boxes, scores, 0.95).tolist() == [1, 2, 3, 0]
    mask = rle_to_mask({"size": [2, 3], "counts": [1, 2, 3]})
    assert mask.tolist() == [[False, True, False], [True, False, False]]


def test_bad_inputs(pair, tmp_path):
    ref, pj = pair
    with pytest.raises(ValueError, match="points_per_batch"):
        pj(IMAGES[0], points_per_batch=0)
    with pytest.raises(TypeError, match="unexpected parameter"):
        pj(IMAGES[0], max_hole_area=3)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match="input 1: .*not an image"):
        pj([IMAGES[0], str(corrupt)], **LOOSE)
    assert_same_masks(pj(IMAGES[:1], **LOOSE), [ref(IMAGES[0], **LOOSE)])
