"""Tiny vision models with their image processors, built offline and saved to folders.

Like ``tests/models.py``: both ``pipejit.pipeline`` and ``transformers.pipeline``
load these folders through the real loading code. The processors use PIL (no
torchvision here); the detector and the depth model keep each image's aspect
ratio, so mixed-size images give several processed shapes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import (
    DetrConfig,
    DetrForObjectDetection,
    DetrForSegmentation,
    GLPNConfig,
    GLPNForDepthEstimation,
    Mask2FormerConfig,
    Mask2FormerForUniversalSegmentation,
    ResNetConfig,
    SegformerConfig,
    SegformerForSemanticSegmentation,
    SwinConfig,
    ViTConfig,
    ViTForImageClassification,
    ViTModel,
)
from transformers.models.detr.image_processing_pil_detr import DetrImageProcessorPil
from transformers.models.glpn.image_processing_pil_glpn import GLPNImageProcessorPil
from transformers.models.mask2former.image_processing_pil_mask2former import (
    Mask2FormerImageProcessorPil,
)
from transformers.models.segformer.image_processing_pil_segformer import (
    SegformerImageProcessorPil,
)
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

CLASSES = ["cat", "dog", "bird", "car", "tree"]
# DETR predicts one extra "no object" class beyond these.
OBJECTS = ["person", "bicycle", "car", "dog"]
STUFF = ["sky", "road", "grass", "wall"]


def _labels(names: list[str]) -> dict:
    return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}


def vit_config(**overrides) -> ViTConfig:
    settings = dict(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
    )
    settings.update(overrides)
    return ViTConfig(**settings)


def detr_config(stages: int = 2, **overrides) -> DetrConfig:
    """DETR on a small ResNet; the segmentation head reads four backbone stages."""
    backbone = ResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16, 16, 16][:stages],
        depths=[1] * stages,
        out_features=[f"stage{i + 1}" for i in range(stages)] if stages > 2 else ["stage2"],
    )
    settings = dict(
        use_timm_backbone=False,
        use_pretrained_backbone=False,
        backbone_config=backbone,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        num_queries=12,
    )
    settings.update(overrides)
    return DetrConfig(**settings)


def mask2former_config(**overrides) -> Mask2FormerConfig:
    """Mask2Former on a four-stage Swin; its pixel decoder's group norms need 32 channels."""
    backbone = SwinConfig(
        image_size=64,
        patch_size=4,
        embed_dim=8,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 2, 2],
        window_size=2,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    settings = dict(
        backbone_config=backbone,
        use_pretrained_backbone=False,
        hidden_dim=32,
        mask_feature_size=32,
        feature_size=32,
        num_queries=8,
        encoder_layers=1,
        decoder_layers=2,
        num_attention_heads=2,
        dim_feedforward=32,
        encoder_feedforward_dim=32,
    )
    settings.update(overrides)
    return Mask2FormerConfig(**settings)


def _vit_processor():
    return ViTImageProcessorPil(size={"height": 32, "width": 32})


def _detr_processor():
    return DetrImageProcessorPil(size={"shortest_edge": 48, "longest_edge": 80})


BUILDERS = {
    "image-classification": (
        lambda: ViTForImageClassification(vit_config(**_labels(CLASSES))),
        _vit_processor,
    ),
    "image-feature-extraction": (lambda: ViTModel(vit_config()), _vit_processor),
    "object-detection": (
        lambda: DetrForObjectDetection(detr_config(**_labels(OBJECTS))),
        _detr_processor,
    ),
    "image-segmentation": (
        lambda: SegformerForSemanticSegmentation(
            SegformerConfig(
                num_encoder_blocks=2,
                depths=[1, 1],
                sr_ratios=[2, 1],
                hidden_sizes=[8, 16],
                num_attention_heads=[1, 2],
                patch_sizes=[7, 3],
                strides=[4, 2],
                decoder_hidden_size=16,
                **_labels(STUFF),
            )
        ),
        lambda: SegformerImageProcessorPil(size={"height": 32, "width": 32}),
    ),
    "image-segmentation-detr": (
        lambda: DetrForSegmentation(
            detr_config(
                stages=4,
                d_model=32,
                encoder_attention_heads=8,
                decoder_attention_heads=8,
                **_labels(OBJECTS + STUFF),
            )
        ),
        _detr_processor,
    ),
    "image-segmentation-mask2former": (
        lambda: Mask2FormerForUniversalSegmentation(mask2former_config(**_labels(OBJECTS + STUFF))),
        lambda: Mask2FormerImageProcessorPil(
            size={"shortest_edge": 48, "longest_edge": 80}, size_divisor=32
        ),
    ),
    "depth-estimation": (
        lambda: GLPNForDepthEstimation(
            GLPNConfig(
                num_encoder_blocks=2,
                depths=[1, 1],
                sr_ratios=[2, 1],
                hidden_sizes=[8, 16],
                num_attention_heads=[1, 2],
                patch_sizes=[7, 3],
                strides=[4, 2],
                decoder_hidden_size=16,
                head_in_index=-1,
            )
        ),
        lambda: GLPNImageProcessorPil(size_divisor=16),
    ),
}


def build_vision_folder(kind: str, folder: Path, seed: int = 0) -> Path:
    """Save a tiny model of ``kind`` (a key of ``BUILDERS``) with its image processor."""
    make_model, make_processor = BUILDERS[kind]
    torch.manual_seed(seed)
    model = make_model().eval()
    _spread_weights(model)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    make_processor().save_pretrained(folder)
    return folder


def _spread_weights(model: torch.nn.Module) -> None:
    """Larger random weights than the init's, so that labels, boxes and masks differ clearly."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if any(k in name for k in ("classifier", "class_labels", "query_position")):
                param.normal_(0, 1.0)
            elif param.dim() >= 2:
                param.normal_(0, 0.2)


def images(count: int, seed: int = 0, low: int = 20, high: int = 90) -> list[Image.Image]:
    """Random RGB images of mixed sizes (and so mixed aspect ratios), smooth enough to
    give the models structured inputs."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        height, width = (int(v) for v in rng.integers(low, high, size=2))
        coarse = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        image = Image.fromarray(coarse, mode="RGB").resize((width, height), Image.BILINEAR)
        noise = rng.integers(-20, 20, size=(height, width, 3))
        pixels = np.clip(np.asarray(image, dtype=np.int64) + noise, 0, 255).astype(np.uint8)
        out.append(Image.fromarray(pixels, mode="RGB"))
    return out


def vision_pair(kind: str, folder: Path, task: str | None = None, **options):
    """(transformers pipeline, eager pipejit pipeline) on a tiny model of ``kind`` saved in
    ``folder``; ``task`` defaults to ``kind``."""
    import transformers

    import pipejit

    build_vision_folder(kind, folder)
    task = task or kind
    options.setdefault("compile", False)
    return transformers.pipeline(task, model=str(folder)), pipejit.pipeline(
        task, model=str(folder), **options
    )


def assert_same_images(actual: Image.Image, expected: Image.Image, path: str = "image") -> None:
    """Equal PIL images: mode, size and every pixel."""
    assert isinstance(actual, Image.Image), f"{path}: expected a PIL image, got {type(actual)}"
    assert (actual.mode, actual.size) == (expected.mode, expected.size), f"{path}: mode or size"
    assert np.array_equal(np.asarray(actual), np.asarray(expected)), f"{path}: pixels differ"
