"""A tiny Whisper-like speech recognizer, built offline and saved to a folder both pipelines load.

The tokenizer is a byte-level BPE trained on the test word list, with Whisper's
special tokens in Whisper's order (start of transcript, a few languages, the
tasks, no-timestamps) and the timestamp tokens after them, so that
transformers' Whisper decoding (init tokens, timestamp rules, ``_decode_asr``)
runs on it unchanged. The feature extractor uses a 10-second window to keep the
encoder small; the generation config is what a Whisper checkpoint ships.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import (
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperTokenizer,
)

from tests.generation_models import _corpus

SAMPLING_RATE = 16_000
WINDOW_SECONDS = 10
LANGUAGES = ("en", "fr", "de")
TASKS = ("translate", "transcribe")
# one timestamp token per 20 ms of the window, as Whisper's 0.02 s precision
TIMESTAMPS = [f"<|{i * 0.02:.2f}|>" for i in range(WINDOW_SECONDS * 50 + 1)]


def _specials() -> list[str]:
    return [
        "<|endoftext|>",
        "<|startoftranscript|>",
        *(f"<|{code}|>" for code in LANGUAGES),
        *(f"<|{task}|>" for task in TASKS),
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nocaptions|>",
        "<|notimestamps|>",
    ]


def build_tokenizer(folder: Path) -> WhisperTokenizer:
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(_corpus(), trainer)
    saved = raw.model.save(str(folder))
    vocab = json.loads(Path(saved[0]).read_text())
    merges = [
        tuple(line.split(" "))
        for line in Path(saved[1]).read_text().splitlines()
        if line and not line.startswith("#")
    ]
    for path in saved:
        Path(path).unlink()
    tokenizer = WhisperTokenizer(
        vocab=vocab, merges=merges, pad_token="<|endoftext|>", model_max_length=448
    )
    # registered as special so that timestamp tokens start right after <|notimestamps|>
    tokenizer.add_special_tokens({"additional_special_tokens": _specials()[1:]})
    tokenizer.add_tokens(TIMESTAMPS)
    tokenizer.save_pretrained(folder)
    return tokenizer


def generation_config(tokenizer: WhisperTokenizer, multilingual: bool) -> GenerationConfig:
    ids = tokenizer.convert_tokens_to_ids
    settings = dict(
        decoder_start_token_id=ids("<|startoftranscript|>"),
        eos_token_id=ids("<|endoftext|>"),
        pad_token_id=ids("<|endoftext|>"),
        bos_token_id=ids("<|endoftext|>"),
        no_timestamps_token_id=ids("<|notimestamps|>"),
        prev_sot_token_id=ids("<|startofprev|>"),
        max_length=24,  # as Whisper checkpoints: the decoder's positions
        num_beams=1,
        max_initial_timestamp_index=50,
        # as Whisper: no transcript starts with a bare space or ends at once
        begin_suppress_tokens=[ids("\u0120"), ids("<|endoftext|>")],
        suppress_tokens=[ids("<|startoflm|>"), ids("<|nocaptions|>")],
        is_multilingual=multilingual,
        alignment_heads=[[0, 0], [1, 1]],
    )
    if multilingual:
        settings["lang_to_id"] = {f"<|{code}|>": ids(f"<|{code}|>") for code in LANGUAGES}
        settings["task_to_id"] = {task: ids(f"<|{task}|>") for task in TASKS}
    return GenerationConfig(**settings)


def build_whisper_folder(folder: Path, multilingual: bool = True) -> Path:
    """Save a tiny Whisper (2+2 layers, width 32) with its tokenizer and feature extractor.

    The output projection is scaled up so that greedy decoding is far from ties and
    the tokens vary with the audio; EOS gets a bias so that transcripts end early.
    """
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(folder)
    extractor = WhisperFeatureExtractor(
        feature_size=16, sampling_rate=SAMPLING_RATE, chunk_length=WINDOW_SECONDS
    )
    extractor.save_pretrained(folder)
    frames = extractor.nb_max_frames
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=16,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=frames // 2,
        max_target_positions=24,
        decoder_start_token_id=tokenizer.convert_tokens_to_ids("<|startoftranscript|>"),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        begin_suppress_tokens=None,
        suppress_tokens=None,
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() > 1 and "embed_positions" not in name:
                param.normal_(0.0, 0.3)
    model.generation_config = generation_config(tokenizer, multilingual)
    model.save_pretrained(folder)
    return folder


def clip(seconds: float, seed: int) -> np.ndarray:
    """A synthetic clip: a few tones that change every half second, and noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLING_RATE)
    t = np.arange(n) / SAMPLING_RATE
    pitch = np.repeat(rng.uniform(150, 1500, size=n // 8000 + 1), 8000)[:n]
    wave = 0.5 * np.sin(2 * np.pi * pitch * t) + 0.05 * rng.standard_normal(n)
    return wave.astype(np.float32)
