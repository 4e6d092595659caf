"""token-classification (alias ner): a label per token, optionally aggregated into entities.

Tokenization (with offsets, and overlapping chunks under ``stride``) and the
word aggregation are the reference pipeline's own public steps, so entity
boundaries and words come out exactly as transformers gives them; the softmax
over labels runs on the device for the whole batch.
"""

from __future__ import annotations

from typing import Any

import torch

from pipejit.compat import sanitize_parameters
from pipejit.contract import Features, ForwardTask, Params, Row
from pipejit.kernels.token_scores import token_scores
from pipejit.tasks.base import reject_unknown

PARAMETERS = {
    "ignore_labels",
    "aggregation_strategy",
    "offset_mapping",
    "is_split_into_words",
    "stride",
    "delimiter",
}


class TokenClassification(ForwardTask):
    name = "token-classification"
    aliases = ("ner",)
    # "auto": Triton kernels on CUDA, their torch references elsewhere; "triton"/"torch" force one
    kernel_impl = "auto"

    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        reject_unknown(self.name, kwargs, PARAMETERS)
        strategy = kwargs.get("aggregation_strategy")
        if isinstance(strategy, str) and strategy.upper() not in {
            "NONE",
            "SIMPLE",
            "FIRST",
            "AVERAGE",
            "MAX",
        }:
            raise ValueError(
                "aggregation_strategy must be one of 'none', 'simple', 'first', 'average', 'max', "
                f"got {strategy!r}"
            )
        preprocess, _, postprocess = sanitize_parameters(self.reference, **kwargs)
        return Params(preprocess=preprocess, postprocess=postprocess)

    def normalize_call(self, inputs: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
        super().normalize_call(inputs, args, kwargs)
        if kwargs.get("is_split_into_words") and isinstance(inputs, list):
            if inputs and all(isinstance(word, str) for word in inputs):
                return [inputs]  # one pre-split sentence; transformers answers it as a list of one
        return inputs

    def preprocess(self, item: Any, params: Params) -> list[Features]:
        chunks = self.reference.preprocess(item, **dict(params.preprocess))
        return [self._features(chunk) for chunk in chunks]

    def _features(self, chunk: dict[str, Any]) -> Features:
        names = set(self.tokenizer.model_input_names)
        tensors = {k: v[0] for k, v in chunk.items() if k in names}
        context = {k: v for k, v in chunk.items() if k not in names}
        context["input_ids"] = chunk["input_ids"][0].numpy()
        return Features(tensors, context)

    def reduce(self, outputs: Any, inputs: dict[str, torch.Tensor], params: Params) -> dict:
        """Per-token label probabilities, in one fused pass; the reference's public word
        aggregation then reads them (it takes each token's best label itself)."""
        probs, _, _ = token_scores(outputs.logits, impl=self.kernel_impl)
        return {"scores": probs}

    def postprocess(self, item: Any, features: list[Features], rows: list[Row], params: Params):
        strategy = params.postprocess.get("aggregation_strategy", "none")
        ignore = params.postprocess.get("ignore_labels")
        ignore = ["O"] if ignore is None else ignore
        sentence = features[0].context["sentence"]
        word_to_chars_map = features[0].context.get("word_to_chars_map")
        entities = []
        for feature, row in zip(features, rows):
            context = feature.context
            offsets = context.get("offset_mapping")
            pre_entities = self.reference.gather_pre_entities(
                sentence,
                context["input_ids"],
                row["scores"][: feature.length],
                offsets[0] if offsets is not None else None,
                context["special_tokens_mask"][0].numpy(),
                strategy,
                word_ids=context.get("word_ids"),
                word_to_chars_map=word_to_chars_map,
            )
            for entity in self.reference.aggregate(pre_entities, strategy):
                if entity.get("entity") not in ignore and entity.get("entity_group") not in ignore:
                    entity["score"] = float(entity["score"])
                    entities.append(entity)
        if len(features) > 1:
            entities = self.reference.aggregate_overlapping_entities(entities)
        return entities
