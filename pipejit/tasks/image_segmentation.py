"""image-segmentation (semantic, instance, panoptic): labelled masks as PIL images, by the
image processor's own post-processing on each image's logits and mask queries."""

from __future__ import annotations

from typing import Any

import torch

from pipejit.contract import Features, Params, Row
from pipejit.tasks.base import reject_unknown
from pipejit.tasks.image_batching import ImageTask, rebuild_outputs, select_outputs

SUBTASKS = ("semantic", "instance", "panoptic")
POSTPROCESS_KEYS = ("subtask", "threshold", "mask_threshold", "overlap_mask_area_threshold")
# What the post_process_*_segmentation functions read: per-pixel logits (Segformer-likes),
# per-query logits and masks (Mask2Former / OneFormer / MaskFormer), DETR's boxes and masks.
OUTPUTS = (
    "logits",
    "pred_boxes",
    "pred_masks",
    "class_queries_logits",
    "masks_queries_logits",
)


class ImageSegmentation(ImageTask):
    name = "image-segmentation"

    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        reject_unknown(self.name, kwargs, {*POSTPROCESS_KEYS, "timeout"})
        subtask = kwargs.get("subtask")
        if subtask is not None and subtask not in SUBTASKS:
            raise ValueError(f"subtask must be one of {SUBTASKS} or None, got {subtask!r}")
        pre = {key: kwargs[key] for key in ("subtask", "timeout") if key in kwargs}
        post = {key: kwargs[key] for key in POSTPROCESS_KEYS if key in kwargs}
        return Params(preprocess=pre, postprocess=post)

    def reduce(self, outputs: Any, inputs: dict[str, torch.Tensor], params: Params) -> dict:
        return select_outputs(outputs, OUTPUTS)

    def postprocess(self, item: Any, features: list[Features], rows: list[Row], params: Params):
        (feature,), (row,) = features, rows
        outputs = rebuild_outputs(row, feature, self.model.dtype)
        return self.reference.postprocess(outputs, **params.postprocess)
