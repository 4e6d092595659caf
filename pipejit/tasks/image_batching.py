"""What the image tasks share: one image to one unpadded model item, grouped by shape.

Each image is loaded with ``image_inputs.load_image`` (clear errors, a URL
timeout) and then preprocessed by the reference pipeline's own ``preprocess``,
so the pixels, the dtype and the extra inputs (a DETR pixel mask, OneFormer's
task tokens) are exactly what transformers feeds its model. The processed
tensors have no length axis: items are stacked as they are, and only items of
the same processed shapes share a batch (processors that keep the aspect ratio
give several groups). Host-side values of the reference's preprocess, such as
the original image size, stay in the item's context.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from transformers.utils import ModelOutput

from pipejit.contract import Features, ForwardTask, Params, Row
from pipejit.tasks.image_inputs import load_image

# Side of the square of pixels that costs one token of the budget, when the model
# does not name a patch size (convolutional backbones, DETR, GLPN).
DEFAULT_PATCH = 16
# Keys of the reference's preprocess output that describe the image, not the model input.
CONTEXT_KEYS = ("target_size",)


class ImageTask(ForwardTask):
    """An image task: one image, one model item, its cost counted in patches."""

    pads = False
    length_unit = "patches"
    # Whether numpy arrays and tensors go to the image processor as they are
    # (image-classification); elsewhere an input must be a path, URL, base64 or PIL image.
    accepts_arrays: ClassVar[bool] = False

    def __init__(self, reference):
        super().__init__(reference)
        self.image_processor = reference.image_processor

    @property
    def max_length(self) -> int:
        # images are not truncated: any processed size runs, alone if it must
        return 1 << 40

    @property
    def pad_values(self) -> dict[str, int]:
        return {}  # items are stacked, never padded

    def dummy_features(self, length: int) -> Features:
        raise NotImplementedError(
            f"{self.name} items are images, not lengths: warm up by calling the pipeline on "
            "images of the sizes you expect"
        )

    def is_single(self, inputs: Any) -> bool:
        return isinstance(inputs, (str, Image.Image, np.ndarray, torch.Tensor))

    def load(self, item: Any, timeout: float | None) -> Any:
        """The image the reference's preprocess receives."""
        if self.accepts_arrays and isinstance(item, (np.ndarray, torch.Tensor)):
            return item
        return load_image(item, timeout=timeout)

    def preprocess(self, item: Any, params: Params) -> list[Features]:
        image = self.load(item, params.preprocess.get("timeout"))
        encoded = self.reference.preprocess(image, **params.preprocess)
        context = {key: encoded.pop(key) for key in CONTEXT_KEYS if key in encoded}
        tensors = {key: value[0] for key, value in encoded.items()}
        group = tuple((key, tuple(value.shape)) for key, value in tensors.items())
        return [Features(tensors, context=context, group=group, size=self.cost(tensors))]

    def cost(self, tensors: dict[str, torch.Tensor]) -> int:
        """An image's cost against the token budget: its processed area in patches."""
        patch = getattr(self.config, "patch_size", None)
        patch = patch if isinstance(patch, int) and patch > 0 else DEFAULT_PATCH
        pixels = tensors.get("pixel_values", next(iter(tensors.values())))
        height, width = pixels.shape[-2:]
        return max(1, (height * width) // (patch * patch))


def select_outputs(outputs: Any, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The named model outputs that exist, as host-copyable tensors (bf16 becomes fp32)."""
    chosen = {}
    for name in names:
        value = outputs.get(name) if hasattr(outputs, "get") else None
        if isinstance(value, torch.Tensor):
            chosen[name] = host_copyable(value)
    return chosen


def host_copyable(tensor: torch.Tensor) -> torch.Tensor:
    """A tensor numpy can hold: bf16 becomes fp32, other dtypes stay."""
    return tensor.float() if tensor.dtype == torch.bfloat16 else tensor


def rebuild_outputs(row: Row, features: Features, dtype: torch.dtype) -> ModelOutput:
    """One item's reduced row as the reference's model outputs for a batch of one,
    with the context (the image's size) its postprocess reads."""
    tensors = {}
    for key, value in row.items():
        tensor = torch.from_numpy(np.array(value))[None]
        tensors[key] = tensor.to(dtype) if tensor.is_floating_point() else tensor
    return ModelOutput(**tensors, **features.context)
