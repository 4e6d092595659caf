"""VITS text-to-speech models with a character tokenizer, built offline.

``vits`` saves an mms-tts-eng-size VITS (random weights) or a tiny one, with the
noise scales at 0 so that synthesis is deterministic and parity exact within
float tolerance; keyword overrides reach the config (the tests' speaker variants).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers import VitsConfig, VitsModel, VitsTokenizer

# index 0 is the blank the tokenizer puts between characters
CHARACTERS = ["<pad>", "<unk>", " ", *"abcdefghijklmnopqrstuvwxyz", "'"]
TINY = dict(
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    window_size=2,
    ffn_dim=32,
    flow_size=8,
    spectrogram_bins=9,
    upsample_initial_channel=16,
    upsample_rates=[4, 4],
    upsample_kernel_sizes=[8, 8],
    resblock_kernel_sizes=[3, 5],
    resblock_dilation_sizes=[[1, 3], [1, 3]],
    duration_predictor_filter_channels=16,
    duration_predictor_num_flows=2,
    depth_separable_num_layers=2,
    prior_encoder_num_flows=2,
    prior_encoder_num_wavenet_layers=2,
    posterior_encoder_num_wavenet_layers=2,
    sampling_rate=8000,
)


def build_tokenizer(folder: Path) -> VitsTokenizer:
    """A character tokenizer (lower-case letters, space, apostrophe) saved to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.json"
    vocab.write_text(json.dumps({c: i for i, c in enumerate(CHARACTERS)}))
    tokenizer = VitsTokenizer(str(vocab), phonemize=False, add_blank=True, normalize=True)
    tokenizer.save_pretrained(folder)
    return tokenizer


def vits(folder: Path, tiny: bool = False, seed: int = 0, **overrides: Any) -> str:
    """A VITS (mms-tts-eng's size unless ``tiny``) and its tokenizer, saved to ``folder``."""
    settings = dict(noise_scale=0.0, noise_scale_duration=0.0, pad_token_id=0)
    config = VitsConfig(vocab_size=len(CHARACTERS), **(TINY if tiny else {}) | settings | overrides)
    torch.manual_seed(seed)
    VitsModel(config).eval().save_pretrained(folder)
    build_tokenizer(Path(folder))
    return str(folder)
