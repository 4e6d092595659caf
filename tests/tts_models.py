"""Tiny VITS text-to-speech models with a character tokenizer built offline from a
vocab json, saved to folders that both pipelines load.

The noise scales are 0 unless asked, so synthesis is deterministic and parity exact
within float tolerance. One speaker: the stochastic duration predictor; several
speakers: the plain one (``speaker_id`` through ``forward_params``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import VitsConfig, VitsModel, VitsTokenizer

# index 0 is the blank the tokenizer puts between characters
CHARACTERS = ["<pad>", "<unk>", " ", *"abcdefghijklmnopqrstuvwxyz", "'"]


def build_tokenizer(folder: Path) -> VitsTokenizer:
    vocab = folder / "vocab.json"
    vocab.write_text(json.dumps({c: i for i, c in enumerate(CHARACTERS)}))
    tokenizer = VitsTokenizer(str(vocab), phonemize=False, add_blank=True, normalize=True)
    tokenizer.save_pretrained(folder)
    return tokenizer


def build_vits_folder(
    folder: Path, *, speakers: int = 1, seed: int = 0, noise_scale: float = 0.0
) -> Path:
    config = VitsConfig(
        vocab_size=len(CHARACTERS),
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
        use_stochastic_duration_prediction=speakers == 1,
        num_speakers=speakers,
        speaker_embedding_size=8 if speakers > 1 else 0,
        duration_predictor_filter_channels=16,
        duration_predictor_num_flows=2,
        depth_separable_num_layers=2,
        prior_encoder_num_flows=2,
        prior_encoder_num_wavenet_layers=2,
        posterior_encoder_num_wavenet_layers=2,
        noise_scale=noise_scale,
        noise_scale_duration=0.0,
        sampling_rate=8000,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    model = VitsModel(config).eval()
    model.save_pretrained(folder)
    build_tokenizer(folder)
    return folder
