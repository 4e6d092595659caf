"""Tiny VITS text-to-speech models (``pipejit.bench.tts_model``'s tiny size) with its
character tokenizer, saved to folders that both pipelines load.

The noise scales are 0 unless asked, so synthesis is deterministic and parity exact
within float tolerance. One speaker: the stochastic duration predictor; several
speakers: the plain one (``speaker_id`` through ``forward_params``).
"""

from __future__ import annotations

from pathlib import Path

from pipejit.bench.tts_model import CHARACTERS, build_tokenizer, vits

__all__ = ["CHARACTERS", "build_tokenizer", "build_vits_folder"]


def build_vits_folder(
    folder: Path, *, speakers: int = 1, seed: int = 0, noise_scale: float = 0.0
) -> Path:
    vits(
        folder,
        tiny=True,
        seed=seed,
        use_stochastic_duration_prediction=speakers == 1,
        num_speakers=speakers,
        speaker_embedding_size=8 if speakers > 1 else 0,
        noise_scale=noise_scale,
    )
    return folder
