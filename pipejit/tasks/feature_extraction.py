"""feature-extraction: the model's last hidden state, one vector per token."""

from __future__ import annotations

from typing import Any

import torch

from pipejit.tasks.base import Features, Params, Row, Task, encode, reject_unknown


class FeatureExtraction(Task):
    name = "feature-extraction"

    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        reject_unknown(self.name, kwargs, {"truncation", "tokenize_kwargs", "return_tensors"})
        tokenize_kwargs = dict(kwargs.get("tokenize_kwargs") or {})
        if kwargs.get("truncation") is not None:
            if "truncation" in tokenize_kwargs:
                raise ValueError(
                    "truncation was given twice: as a keyword argument and in tokenize_kwargs"
                )
            tokenize_kwargs["truncation"] = kwargs["truncation"]
        return Params(
            preprocess=tokenize_kwargs,
            postprocess={"return_tensors": bool(kwargs.get("return_tensors"))},
        )

    def preprocess(self, item: Any, params: Params) -> list[Features]:
        if not isinstance(item, str):
            raise ValueError(f"feature-extraction takes a string, got {type(item).__name__}")
        return [Features(encode(self.tokenizer, item, **params.preprocess))]

    def reduce(self, outputs: Any, inputs: dict[str, torch.Tensor], params: Params) -> dict:
        return {"hidden": outputs[0].float()}

    def postprocess(self, item: Any, features: list[Features], rows: list[Row], params: Params):
        """Only the item's own tokens, never the bucket's padding: shape [1, tokens, hidden]."""
        (feature,), (row,) = features, rows
        hidden = row["hidden"][: feature.length][None]
        if params.postprocess["return_tensors"]:
            return torch.from_numpy(hidden.copy()).to(self.model.dtype)
        return hidden.tolist()
