"""Tiny CLIP, OWL-ViT, SAM and VideoMAE models with their processors, built offline.

Each builder saves a model and what its transformers pipeline loads beside it
(tokenizer, image processor) into a folder, so that ``pipejit.pipeline`` and
``transformers.pipeline`` load identical weights through the real loading code.
Also: small test images and a short video file written with PyAV.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPTokenizer,
    Owlv2Config,
    Owlv2ForObjectDetection,
    Owlv2ImageProcessor,
    OwlViTConfig,
    OwlViTForObjectDetection,
    OwlViTImageProcessor,
    SamConfig,
    SamImageProcessor,
    SamModel,
    VideoMAEConfig,
    VideoMAEForVideoClassification,
    VideoMAEImageProcessor,
)

from pipejit.bench.vision_models import TEXT_POSITIONS, build_clip_tokenizer

VIDEO_LABELS = ["archery", "bowling", "cooking", "dancing", "juggling", "rowing"]


def _text_config(tokenizer: CLIPTokenizer) -> dict:
    return dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=TEXT_POSITIONS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _vision_config(image_size: int, patch_size: int = 8) -> dict:
    return dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=image_size,
        patch_size=patch_size,
    )


def build_clip(folder: Path) -> None:
    tokenizer = build_clip_tokenizer(folder)
    config = CLIPConfig(
        text_config=_text_config(tokenizer),
        vision_config=_vision_config(32),
        projection_dim=16,
        logit_scale_init_value=2.0,
    )
    CLIPModel(config).eval().save_pretrained(folder)
    CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(folder)


def _build_detector(folder: Path, config_class, model_class, processor) -> None:
    tokenizer = build_clip_tokenizer(folder)
    config = config_class(
        text_config=_text_config(tokenizer),
        vision_config=_vision_config(32),
        projection_dim=32,
    )
    model = model_class(config).eval()
    with torch.no_grad():  # spread the box head so that boxes differ in size and place
        for layer in (model.box_head.dense0, model.box_head.dense1, model.box_head.dense2):
            layer.weight.normal_(0, 0.3)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


def build_owlvit(folder: Path) -> None:
    processor = OwlViTImageProcessor(
        size={"height": 32, "width": 32}, crop_size={"height": 32, "width": 32}
    )
    _build_detector(folder, OwlViTConfig, OwlViTForObjectDetection, processor)


def build_owlv2(folder: Path) -> None:
    processor = Owlv2ImageProcessor(size={"height": 32, "width": 32})
    _build_detector(folder, Owlv2Config, Owlv2ForObjectDetection, processor)


def build_sam(folder: Path) -> None:
    config = SamConfig(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=64,
            patch_size=8,
            output_channels=16,
            window_size=4,
            global_attn_indexes=[1],
            num_pos_feats=8,
            mlp_dim=64,
        ),
        prompt_encoder_config=dict(
            hidden_size=16, image_size=64, patch_size=8, mask_input_channels=4
        ),
        mask_decoder_config=dict(
            hidden_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            mlp_dim=32,
            iou_head_hidden_dim=16,
        ),
    )
    torch.manual_seed(0)
    model = SamModel(config).eval()
    with torch.no_grad():  # larger weights: masks of varied shapes and scores
        for param in model.parameters():
            if param.dim() >= 2:
                param.normal_(0, 0.2)
    model.save_pretrained(folder)
    SamImageProcessor(
        size={"longest_edge": 64}, pad_size={"height": 64, "width": 64}
    ).save_pretrained(folder)


def build_videomae(folder: Path) -> None:
    config = VideoMAEConfig(
        image_size=32,
        patch_size=8,
        num_frames=4,
        tubelet_size=2,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        id2label=dict(enumerate(VIDEO_LABELS)),
        label2id={name: i for i, name in enumerate(VIDEO_LABELS)},
    )
    torch.manual_seed(0)
    model = VideoMAEForVideoClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.normal_(0, 0.5)
    model.save_pretrained(folder)
    VideoMAEImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(folder)


BUILDERS: dict[str, Callable[[Path], None]] = {
    "clip": build_clip,
    "owlvit": build_owlvit,
    "owlv2": build_owlv2,
    "sam": build_sam,
    "videomae": build_videomae,
}


def build_vision_folder(kind: str, folder: Path, seed: int = 0) -> Path:
    """Save the tiny model ``kind`` (a key of ``BUILDERS``) and its processors in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    BUILDERS[kind](folder)
    return folder


def images(count: int, seed: int = 0, modes: tuple[str, ...] = ("RGB",)) -> list[Image.Image]:
    """Random images of mixed sizes (16 to 80 pixels a side), cycling through ``modes``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        height, width = (int(v) for v in rng.integers(16, 81, size=2))
        pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        out.append(Image.fromarray(pixels, mode="RGB").convert(modes[i % len(modes)]))
    return out


def write_video(path: Path, frames: int, seed: int = 0, size: tuple[int, int] = (48, 40)) -> Path:
    """An MPEG-4 video of ``frames`` random frames (width, height = ``size``), via PyAV."""
    import av

    rng = np.random.default_rng(seed)
    width, height = size
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for _ in range(frames):
            pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def pipeline_pair(kind: str, task: str, folder: Path, **options):
    """(transformers pipeline, eager pipejit pipeline) on the tiny ``kind`` model in ``folder``."""
    import transformers

    import pipejit

    if not (folder / "config.json").exists():
        build_vision_folder(kind, folder)
    options.setdefault("compile", False)
    reference = transformers.pipeline(task, model=str(folder))
    return reference, pipejit.pipeline(task, model=str(folder), **options)
