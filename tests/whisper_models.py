"""A tiny Whisper-like speech recognizer for the parity tests, and synthetic clips.

The model, tokenizer and feature extractor come from the bench's builder
(``pipejit.bench.whisper_model``) at its tiny size: a 10-second window and 24
decoder positions keep every test short. Both pipelines load the saved folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipejit.bench.whisper_model import whisper_asr
from tests.generation_models import _corpus

SAMPLING_RATE = 16_000
LANGUAGES = ("en", "fr", "de")


def build_whisper_folder(folder: Path, multilingual: bool = True) -> Path:
    languages = LANGUAGES if multilingual else None
    return Path(whisper_asr(folder, _corpus(), tiny=True, languages=languages))


def clip(seconds: float, seed: int) -> np.ndarray:
    """A synthetic clip: a few tones that change every half second, and noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLING_RATE)
    t = np.arange(n) / SAMPLING_RATE
    pitch = np.repeat(rng.uniform(150, 1500, size=n // 8000 + 1), 8000)[:n]
    wave = 0.5 * np.sin(2 * np.pi * pitch * t) + 0.05 * rng.standard_normal(n)
    return wave.astype(np.float32)
