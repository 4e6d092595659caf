"""text-generation throughput on CPU: pipejit against transformers.pipeline, interleaved.

A gpt2-size decoder (12 layers, hidden 768, vocabulary 50257) with random weights
and MiniLM's real WordPiece tokenizer; no EOS, so every prompt makes exactly
``new_tokens`` tokens in both engines, and token ids come back as tensors (random
ids past the tokenizer's vocabulary cannot be decoded to text). Each round runs
every engine once, in turn; greedy outputs of all engines are checked equal.

    python -m pipejit.bench.text_generation --prompts 32 --new-tokens 64 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch
import transformers
from transformers import AutoTokenizer, GenerationConfig, GPT2Config, GPT2LMHeadModel

import pipejit
from pipejit.bench.models import minilm_folder

WORDS = "the a movie film was good bad city river people night day music story".split()


def gpt2_folder(folder: Path, seed: int = 0) -> str:
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder())
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50257)).eval()
    model.generation_config = GenerationConfig(pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def prompts(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(4, 120))) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reference-batches", default="1,8,32")
    args = parser.parse_args()
    texts = prompts(args.prompts)
    kwargs = dict(do_sample=False, max_new_tokens=args.new_tokens, return_tensors=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = gpt2_folder(Path(tmp))
        reference = transformers.pipeline("text-generation", model=folder)
        eager = pipejit.pipeline("text-generation", model=folder, compile=False)
        compiled = pipejit.pipeline("text-generation", model=folder, compile=True)
        engines = {
            f"transformers batch {b}": (reference, int(b))
            for b in args.reference_batches.split(",")
        }
        engines["pipejit eager batch 32"] = (eager, 32)
        engines["pipejit compiled batch 32"] = (compiled, 32)
        start = time.perf_counter()
        compiled(texts, batch_size=32, **kwargs)  # compile outside the timed rounds
        warmup = time.perf_counter() - start
        seconds: dict[str, list[float]] = {name: [] for name in engines}
        outputs = {}
        for _ in range(args.rounds):
            for name, (pipe, batch) in engines.items():
                start = time.perf_counter()
                outputs[name] = pipe(texts, batch_size=batch, **kwargs)
                seconds[name].append(time.perf_counter() - start)
        tokens = args.prompts * args.new_tokens
        first = outputs["transformers batch 1"]
        report = {
            "prompts": args.prompts,
            "new_tokens": args.new_tokens,
            "compile_warmup_s": round(warmup, 1),
            "tokens_per_s": {n: [round(tokens / s, 1) for s in v] for n, v in seconds.items()},
            "same_as_transformers_batch_1": {n: outputs[n] == first for n in engines},
            "torch_threads": torch.get_num_threads(),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
