"""object-detection: scored, labelled boxes above ``threshold``, by the image processor's
own post-processing on each image's query logits and boxes."""

from __future__ import annotations

from typing import Any

import torch

from pipejit.contract import Features, Params, Row
from pipejit.tasks.base import reject_unknown
from pipejit.tasks.image_batching import ImageTask, rebuild_outputs, select_outputs

# The outputs post_process_object_detection reads (DETR-likes: logits and boxes per query).
OUTPUTS = ("logits", "pred_boxes")


class ObjectDetection(ImageTask):
    name = "object-detection"

    @classmethod
    def serves(cls, model: torch.nn.Module) -> bool:
        # LayoutLM-style token classifiers (OCR words as boxes) are not detectors
        return not type(model).__name__.endswith("ForTokenClassification")

    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        reject_unknown(self.name, kwargs, {"threshold", "timeout"})
        pre = {"timeout": kwargs["timeout"]} if kwargs.get("timeout") is not None else {}
        post = {"threshold": kwargs["threshold"]} if "threshold" in kwargs else {}
        return Params(preprocess=pre, postprocess=post)

    def reduce(self, outputs: Any, inputs: dict[str, torch.Tensor], params: Params) -> dict:
        return select_outputs(outputs, OUTPUTS)

    def postprocess(self, item: Any, features: list[Features], rows: list[Row], params: Params):
        (feature,), (row,) = features, rows
        outputs = rebuild_outputs(row, feature, self.model.dtype)
        return self.reference.postprocess(outputs, **params.postprocess)
