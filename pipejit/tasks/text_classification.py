"""text-classification (alias sentiment-analysis): one label score row per text or text pair."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from pipejit.contract import Features, ForwardTask, Params, Row
from pipejit.kernels.softmax_topk import softmax_topk
from pipejit.tasks.base import TextsInOneCall, encode, reject_unknown
from pipejit.tasks.first_token import first_position_only
from pipejit.tasks.score_functions import default_function, function_name

TOKENIZER_KWARGS = {"truncation", "max_length", "add_special_tokens"}
_ALL = object()  # top_k=None asks for every label, so "not given" needs its own marker


class TextClassification(TextsInOneCall, ForwardTask):
    name = "text-classification"
    aliases = ("sentiment-analysis",)
    # "auto": Triton kernels on CUDA, their torch references elsewhere; "triton"/"torch" force one
    kernel_impl = "auto"

    first_position_only = False

    def prepare_model(self) -> None:
        # BERT-family heads read the first position only: the last layer computes it alone
        self.first_position_only = first_position_only(self.model)

    def model_kwargs(self) -> dict[str, Any]:
        return {"use_cache": False} if _accepts(self.model, "use_cache") else {}

    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        reject_unknown(self.name, kwargs, {"top_k", "function_to_apply"} | TOKENIZER_KWARGS)
        top_k = kwargs.get("top_k", _ALL)
        if top_k is not _ALL and top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")
        function = kwargs.get("function_to_apply")
        function = default_function(self.config) if function is None else function_name(function)
        post = {
            "function": function,
            "legacy": top_k is _ALL,
            "top_k": 1 if top_k is _ALL else top_k,
        }
        pre = {k: kwargs[k] for k in TOKENIZER_KWARGS & set(kwargs)}
        return Params(preprocess=pre, postprocess=post)

    def is_single(self, inputs: Any) -> bool:
        return isinstance(inputs, (str, dict))

    def preprocess(self, item: Any, params: Params) -> list[Features]:
        if isinstance(item, str):
            return [Features(encode(self.tokenizer, item, **params.preprocess))]
        if isinstance(item, dict):
            unknown = set(item) - {"text", "text_pair"}
            if "text" not in item or unknown:
                raise ValueError(
                    "a text pair is a dict with the keys 'text' and optionally 'text_pair', "
                    f"got the keys {sorted(item)}"
                )
            if not all(isinstance(v, str) for v in item.values()):
                raise ValueError("the 'text' and 'text_pair' of a text pair must be strings")
            return [Features(encode(self.tokenizer, **item, **params.preprocess))]
        if isinstance(item, (list, tuple)):
            raise ValueError(
                "text-classification received a list as one input; to classify a text pair, "
                'send a dict {"text": "My text", "text_pair": "My pair"}'
            )
        raise ValueError(
            f"text-classification takes a string or a text-pair dict, got {type(item).__name__}"
        )

    def reduce(self, outputs: Any, inputs: dict[str, torch.Tensor], params: Params) -> dict:
        """Scores and labels, best first; equal scores keep the lower label first, as the
        reference's stable sort of Python floats does."""
        logits = outputs.logits
        labels = logits.shape[-1]
        k = min(params.postprocess["top_k"] or labels, labels)
        function = params.postprocess["function"]
        values, indices = softmax_topk(logits, k, function=function, impl=self.kernel_impl)
        return {"scores": values, "labels": indices}

    def postprocess(self, item: Any, features: list[Features], rows: list[Row], params: Params):
        (row,) = rows
        id2label = self.config.id2label
        ranked = [
            {"label": id2label[int(i)], "score": float(s)}
            for s, i in zip(row["scores"], row["labels"])
        ]
        return ranked[0] if params.postprocess["legacy"] else ranked

    def format_single(self, output: Any, inputs: Any, call_kwargs: dict[str, Any]) -> Any:
        # transformers wraps a lone string's result in a list unless top_k came with the call
        return [output] if isinstance(inputs, str) and "top_k" not in call_kwargs else output


def _accepts(model: torch.nn.Module, name: str) -> bool:
    return name in inspect.signature(model.forward).parameters
