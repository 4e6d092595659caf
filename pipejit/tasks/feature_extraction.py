"""feature-extraction: the model's last hidden state, one vector per token.

pipejit extra (not in transformers): ``pooling="mean" | "cls" | "max"`` returns one
vector per text instead, [1, hidden] (a sentence embedding, e.g. all-MiniLM-L6-v2's
mean pooling), and ``normalize=True`` scales it to unit L2 norm. Pooling runs on the
device under the attention mask, so only one vector per text crosses to the host.
"""

from __future__ import annotations

from typing import Any

import torch

from pipejit.contract import Features, ForwardTask, Params, Row
from pipejit.kernels.pooling import MODES, masked_pool
from pipejit.tasks.base import TextsInOneCall, encode, reject_unknown

PARAMETERS = {"truncation", "tokenize_kwargs", "return_tensors", "pooling", "normalize"}


class FeatureExtraction(TextsInOneCall, ForwardTask):
    name = "feature-extraction"
    # "auto": Triton kernels on CUDA, their torch references elsewhere; "triton"/"torch" force one
    kernel_impl = "auto"

    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        reject_unknown(self.name, kwargs, PARAMETERS)
        pooling = kwargs.get("pooling")
        if pooling is not None and pooling not in MODES:
            raise ValueError(f"pooling must be one of {MODES} or None, got {pooling!r}")
        normalize = bool(kwargs.get("normalize"))
        if normalize and pooling is None:
            raise ValueError("normalize=True needs a pooling mode ('mean', 'cls' or 'max')")
        tokenize_kwargs = dict(kwargs.get("tokenize_kwargs") or {})
        if kwargs.get("truncation") is not None:
            if "truncation" in tokenize_kwargs:
                raise ValueError(
                    "truncation was given twice: as a keyword argument and in tokenize_kwargs"
                )
            tokenize_kwargs["truncation"] = kwargs["truncation"]
        return Params(
            preprocess=tokenize_kwargs,
            postprocess={
                "return_tensors": bool(kwargs.get("return_tensors")),
                "pooling": pooling,
                "normalize": normalize,
            },
        )

    def preprocess(self, item: Any, params: Params) -> list[Features]:
        if not isinstance(item, str):
            raise ValueError(f"feature-extraction takes a string, got {type(item).__name__}")
        return [Features(encode(self.tokenizer, item, **params.preprocess))]

    def reduce(self, outputs: Any, inputs: dict[str, torch.Tensor], params: Params) -> dict:
        pooling = params.postprocess["pooling"]
        if pooling is None:
            return {"hidden": outputs[0].float()}
        hidden = outputs[0]
        mask = inputs.get("attention_mask")
        if mask is None:
            mask = inputs["input_ids"] != self.pad_values["input_ids"]
        pooled = masked_pool(
            hidden,
            mask,
            pooling,
            normalize=params.postprocess["normalize"],
            impl=self.kernel_impl,
        )
        return {"pooled": pooled}

    def postprocess(self, item: Any, features: list[Features], rows: list[Row], params: Params):
        """Only the item's own tokens, never the bucket's padding: shape [1, tokens, hidden]."""
        (feature,), (row,) = features, rows
        if params.postprocess["pooling"] is not None:
            hidden = row["pooled"][None]
        else:
            hidden = row["hidden"][: feature.length][None]
        if params.postprocess["return_tensors"]:
            return torch.from_numpy(hidden.copy()).to(self.model.dtype)
        return hidden.tolist()
