"""zero-shot-audio-classification: a clip scored against free-form labels by a CLAP-like model.

The feature extractor turns every clip into a spectrogram of one fixed size, so
items are stacked unpadded. The labels, formatted with ``hypothesis_template``,
are tokenized once per call and ride along with every batch of clips; the
softmax over the labels and their ranking run on the device.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pipejit.contract import Features, ForwardTask, Params, Row
from pipejit.tasks.audio_inputs import is_single_audio, load_audio
from pipejit.tasks.base import reject_unknown

DEFAULT_TEMPLATE = "This is a sound of {}."
# Spectrogram frames have no model maximum: every clip is cut or padded to one size.
MAX_FRAMES = 1 << 30


class ZeroShotAudioClassification(ForwardTask):
    name = "zero-shot-audio-classification"
    pads = False
    length_unit = "frames"

    def __init__(self, reference):
        super().__init__(reference)
        self.feature_extractor = reference.feature_extractor
        self.sampling_rate = int(self.feature_extractor.sampling_rate)

    @property
    def max_length(self) -> int:
        return MAX_FRAMES

    @property
    def pad_values(self) -> dict[str, float]:
        return {}

    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        reject_unknown(self.name, kwargs, {"candidate_labels", "hypothesis_template"})
        labels = kwargs.get("candidate_labels")
        if labels is None:  # a pipeline built without labels: each call must bring them
            return Params(postprocess={"labels": None})
        if (
            not isinstance(labels, (list, tuple))
            or not labels
            or not all(isinstance(label, str) for label in labels)
        ):
            raise ValueError(
                f"candidate_labels must be a non-empty list of strings, got {labels!r}"
            )
        template = kwargs.get("hypothesis_template", DEFAULT_TEMPLATE)
        if not isinstance(template, str):
            raise ValueError(f"hypothesis_template must be a string, got {template!r}")
        return Params(postprocess={"labels": tuple(labels), "template": template})

    def call_tensors(self, params: Params) -> dict[str, torch.Tensor]:
        """The label prompts, tokenized: the model's text tower reads them with every batch."""
        labels = params.postprocess["labels"]
        if labels is None:
            return {}
        template = params.postprocess["template"]
        text = self.tokenizer(
            [template.format(label) for label in labels], return_tensors="pt", padding=True
        )
        return {key: value.to(self.model.device) for key, value in text.items()}

    def is_single(self, inputs: Any) -> bool:
        return is_single_audio(inputs)

    def preprocess(self, item: Any, params: Params) -> list[Features]:
        if params.postprocess["labels"] is None:
            raise ValueError(
                f"{self.name} needs candidate_labels, a non-empty list of strings, "
                "given to the pipeline or to the call"
            )
        audio = load_audio(item, self.sampling_rate)
        return [self._features(audio.samples)]

    def _features(self, samples: np.ndarray) -> Features:
        processed = self.feature_extractor(
            [samples], sampling_rate=self.sampling_rate, return_tensors="pt"
        )
        features = processed["input_features"][0].to(self.model.dtype)
        tensors = {"input_features": features, "is_longer": processed["is_longer"][0]}
        return Features(tensors, group=tuple(features.shape), size=int(features.shape[-2]))

    def dummy_features(self, length: int) -> Features:
        return self._features(np.zeros(self.sampling_rate, np.float32))

    def forward_inputs(self, batch: dict[str, torch.Tensor], call: dict) -> dict:
        return {**batch, **call}

    def reduce(self, outputs: Any, inputs: dict[str, torch.Tensor], params: Params) -> dict:
        probs = outputs.logits_per_audio.float().softmax(dim=-1)
        scores, order = torch.sort(probs, dim=-1, descending=True, stable=True)
        return {"scores": scores, "labels": order}

    def postprocess(self, item: Any, features: list[Features], rows: list[Row], params: Params):
        (row,) = rows
        labels = params.postprocess["labels"]
        return [
            {"score": float(s), "label": labels[int(i)]}
            for s, i in zip(row["scores"], row["labels"])
        ]
