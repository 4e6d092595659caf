"""zero-shot-object-detection: OWL-ViT-like models find boxes for free-text labels.

transformers runs the whole model once per (image, label). Here the text
tower runs once per label set (a bounded cache), each image's tower and box
head run once in a batch of images, and the class head scores every label of
the batch at once; the image processor's own post-processing turns each
label's logits into boxes, as the reference does.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
from PIL import Image
from transformers.image_utils import valid_images

from pipejit.contract import Features, ForwardTask, Params, Row
from pipejit.tasks.base import reject_unknown
from pipejit.tasks.image_inputs import load_image
from pipejit.tasks.label_cache import LabelCache

MODEL_TYPES = ("owlvit", "owlv2")


class ImageHead(torch.nn.Module):
    """What runs per image batch: the image tower, its patch features and their boxes."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature_map = self.model.image_embedder(pixel_values=pixel_values)[0]
        batch, height, width, hidden = feature_map.shape
        features = feature_map.reshape(batch, height * width, hidden)
        return features, self.model.box_predictor(features, feature_map)


class ZeroShotObjectDetection(ForwardTask):
    name = "zero-shot-object-detection"
    pads = False
    length_unit = "image patches"

    @classmethod
    def serves(cls, model: torch.nn.Module) -> bool:
        return getattr(model.config, "model_type", None) in MODEL_TYPES

    def __init__(self, reference):
        super().__init__(reference)
        self.image_processor = reference.image_processor
        self._head = ImageHead(self.model)
        self._base = getattr(self.model, self.config.model_type)
        self._text_cache: LabelCache[tuple[torch.Tensor, torch.Tensor]] = LabelCache()

    @property
    def forward_module(self) -> torch.nn.Module:
        return self._head

    @property
    def max_length(self) -> int:
        # images are resized by the processor; no item is ever too long
        return 1 << 30

    @property
    def pad_values(self) -> dict[str, int]:
        return {}  # images are stacked unpadded

    def is_single(self, inputs: Any) -> bool:
        return isinstance(inputs, (str, Image.Image, dict))

    def normalize_call(self, inputs: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
        if len(args) == 1 and "candidate_labels" not in kwargs:
            kwargs["candidate_labels"] = args[0]
        elif args:
            raise TypeError(f"{self.name} takes (images, candidate_labels), got extra {args!r:.80}")
        if "text_queries" in kwargs:
            kwargs["candidate_labels"] = kwargs.pop("text_queries")
        labels = kwargs.get("candidate_labels")
        if isinstance(inputs, (str, Image.Image)):
            return {"image": inputs, "candidate_labels": kwargs.pop("candidate_labels", None)}
        if isinstance(inputs, (list, tuple)) and inputs and valid_images(inputs):
            kwargs.pop("candidate_labels", None)
            if isinstance(labels, str) or (
                isinstance(labels, (list, tuple)) and all(isinstance(x, str) for x in labels)
            ):
                labels = [labels] * len(inputs)
            elif not isinstance(labels, (list, tuple)) or not all(
                isinstance(per, (list, tuple)) and all(isinstance(x, str) for x in per)
                for per in labels
            ):
                raise ValueError(
                    "candidate_labels must be a string, a flat list of strings, or per-image "
                    f"label lists, got {labels!r:.80}"
                )
            elif len(labels) != len(inputs):
                raise ValueError(
                    f"Got {len(inputs)} images but {len(labels)} candidate label lists."
                )
            return [{"image": i, "candidate_labels": per} for i, per in zip(inputs, labels)]
        return inputs

    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        reject_unknown(self.name, kwargs, {"candidate_labels", "threshold", "top_k", "timeout"})
        threshold = kwargs.get("threshold", 0.1)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise TypeError(f"threshold must be a number, got {threshold!r}")
        top_k = kwargs.get("top_k")
        if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool)):
            raise TypeError(f"top_k must be an int or None, got {top_k!r}")
        pre = {"labels": kwargs.get("candidate_labels"), "timeout": kwargs.get("timeout")}
        return Params(preprocess=pre, postprocess={"threshold": threshold, "top_k": top_k})

    def preprocess(self, item: Any, params: Params) -> list[Features]:
        if isinstance(item, dict):
            if "image" not in item:
                raise ValueError(f"a dict input needs an 'image' key, got keys {sorted(item)}")
            image, labels = item["image"], item.get("candidate_labels")
        else:
            image, labels = item, params.preprocess["labels"]
        labels = _label_tuple(labels)
        image = load_image(image, timeout=params.preprocess["timeout"])
        pixels = self.image_processor(image, return_tensors="pt")["pixel_values"][0]
        pixels = pixels.to(self.model.dtype)
        queries, mask = self.text_embeddings(labels)
        patch = self.config.vision_config.patch_size
        patches = (pixels.shape[-2] // patch) * (pixels.shape[-1] // patch)
        return [
            Features(
                {"pixel_values": pixels, "query_embeds": queries, "query_mask": mask},
                context={"labels": labels, "size": (image.height, image.width)},
                group=(tuple(pixels.shape), len(labels)),
                size=patches,
            )
        ]

    def text_embeddings(self, labels: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Each label's query embedding (on the host) and whether it is a real query.

        Labels are encoded one at a time, unpadded, as the reference encodes them."""
        return self._text_cache.get(labels, lambda: self._encode(labels))

    def _encode(self, labels: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        embeds, mask = [], []
        with torch.inference_mode():
            for label in labels:
                encoded = self.tokenizer(label, return_tensors="pt").to(self.model.device)
                pooled = self._base.get_text_features(**encoded).pooler_output
                embeds.append(pooled / pooled.norm(p=2, dim=-1, keepdim=True))
                mask.append(encoded["input_ids"][:, 0] > 0)
        return torch.cat(embeds).cpu(), torch.cat(mask).cpu()

    def forward_inputs(self, batch: dict[str, torch.Tensor], call: dict) -> dict:
        # each item's label queries are read by reduce, not by the image tower
        return {k: v for k, v in batch.items() if k not in ("query_embeds", "query_mask")}

    def reduce(self, outputs: Any, inputs: dict[str, torch.Tensor], params: Params) -> dict:
        """Patch features and boxes of a batch, with its label queries, to per-label logits."""
        features, boxes = outputs
        queries = inputs["query_embeds"].to(features.dtype)
        logits = self.model.class_predictor(features, queries, inputs["query_mask"])[0]
        return {"logits": logits.float(), "boxes": boxes.float()}

    def postprocess(self, item: Any, features: list[Features], rows: list[Row], params: Params):
        labels = features[0].context["labels"]
        logits = torch.from_numpy(rows[0]["logits"]).T[:, :, None]  # one batch entry per label
        boxes = torch.from_numpy(rows[0]["boxes"]).expand(len(labels), -1, -1)
        sizes = torch.tensor([features[0].context["size"]] * len(labels), dtype=torch.int32)
        detections = self.image_processor.post_process_object_detection(
            outputs=SimpleNamespace(logits=logits, pred_boxes=boxes),
            threshold=params.postprocess["threshold"],
            target_sizes=sizes,
        )
        results = []
        for label, found in zip(labels, detections):
            for index in found["scores"].nonzero():
                xmin, ymin, xmax, ymax = found["boxes"][index][0].int().tolist()
                box = {"xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax}
                results.append({"score": found["scores"][index].item(), "label": label, "box": box})
        results.sort(key=lambda result: result["score"], reverse=True)
        top_k = params.postprocess["top_k"]
        return results[:top_k] if top_k else results


def _label_tuple(labels: Any) -> tuple[str, ...]:
    if labels is None:
        raise ValueError("zero-shot-object-detection needs candidate_labels")
    if isinstance(labels, str):
        labels = labels.split(",")
    if not isinstance(labels, (list, tuple)) or not all(isinstance(x, str) for x in labels):
        raise TypeError(
            f"candidate_labels must be a string or a list of strings, got {labels!r:.80}"
        )
    if not labels:
        raise ValueError("zero-shot-object-detection needs at least one candidate label, got none")
    return tuple(labels)
