"""image-feature-extraction: an image's hidden states, or its pooled vector with ``pool``."""

from __future__ import annotations

from typing import Any

import torch

from pipejit.contract import Features, Params, Row
from pipejit.tasks.base import reject_unknown
from pipejit.tasks.image_batching import ImageTask, host_copyable


class ImageFeatureExtraction(ImageTask):
    name = "image-feature-extraction"

    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        allowed = {"pool", "return_tensors", "image_processor_kwargs", "timeout"}
        reject_unknown(self.name, kwargs, allowed)
        pre = dict(kwargs.get("image_processor_kwargs") or {})
        if kwargs.get("timeout") is not None:
            pre["timeout"] = kwargs["timeout"]
        post = {
            "pool": bool(kwargs.get("pool")),
            "return_tensors": bool(kwargs.get("return_tensors")),
        }
        return Params(preprocess=pre, postprocess=post)

    def reduce(self, outputs: Any, inputs: dict[str, torch.Tensor], params: Params) -> dict:
        if not params.postprocess["pool"]:
            return {"features": host_copyable(outputs[0])}
        pooled = outputs.get("pooler_output")
        if pooled is None:
            raise ValueError(
                f"pool=True needs a pooled output, and {type(self.model).__name__} returns none; "
                "load a model with a pooler layer, or leave pool unset for the hidden states"
            )
        return {"features": host_copyable(pooled)}

    def postprocess(self, item: Any, features: list[Features], rows: list[Row], params: Params):
        """Shape [1, ...] like transformers: the hidden states or the pooled vector."""
        (row,) = rows
        values = torch.from_numpy(row["features"].copy())[None]
        if params.postprocess["return_tensors"]:
            return values.to(self.model.dtype)
        return values.tolist()
