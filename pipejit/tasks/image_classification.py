"""image-classification: the top labels of one image, scored on the device."""

from __future__ import annotations

from typing import Any

import torch

from pipejit.contract import Features, Params, Row
from pipejit.kernels.softmax_topk import softmax_topk
from pipejit.tasks.base import reject_unknown
from pipejit.tasks.image_batching import ImageTask
from pipejit.tasks.score_functions import default_function, function_name

DEFAULT_TOP_K = 5


class ImageClassification(ImageTask):
    name = "image-classification"
    accepts_arrays = True

    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        reject_unknown(self.name, kwargs, {"top_k", "function_to_apply", "timeout"})
        top_k = kwargs.get("top_k")
        top_k = DEFAULT_TOP_K if top_k is None else top_k
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0:
            raise ValueError(f"top_k must be a non-negative int or None, got {top_k!r}")
        function = kwargs.get("function_to_apply")
        function = default_function(self.config) if function is None else function_name(function)
        pre = {"timeout": kwargs["timeout"]} if kwargs.get("timeout") is not None else {}
        top_k = min(top_k, self.config.num_labels)
        return Params(preprocess=pre, postprocess={"top_k": top_k, "function": function})

    def reduce(self, outputs: Any, inputs: dict[str, torch.Tensor], params: Params) -> dict:
        post = params.postprocess
        k = post["top_k"]
        # top_k=0 answers [] as transformers does; the kernel ranks at least one column
        scores, labels = softmax_topk(outputs.logits, max(k, 1), function=post["function"])
        return {"scores": scores[:, :k], "labels": labels[:, :k]}

    def postprocess(self, item: Any, features: list[Features], rows: list[Row], params: Params):
        (row,) = rows
        id2label = self.config.id2label
        return [
            {"label": id2label[int(i)], "score": float(s)}
            for s, i in zip(row["scores"], row["labels"])
        ]
