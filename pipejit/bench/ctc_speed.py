"""CTC speech recognition speed: transformers.pipeline and pipejit, interleaved, in one process.

A wav2vec2-base-size CTC model with random weights (the cost of the real one) and
random clips of 1-30 s; each round runs every engine and batch size once, in turn,
so that a shared CPU's drift hits all alike. Transcripts are checked against
transformers at batch 1. Run: ``python -m pipejit.bench.ctc_speed --clips 16``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers

import pipejit

VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", *"abcdefghijklmnopqrstuvwxyz'"]


def build_model(folder: Path, group_norm: bool) -> str:
    """wav2vec2-base sizes; layer norm (lv60-style) unless ``group_norm`` (base-960h-style)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(VOCAB)}))
    tokenizer = transformers.Wav2Vec2CTCTokenizer(str(folder / "vocab.json"))
    config = transformers.Wav2Vec2Config(
        vocab_size=len(VOCAB),
        feat_extract_norm="group" if group_norm else "layer",
        do_stable_layer_norm=not group_norm,
    )
    torch.manual_seed(0)
    transformers.Wav2Vec2ForCTC(config).save_pretrained(folder)
    extractor = transformers.Wav2Vec2FeatureExtractor(return_attention_mask=not group_norm)
    transformers.Wav2Vec2Processor(extractor, tokenizer).save_pretrained(folder)
    return str(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4])
    parser.add_argument("--group-norm", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    clips = [
        rng.standard_normal(int(rng.uniform(1, 30) * 16_000)).astype(np.float32) * 0.1
        for _ in range(args.clips)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_model(Path(tmp) / "w2v2", args.group_norm)
        task = "automatic-speech-recognition"
        ref = transformers.pipeline(task, model=folder)
        ours = pipejit.pipeline(task, model=folder, compile=False)
        runs = {("transformers", 1): lambda: ref(clips, batch_size=1)}
        for size in args.batch_sizes:
            runs[("transformers", size)] = lambda s=size: ref(clips, batch_size=s)
        runs[("pipejit", 1)] = lambda: ours(clips, batch_size=1)
        for size in args.batch_sizes:
            runs[("pipejit", size)] = lambda s=size: ours(clips, batch_size=s)
        runs[("pipejit", "auto")] = lambda: ours(clips)
        seconds: dict = {key: [] for key in runs}
        texts: dict = {}
        for _ in range(args.rounds):
            for key, run in runs.items():
                start = time.perf_counter()
                out = run()
                seconds[key].append(time.perf_counter() - start)
                texts[key] = [o["text"] for o in out]
    same = {key: text == texts[("transformers", 1)] for key, text in texts.items()}
    audio_s = sum(c.shape[0] for c in clips) / 16_000
    print(f"{args.clips} clips, {audio_s:.0f} s of audio, torch threads {torch.get_num_threads()}")
    for (engine, size), times in seconds.items():
        best = min(times)
        print(
            f"{engine:12s} batch {size!s:5s} {args.clips / best:6.3f} items/s "
            f"(median {statistics.median(times):.1f} s, best {best:.1f} s) "
            f"same text as transformers b1: {same[(engine, size)]}"
        )


if __name__ == "__main__":
    main()
