"""mask-generation: SAM prompted by a grid of points, masks filtered and de-duplicated.

Each crop of an image is one model item: the engine batches crops of many
images through module ``"encoder"`` (the image encoder, the expensive part, once
per crop), then ``run`` decodes the crop's point grid ``points_per_batch`` points
at a time through module ``"decoder"`` (prompt encoder and mask decoder, eager: the
point count varies), for all crops of the batch at once, and filters the masks
with the image processor's own functions. Each crop's filtered masks (run-length
encoded, as the reference keeps them) are its host row; ``postprocess`` collects an
image's crops, suppresses duplicates across crops (box NMS) and formats the
reference's output. Filtering reads masks on the host, so nothing here is captured.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from pipejit.contract import Features, Module, Params, Row, Steps, StepTask
from pipejit.tasks.base import reject_unknown
from pipejit.tasks.image_inputs import load_image

PREPROCESS = {
    "points_per_batch": 64,
    "crops_n_layers": 0,
    "crop_overlap_ratio": 512 / 1500,
    "points_per_crop": 32,
    "crop_n_points_downscale_factor": 1,
    "timeout": None,
}
FILTER = {
    "pred_iou_thresh": 0.88,
    "stability_score_thresh": 0.95,
    "mask_threshold": 0,
    "stability_score_offset": 1,
}
POSTPROCESS = {"crops_nms_thresh": 0.7, "output_rle_mask": False, "output_bboxes_mask": False}


class ImageEncoder(torch.nn.Module):
    """The per-batch module: crops' pixels to SAM image embeddings."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.get_image_embeddings(pixel_values)


class PromptDecoder(torch.nn.Module):
    """The per-chunk module: image embeddings and prompt points to masks and IoU scores."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(
        self,
        image_embeddings: torch.Tensor,
        input_points: torch.Tensor,
        input_labels: torch.Tensor,
    ) -> Any:
        return self.model(
            image_embeddings=image_embeddings, input_points=input_points, input_labels=input_labels
        )


class MaskGeneration(StepTask):
    name = "mask-generation"
    pads = False
    length_unit = "image patches"

    @classmethod
    def serves(cls, model: torch.nn.Module) -> bool:
        return getattr(model.config, "model_type", None) == "sam"

    def __init__(self, reference):
        super().__init__(reference)
        self.image_processor = reference.image_processor

    def modules(self) -> dict[str, Module]:
        return {
            "encoder": Module(ImageEncoder(self.model), dynamic_dims=(0,)),
            "decoder": Module(PromptDecoder(self.model), compile=False),
        }

    @property
    def max_length(self) -> int:
        return 1 << 30  # images are resized by the processor; no item is too long

    @property
    def pad_values(self) -> dict[str, int]:
        return {}  # crops are stacked unpadded

    def is_single(self, inputs: Any) -> bool:
        return isinstance(inputs, (str, Image.Image))

    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        reject_unknown(self.name, kwargs, set(PREPROCESS) | set(FILTER) | set(POSTPROCESS))
        pre = {k: kwargs.get(k, v) for k, v in PREPROCESS.items()}
        batch = pre["points_per_batch"]
        if batch is not None and (not isinstance(batch, int) or batch <= 0):
            raise ValueError(
                "points_per_batch must be a positive int (or None for all points at once), "
                f"got {batch!r}"
            )
        pre.update({k: kwargs.get(k, v) for k, v in FILTER.items()})
        post = {k: kwargs.get(k, v) for k, v in POSTPROCESS.items()}
        return Params(preprocess=pre, postprocess=post)

    def preprocess(self, item: Any, params: Params) -> list[Features]:
        p = params.preprocess
        image = load_image(item, timeout=p["timeout"])
        size = self.image_processor.size
        target = size.get("longest_edge", size.get("height"))
        crop_boxes, points, cropped, labels = self.image_processor.generate_crop_boxes(
            image,
            target,
            p["crops_n_layers"],
            p["crop_overlap_ratio"],
            p["points_per_crop"],
            p["crop_n_points_downscale_factor"],
        )
        processed = self.image_processor(images=cropped, return_tensors="pt")
        pixels = processed["pixel_values"].to(self.model.dtype)
        full_size = processed["original_sizes"][0]
        patch = self.config.vision_config.patch_size
        patches = (pixels.shape[-2] // patch) * (pixels.shape[-1] // patch)
        return [
            Features(
                {
                    "pixel_values": pixels[c],
                    "input_points": points[0, :, c : c + 1, :],
                    "input_labels": labels[0, :, c : c + 1],
                    "crop_box": crop_boxes[c],
                    "original_size": processed["original_sizes"][c],
                    "reshaped_size": processed["reshaped_input_sizes"][c],
                    "full_size": full_size,
                },
                group=(tuple(pixels.shape[1:]), points.shape[1]),
                size=patches,
            )
            for c in range(len(pixels))
        ]

    def run(self, steps: Steps, inputs: dict[str, torch.Tensor], params: Params) -> list[Row]:
        """Encode the crops, decode each crop's points in chunks and filter the masks:
        one host row per crop (its run-length encoded masks, scores and boxes)."""
        embeddings = steps.forward("encoder", {"pixel_values": inputs["pixel_values"]})
        p = params.preprocess
        points, labels = inputs["input_points"], inputs["input_labels"]
        count = points.shape[1]
        step = p["points_per_batch"] or count
        found: list[tuple[list, list, list]] = [([], [], []) for _ in range(len(points))]
        for start in range(0, count, step):
            decoded = steps.forward(
                "decoder",
                {
                    "image_embeddings": embeddings,
                    "input_points": points[:, start : start + step],
                    "input_labels": labels[:, start : start + step],
                },
            )
            for row, (masks, scores, boxes) in enumerate(found):
                kept = self._filter(decoded, row, inputs, p)
                masks.extend(kept[0])
                scores.append(kept[1])
                boxes.append(kept[2])
        return [
            {"masks": masks, "scores": torch.cat(scores).cpu(), "boxes": torch.cat(boxes).cpu()}
            for masks, scores, boxes in found
        ]

    def _filter(self, decoded: Any, row: int, inputs: dict[str, torch.Tensor], p: dict) -> tuple:
        masks = self.image_processor.post_process_masks(
            decoded.pred_masks[row : row + 1],
            [inputs["original_size"][row].tolist()],
            mask_threshold=p["mask_threshold"],
            reshaped_input_sizes=[inputs["reshaped_size"][row].tolist()],
            binarize=False,
        )
        return self.image_processor.filter_masks(
            masks[0],
            decoded.iou_scores[row],
            inputs["full_size"][row].tolist(),
            inputs["crop_box"][row],
            p["pred_iou_thresh"],
            p["stability_score_thresh"],
            p["mask_threshold"],
            p["stability_score_offset"],
        )

    def postprocess(self, item: Any, features: list[Features], rows: list[Row], params: Params):
        masks, scores, boxes = [], [], []
        for row in rows:
            masks.extend(row["masks"])
            scores.append(row["scores"])
            boxes.append(row["boxes"])
        scores, boxes = torch.cat(scores), torch.cat(boxes)
        keep = box_nms(boxes.float(), scores, params.postprocess["crops_nms_thresh"])
        rle = [masks[i] for i in keep.tolist()]
        output: dict[str, Any] = {
            "masks": [rle_to_mask(r) for r in rle],
            "scores": scores[keep],
        }
        if params.postprocess["output_rle_mask"]:
            output["rle_mask"] = rle
        if params.postprocess["output_bboxes_mask"]:
            output["bounding_boxes"] = boxes[keep]
        return output


def box_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices of the boxes (x0, y0, x1, y1) kept by greedy NMS, by decreasing score."""
    order = scores.argsort(descending=True, stable=True)
    boxes = boxes[order]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        top_left = torch.maximum(boxes[i, :2], boxes[i + 1 :, :2])
        bottom_right = torch.minimum(boxes[i, 2:], boxes[i + 1 :, 2:])
        inter = (bottom_right - top_left).clamp(min=0).prod(dim=1)
        iou = inter / (areas[i] + areas[i + 1 :] - inter)
        suppressed[i + 1 :] |= iou > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long)]


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """A column-major run-length encoding (counts start with a run of zeros) to a bool mask."""
    height, width = rle["size"]
    flat = np.zeros(height * width, dtype=bool)
    position, value = 0, False
    for run in rle["counts"]:
        flat[position : position + run] = value
        position += run
        value = not value
    return flat.reshape(width, height).T
