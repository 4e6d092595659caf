"""Throughput of text-to-audio on a VITS of mms-tts-eng's size (random weights): seconds
of audio made per second, transformers.pipeline against pipejit, runs interleaved.

    /work/main/.venv/bin/python -m tests.bench_text_to_audio [--texts 8] [--rounds 1] [--compiled]

transformers' batch_size > 1 pads every waveform of a batch to the longest, so its
batch-1 run is the one whose outputs pipejit matches; it is timed at batch 8 too.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import transformers
from transformers import VitsConfig, VitsModel

import pipejit
from tests.tts_models import CHARACTERS, build_tokenizer

SENTENCE = "the quick brown fox jumps over the lazy dog while a zebra eats hay at noon "


def build_folder(folder: Path) -> str:
    config = VitsConfig(
        vocab_size=len(CHARACTERS), noise_scale=0.0, noise_scale_duration=0.0, pad_token_id=0
    )
    torch.manual_seed(0)
    VitsModel(config).eval().save_pretrained(folder)
    build_tokenizer(folder)
    return str(folder)


def texts(count: int) -> list[str]:
    """Texts of 8 to 48 characters, in a shuffled order of lengths."""
    lengths = [8 + (i * 17) % 41 for i in range(count)]
    return [(SENTENCE * 2)[:n].strip() for n in lengths]


def timed(run, inputs) -> float:
    start = time.perf_counter()
    run(inputs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--compiled", action="store_true", help="also time torch.compile")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    with tempfile.TemporaryDirectory() as root:
        folder = build_folder(Path(root))
        reference = transformers.pipeline("text-to-audio", model=folder)
        eager = pipejit.pipeline("text-to-audio", model=folder, compile=False)
        inputs = texts(args.texts)
        runs = {
            "transformers bs=1": lambda x: [reference(t) for t in x],
            "transformers bs=8 (padded audio)": lambda x: reference(x, batch_size=8),
            "pipejit eager bs=1": lambda x: eager(x, batch_size=1),
            "pipejit eager bs=8": lambda x: eager(x, batch_size=8),
        }
        if args.compiled:
            compiled = pipejit.pipeline("text-to-audio", model=folder)
            start = time.perf_counter()
            compiled(inputs, batch_size=8)  # compiles every bucket this workload meets
            print(f"compiled warmup {time.perf_counter() - start:.1f} s")
            runs["pipejit compiled bs=8"] = lambda x: compiled(x, batch_size=8)
        # the audio the texts make (batch 1), the same for every run
        audio = sum(o["audio"].size / o["sampling_rate"] for o in eager(inputs, batch_size=1))
        print(f"{len(inputs)} texts, {audio:.1f} s of audio; seconds of audio per second:")
        rates = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, run in runs.items():
                rates[name].append(audio / timed(run, inputs))
        for name, values in rates.items():
            print(f"{name:34s} " + " ".join(f"{v:7.2f}" for v in values))


if __name__ == "__main__":
    main()
