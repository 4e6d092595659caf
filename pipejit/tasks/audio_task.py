"""What the waveform tasks share: lengths in samples, duration buckets, padding that is exact.

A wav2vec2-like model reads raw samples (``input_values``). Models whose
feature encoder normalises each layer over time (``feat_extract_norm="group"``,
wav2vec2-base) see padded samples in that statistic, so padding would change
their outputs: their items are batched only with items of the same length.
The others are right-padded with zeros and an attention mask, which leaves every
real frame's output as it is at batch 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from transformers import Pipeline as ReferencePipeline

from pipejit.compat import feature_lengths
from pipejit.contract import Features, ForwardTask

# Duration buckets in seconds: fine steps for short clips, coarser for long ones.
LADDER_SECONDS = (
    *np.arange(0.5, 4.01, 0.5),
    *range(5, 17),
    *range(18, 33, 2),
    *range(36, 65, 4),
    *range(72, 601, 8),
)
# The longest input run in one piece: ten minutes (longer audio wants chunk_length_s).
MAX_SECONDS = 600


class WaveformTask(ForwardTask):
    """A task whose model items are raw samples at the feature extractor's rate."""

    length_unit = "samples"

    def __init__(self, reference: ReferencePipeline):
        super().__init__(reference)
        self.feature_extractor = reference.feature_extractor
        self.sampling_rate = int(self.feature_extractor.sampling_rate)
        self.input_name = self.model.main_input_name
        self.units_per_token = int(getattr(self.config, "inputs_to_logits_ratio", 1) or 1)
        self.pads = getattr(self.config, "feat_extract_norm", "layer") != "group"

    @property
    def max_length(self) -> int:
        return MAX_SECONDS * self.sampling_rate

    @property
    def length_ladder(self) -> tuple[int, ...]:
        return tuple(int(round(s * self.sampling_rate)) for s in LADDER_SECONDS)

    @property
    def pad_values(self) -> dict[str, float]:
        return {self.input_name: 0.0, "attention_mask": 0}

    def features(self, samples: np.ndarray, attention_mask: bool, **context: Any) -> Features:
        """One clip through the feature extractor (normalised alone, as at batch 1)."""
        processed = self.feature_extractor(
            samples,
            sampling_rate=self.sampling_rate,
            return_tensors="pt",
            return_attention_mask=attention_mask or self.pads,
        )
        return self.as_features(processed, **context)

    def as_features(self, processed: Mapping[str, Any], **context: Any) -> Features:
        """The feature extractor's output for one clip (a batch of one) as a model item;
        a padded item needs its attention mask (``features`` asks for it)."""
        # the reference casts features to the model's dtype; the engine does not
        tensors = {self.input_name: processed[self.input_name][0].to(self.model.dtype)}
        if "attention_mask" in processed:
            tensors["attention_mask"] = processed["attention_mask"][0].to(torch.long)
        length = int(tensors[self.input_name].shape[0])
        # unpadded items only share a batch with items of their own length
        return Features(tensors, context, group=None if self.pads else length)

    def dummy_features(self, length: int) -> Features:
        return self.features(np.zeros(length, np.float32), attention_mask=True)

    def frames(self, samples: int) -> int:
        """The number of model frames ``samples`` input samples give."""
        lengths = feature_lengths(self.model, torch.tensor(samples))
        return int(lengths)
