"""A tiny LLaVA-like vision-language model (CLIP vision tower, Llama text model)
with its processor, built offline and saved to a folder both pipelines load.

LLaVA is the simplest family whose processor builds offline: a CLIP image
processor (PIL backend), the Llama-like BPE tokenizer of
``tests/generation_models.py`` with an ``<image>`` token added, and a chat
template that places each image of a message's content as ``<image>``. Every
image becomes the same number of image tokens (a fixed 30x30 crop, 3x3 patches).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import (
    AutoTokenizer,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from tests.generation_models import build_llama_tokenizer, save_widened

IMAGE_SIZE = 30
PATCH_SIZE = 10
CHAT_TEMPLATE = (
    "<s>{% for message in messages %}<|{{ message['role'] }}|>"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if not loop.last or not continue_final_message %}<|end|>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_llava_folder(folder: Path) -> Path:
    """Save a tiny LLaVA-like model and its processor to ``folder``.

    Weights are drawn wide (std 0.3) so greedy decoding is far from ties and the
    image changes what is generated.
    """
    folder.mkdir(parents=True, exist_ok=True)
    build_llama_tokenizer(folder)
    # batched reference calls (a list of texts in one input) pad as generation needs
    tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(folder)
    vision = CLIPVisionConfig(
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        projection_dim=16,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
    )
    torch.manual_seed(0)
    return save_widened(LlavaForConditionalGeneration(config), tokenizer, folder)


def make_image(seed: int, size: tuple[int, int] = (40, 32)) -> Image.Image:
    """A random RGB image, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)
