"""Whisper speech recognition speed: transformers.pipeline and pipejit, interleaved, in one process.

A whisper-tiny-size model with random weights (``pipejit.bench.whisper_model``)
and clips of 5 to 60 s, cut into 30-second chunks (``chunk_length_s=30``) by
both engines. Random weights rarely stop on their own, so both engines cap
each chunk at ``--new-tokens`` (96 by default, about what 30 s of speech
holds). Each round runs every engine in turn, so that a shared CPU's drift hits
all alike; pipejit with its defaults (on CUDA: compiled encoder and static-cache
decode step; on a CPU: eager) is warmed up first and its warmup timed apart.
Transcripts are checked against transformers at batch 1.
Run: ``python -m pipejit.bench.whisper_speed --clips 8``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers

import pipejit
from pipejit.bench import workloads
from pipejit.bench.whisper_model import whisper_asr

TASK = "automatic-speech-recognition"
SAMPLING_RATE = 16_000


def clips(count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` clips of 5 to 60 s (evenly spread, shuffled): tones and noise."""
    rng = np.random.default_rng(seed)
    seconds = rng.permutation(np.linspace(5, 60, count))
    out = []
    for duration in seconds:
        n = int(duration * SAMPLING_RATE)
        t = np.arange(n) / SAMPLING_RATE
        pitch = np.repeat(rng.uniform(100, 2000, size=n // 4000 + 1), 4000)[:n]
        wave = 0.3 * np.sin(2 * np.pi * pitch * t) + 0.05 * rng.standard_normal(n)
        out.append(wave.astype(np.float32))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=96)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tiny", action="store_true", help="a tiny model (a smoke run)")
    args = parser.parse_args()
    audio = clips(args.clips)
    call = dict(chunk_length_s=30, generate_kwargs={"max_new_tokens": args.new_tokens})
    if args.tiny:
        call["chunk_length_s"] = 10
        call["generate_kwargs"] = {"max_new_tokens": 8}
    with tempfile.TemporaryDirectory() as tmp:
        texts = workloads.sentences(2000, seed=3)
        folder = whisper_asr(Path(tmp) / "whisper", texts, tiny=args.tiny)
        ref = transformers.pipeline(TASK, model=folder, device=args.device)
        eager = pipejit.pipeline(TASK, model=folder, compile=False, device=args.device)
        compiled = pipejit.pipeline(TASK, model=folder, device=args.device)
        start = time.perf_counter()
        compiled(audio, batch_size=args.batch_size, ignore_warning=True, **call)
        warmup = time.perf_counter() - start
        size = args.batch_size
        runs = {
            ("transformers", 1): lambda: ref(audio, batch_size=1, ignore_warning=True, **call),
            ("transformers", size): lambda: ref(
                audio, batch_size=size, ignore_warning=True, **call
            ),
            ("pipejit eager", size): lambda: eager(
                audio, batch_size=size, ignore_warning=True, **call
            ),
            ("pipejit default", size): lambda: compiled(
                audio, batch_size=size, ignore_warning=True, **call
            ),
        }
        seconds: dict = {key: [] for key in runs}
        outputs: dict = {}
        for _ in range(args.rounds):
            for key, run in runs.items():
                start = time.perf_counter()
                outputs[key] = run()
                seconds[key].append(time.perf_counter() - start)
    truth = outputs[("transformers", 1)]
    audio_s = sum(c.shape[0] for c in audio) / SAMPLING_RATE
    print(
        f"{args.clips} clips, {audio_s:.0f} s of audio, chunks of {call['chunk_length_s']} s, "
        f"<= {call['generate_kwargs']['max_new_tokens']} new tokens per chunk, "
        f"torch threads {torch.get_num_threads()}, {args.device}; default warmup {warmup:.1f} s"
    )
    best_reference = min(min(seconds[k]) for k in seconds if k[0] == "transformers")
    for (engine, batch), times in seconds.items():
        best = min(times)
        print(
            f"{engine:17s} batch {batch:2d}: {args.clips / best:6.3f} clips/s, "
            f"{audio_s / best:6.1f} s of audio per s (median {statistics.median(times):.1f} s, "
            f"best {best:.1f} s), {best_reference / best:.2f}x transformers' best; "
            f"same text as transformers b1: {outputs[(engine, batch)] == truth}"
        )


if __name__ == "__main__":
    main()
