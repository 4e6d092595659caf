"""Zero-shot vision models for the bench: CLIP and OWL-ViT with random weights, built offline.

The mid size sits between the tests' tiny models and the base checkpoints (text
tower 4 layers of 384, vision tower 6 layers of 384); ``tiny`` is the CLI's own
smoke-test size. The tokenizer is a byte-level BPE in CLIP's format over single
bytes plus a few merges, so any English label tokenizes without a download.
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers
from tokenizers.pre_tokenizers import ByteLevel
from transformers import CLIPTokenizer

TEXT_POSITIONS = 32
MID = dict(hidden_size=384, intermediate_size=1536, num_attention_heads=6)
TINY = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4)


def build_clip_tokenizer(folder: Path) -> CLIPTokenizer:
    """A byte-level BPE tokenizer (CLIP's format) over single bytes plus a few merges."""
    symbols = sorted(ByteLevel.alphabet())
    merges = [("t", "h"), ("th", "e</w>"), ("o", "f</w>"), ("p", "h"), ("o", "t"), ("a", "t</w>")]
    merged = ["".join(pair) for pair in merges]
    vocab = list(
        dict.fromkeys(
            symbols + [s + "</w>" for s in symbols] + merged + ["<|startoftext|>", "<|endoftext|>"]
        )
    )
    tokenizer = CLIPTokenizer(
        vocab={token: i for i, token in enumerate(vocab)},
        merges=merges,
        model_max_length=TEXT_POSITIONS,
    )
    tokenizer.save_pretrained(folder)
    return tokenizer


def _towers(tokenizer: CLIPTokenizer, image_size: int, patch: int, tiny: bool) -> dict:
    size = TINY if tiny else MID
    text = dict(
        vocab_size=len(tokenizer),
        num_hidden_layers=2 if tiny else 4,
        max_position_embeddings=TEXT_POSITIONS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **size,
    )
    vision = dict(
        num_hidden_layers=2 if tiny else 6, image_size=image_size, patch_size=patch, **size
    )
    return {"text_config": text, "vision_config": vision}


def clip(folder: Path, tiny: bool = False, seed: int = 0) -> str:
    """A CLIP for zero-shot-image-classification: 224-pixel images in patches of 32."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_clip_tokenizer(folder)
    image, patch = (32, 8) if tiny else (224, 32)
    torch.manual_seed(seed)
    config = transformers.CLIPConfig(
        **_towers(tokenizer, image, patch, tiny), projection_dim=16 if tiny else 256
    )
    transformers.CLIPModel(config).eval().save_pretrained(folder)
    transformers.CLIPImageProcessor(
        size={"shortest_edge": image}, crop_size={"height": image, "width": image}
    ).save_pretrained(folder)
    return str(folder)


def owlvit(folder: Path, tiny: bool = False, seed: int = 0) -> str:
    """An OWL-ViT for zero-shot-object-detection: 384-pixel images in patches of 32."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_clip_tokenizer(folder)
    image, patch = (32, 8) if tiny else (384, 32)
    torch.manual_seed(seed)
    config = transformers.OwlViTConfig(
        **_towers(tokenizer, image, patch, tiny), projection_dim=32 if tiny else 384
    )
    model = transformers.OwlViTForObjectDetection(config).eval()
    with torch.no_grad():  # spread scores: the init gives ties at 0.5 that sort arbitrarily
        model.class_head.logit_shift.weight.normal_(0, 0.2)
        model.box_head.dense2.weight.normal_(0, 0.05)
    model.save_pretrained(folder)
    transformers.OwlViTImageProcessor(
        size={"height": image, "width": image}, crop_size={"height": image, "width": image}
    ).save_pretrained(folder)
    return str(folder)
