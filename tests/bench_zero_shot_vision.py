"""Items/s of transformers.pipeline and pipejit, interleaved, on mid-size random CLIP and OWL-ViT.

Run from the repository root: ``python -m tests.bench_zero_shot_vision``. Weights
are random (no hub here) at a size between the tiny test models and the base
checkpoints; outputs are checked against transformers before timing.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    OwlViTConfig,
    OwlViTForObjectDetection,
    OwlViTImageProcessor,
)

import pipejit
from tests.parity import assert_same
from tests.vision_zero_shot_models import build_clip_tokenizer, images

LABELS = ["a cat", "the dog", "a photo of a car", "mountains", "a boat", "people", "food", "sky"]


def _configs(tokenizer, image_size: int, patch: int) -> dict:
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=384,
        intermediate_size=1536,
        num_hidden_layers=4,
        num_attention_heads=6,
        max_position_embeddings=32,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = dict(
        hidden_size=384,
        intermediate_size=1536,
        num_hidden_layers=6,
        num_attention_heads=6,
        image_size=image_size,
        patch_size=patch,
    )
    return {"text_config": text, "vision_config": vision}


def build(kind: str, folder: Path) -> str:
    tokenizer = build_clip_tokenizer(folder)
    torch.manual_seed(0)
    if kind == "clip":
        CLIPModel(CLIPConfig(**_configs(tokenizer, 224, 32), projection_dim=256)).save_pretrained(
            folder
        )
        CLIPImageProcessor(
            size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}
        ).save_pretrained(folder)
    else:
        config = OwlViTConfig(**_configs(tokenizer, 384, 32), projection_dim=384)
        model = OwlViTForObjectDetection(config)
        with torch.no_grad():  # spread scores: the init gives ties at 0.5 that sort arbitrarily
            model.class_head.logit_shift.weight.normal_(0, 0.2)
            model.box_head.dense2.weight.normal_(0, 0.05)
        model.save_pretrained(folder)
        OwlViTImageProcessor(
            size={"height": 384, "width": 384}, crop_size={"height": 384, "width": 384}
        ).save_pretrained(folder)
    return str(folder)


def bench(task: str, folder: str, count: int, labels: list[str], repeats: int = 3) -> None:
    inputs = images(count, seed=1)
    reference = transformers.pipeline(task, model=folder)
    ours = pipejit.pipeline(task, model=folder, compile=False)
    assert_same(ours(inputs, candidate_labels=labels), reference(inputs, candidate_labels=labels))
    for batch_size in (1, 8):
        timings: dict[str, list[float]] = {"transformers": [], "pipejit": []}
        for _ in range(repeats):  # interleaved: the shared CPU drifts
            for name, engine in (("transformers", reference), ("pipejit", ours)):
                start = time.perf_counter()
                engine(inputs, candidate_labels=labels, batch_size=batch_size)
                timings[name].append(time.perf_counter() - start)
        rates = {name: count / statistics.median(t) for name, t in timings.items()}
        print(
            f"{task} batch_size={batch_size} images={count} labels={len(labels)}: "
            f"transformers {rates['transformers']:.1f} items/s, pipejit {rates['pipejit']:.1f} "
            f"items/s ({rates['pipejit'] / rates['transformers']:.2f}x)"
        )
        sys.stdout.flush()


def main() -> None:
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        clip = build("clip", Path(tmp) / "clip")
        bench("zero-shot-image-classification", clip, 32, LABELS)
        owl = build("owlvit", Path(tmp) / "owlvit")
        bench("zero-shot-object-detection", owl, 8, LABELS[:4])


if __name__ == "__main__":
    main()
