"""zero-shot-image-classification: CLIP-like models score images against label prompts.

The text tower runs once per (labels, template) and its embeddings are kept in
a small bounded cache; they reach ``reduce`` as a call tensor, which the engine
holds (a captured graph reads its own copy, never the cache's). Every batch then
runs only the image tower, and the scaled cosine similarities with their softmax
(sigmoid for SigLIP) run on the device over the whole batch.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from pipejit.contract import Features, ForwardTask, Params, Row
from pipejit.tasks.base import reject_unknown
from pipejit.tasks.image_inputs import load_image
from pipejit.tasks.label_cache import LabelCache

DEFAULT_TEMPLATE = "This is a photo of {}."
# Model families whose logits are exp(logit_scale) * cosine (+ logit_bias for SigLIP),
# with a vision tower that takes pixel_values alone.
MODEL_TYPES = {"clip", "chinese_clip", "altclip", "metaclip_2", "siglip"}


class ImageTower(torch.nn.Module):
    """The part of a CLIP-like model that runs per batch: pixels to unit image embeddings."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        embeds = self.model.get_image_features(pixel_values=pixel_values)
        if not isinstance(embeds, torch.Tensor):
            embeds = embeds.pooler_output
        return embeds / embeds.norm(p=2, dim=-1, keepdim=True)


class ZeroShotImageClassification(ForwardTask):
    name = "zero-shot-image-classification"
    pads = False
    length_unit = "image patches"

    @classmethod
    def serves(cls, model: torch.nn.Module) -> bool:
        return getattr(model.config, "model_type", None) in MODEL_TYPES

    def __init__(self, reference):
        super().__init__(reference)
        self.image_processor = reference.image_processor
        self.sigmoid = "siglip" in self.config.model_type
        self._tower = ImageTower(self.model)
        self._text_cache: LabelCache[torch.Tensor] = LabelCache()
        vision = getattr(self.config, "vision_config", None)
        self._patch = int(getattr(vision, "patch_size", 16) or 16)

    @property
    def forward_module(self) -> torch.nn.Module:
        return self._tower

    @property
    def max_length(self) -> int:
        # images are resized by the processor; no item is ever too long
        return 1 << 30

    def is_single(self, inputs: Any) -> bool:
        return isinstance(inputs, (str, Image.Image))

    def normalize_call(self, inputs: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
        if len(args) == 1 and "candidate_labels" not in kwargs:
            kwargs["candidate_labels"] = args[0]
        elif args:
            raise TypeError(f"{self.name} takes (images, candidate_labels), got extra {args!r:.80}")
        return inputs

    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        reject_unknown(self.name, kwargs, {"candidate_labels", "hypothesis_template", "timeout"})
        labels = kwargs.get("candidate_labels")
        if labels is not None:
            if isinstance(labels, str) or not all(isinstance(x, str) for x in labels):
                raise TypeError(f"candidate_labels must be a list of strings, got {labels!r:.80}")
            labels = tuple(labels)
            if not labels:
                raise ValueError(f"{self.name} needs at least one candidate label, got none")
        template = kwargs.get("hypothesis_template", DEFAULT_TEMPLATE)
        if not isinstance(template, str):
            raise TypeError(f"hypothesis_template must be a string, got {template!r:.80}")
        pre = {"labels": labels, "template": template, "timeout": kwargs.get("timeout")}
        return Params(preprocess=pre)

    def preprocess(self, item: Any, params: Params) -> list[Features]:
        if params.preprocess["labels"] is None:
            raise ValueError(f"{self.name} needs candidate_labels (a list of label strings)")
        image = load_image(item, timeout=params.preprocess["timeout"])
        pixels = self.image_processor(images=[image], return_tensors="pt")["pixel_values"][0]
        pixels = pixels.to(self.model.dtype)
        patches = (pixels.shape[-2] // self._patch) * (pixels.shape[-1] // self._patch)
        return [Features({"pixel_values": pixels}, group=tuple(pixels.shape), size=patches + 1)]

    def call_tensors(self, params: Params) -> dict[str, torch.Tensor]:
        """Unit text embeddings of the label set: the text tower once per label set."""
        labels, template = params.preprocess["labels"], params.preprocess["template"]
        autocast = _autocast_dtype(self.model.device)
        embeds = self._text_cache.get(
            (labels, template, autocast), lambda: self._encode(labels, template)
        )
        return {"text_embeds": embeds}

    def _encode(self, labels: tuple[str, ...], template: str) -> torch.Tensor:
        options: dict[str, Any] = {"padding": True}
        if self.sigmoid:
            options.update(padding="max_length", max_length=64, truncation=True)
        texts = [template.format(label) for label in labels]
        encoded = self.tokenizer(texts, return_tensors="pt", **options).to(self.model.device)
        embeds = self.model.get_text_features(**encoded)
        if not isinstance(embeds, torch.Tensor):
            embeds = embeds.pooler_output
        return embeds / embeds.norm(p=2, dim=-1, keepdim=True)

    def reduce(self, outputs: Any, inputs: dict[str, torch.Tensor], params: Params) -> dict:
        """The batch's image embeddings and the label set's text embeddings to label scores."""
        text_embeds = inputs["text_embeds"]
        logits = outputs @ text_embeds.to(outputs.dtype).T
        logits = logits * self.model.logit_scale.exp()
        if self.sigmoid:
            return {"scores": (logits + self.model.logit_bias).sigmoid().float()}
        return {"scores": logits.softmax(-1).float()}

    def postprocess(self, item: Any, features: list[Features], rows: list[Row], params: Params):
        scores = rows[0]["scores"].tolist()
        labels = params.preprocess["labels"]
        ranked = sorted(zip(scores, labels), key=lambda pair: -pair[0])
        return [{"score": score, "label": label} for score, label in ranked]


def _autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The dtype autocast runs in on ``device`` now, or None when it is off."""
    if not torch.is_autocast_enabled(device.type):
        return None
    return torch.get_autocast_dtype(device.type)
