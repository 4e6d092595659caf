"""depth-estimation: the predicted depth at the image's size, and it as an 8-bit image,
by the image processor's own post-processing."""

from __future__ import annotations

from typing import Any

import torch

from pipejit.contract import Features, Params, Row
from pipejit.tasks.base import reject_unknown
from pipejit.tasks.image_batching import ImageTask, rebuild_outputs, select_outputs

# What post_process_depth_estimation reads (DepthPro adds its field of view).
OUTPUTS = ("predicted_depth", "field_of_view")


class DepthEstimation(ImageTask):
    name = "depth-estimation"

    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        reject_unknown(self.name, kwargs, {"timeout", "parameters"})
        timeout = kwargs.get("timeout")
        parameters = kwargs.get("parameters")
        if isinstance(parameters, dict) and "timeout" in parameters:
            timeout = parameters["timeout"]
        return Params(preprocess={"timeout": timeout} if timeout is not None else {})

    def reduce(self, outputs: Any, inputs: dict[str, torch.Tensor], params: Params) -> dict:
        return select_outputs(outputs, OUTPUTS)

    def postprocess(self, item: Any, features: list[Features], rows: list[Row], params: Params):
        (feature,), (row,) = features, rows
        return self.reference.postprocess(rebuild_outputs(row, feature, self.model.dtype))
