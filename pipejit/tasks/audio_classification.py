"""audio-classification: the top labels of one clip, from a wav2vec2-like classifier."""

from __future__ import annotations

from typing import Any

import torch

from pipejit.contract import Features, Params, Row
from pipejit.kernels.softmax_topk import softmax_topk
from pipejit.tasks.audio_inputs import is_single_audio, load_audio
from pipejit.tasks.audio_task import WaveformTask
from pipejit.tasks.base import reject_unknown

FUNCTIONS = ("softmax", "sigmoid", "none")


class AudioClassification(WaveformTask):
    name = "audio-classification"

    @classmethod
    def serves(cls, model: torch.nn.Module) -> bool:
        return model.main_input_name == "input_values"

    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        reject_unknown(self.name, kwargs, {"top_k", "function_to_apply"})
        labels = int(self.config.num_labels)
        # transformers documents top_k=5 at construction, but its call-time default (None,
        # every label) always overrides that; pipejit honours a top_k given at construction
        top_k = kwargs.get("top_k")
        if top_k is None:
            top_k = labels
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")
        function = kwargs.get("function_to_apply")
        if function is None:
            function = {"regression": "none", "multi_label_classification": "sigmoid"}.get(
                self.config.problem_type, "softmax"
            )
        elif function not in FUNCTIONS:
            raise ValueError(
                f"function_to_apply must be one of {list(FUNCTIONS)}, got {function!r}"
            )
        return Params(postprocess={"top_k": min(top_k, labels), "function": function})

    def is_single(self, inputs: Any) -> bool:
        return is_single_audio(inputs)

    def preprocess(self, item: Any, params: Params) -> list[Features]:
        audio = load_audio(item, self.sampling_rate)
        return [self.features(audio.samples, attention_mask=False)]

    def reduce(self, outputs: Any, inputs: dict[str, torch.Tensor], params: Params) -> dict:
        k, function = params.postprocess["top_k"], params.postprocess["function"]
        values, labels = softmax_topk(outputs.logits, max(k, 1), function=function)
        return {"scores": values[:, :k], "labels": labels[:, :k]}

    def postprocess(self, item: Any, features: list[Features], rows: list[Row], params: Params):
        (row,) = rows
        id2label = self.config.id2label
        return [
            {"score": float(s), "label": id2label[int(i)]}
            for s, i in zip(row["scores"], row["labels"])
        ]
