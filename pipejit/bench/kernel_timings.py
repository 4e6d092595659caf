"""Timings of the post-processing kernels: Triton, their torch references, and transformers.

``time_kernels`` times each kernel family at each (batch, row length, dtype) with
every implementation that applies, round-robin so that drift hits all alike:
``"triton"`` (CUDA only: on a CPU Triton only interprets), ``"torch"`` (the
reference, what ``impl="auto"`` runs off CUDA) and ``"transformers"`` (what a
transformers pipeline does for the same step, item by item on the host). Each
record holds the median milliseconds and the achieved GB/s over the step's
essential traffic (its input read once, its output written once).

What a "row" is, per kernel: softmax_topk and sampling, one row of ``row_length``
classes (k = 5, fill-mask's default; sampling with top-k 50, top-p 0.9,
temperature 0.7, repetition penalty 1.1 over 64 held tokens); token_scores, 32
tokens of ``row_length`` labels per item; masked_pool, ``row_length`` tokens of 384
features per item (mean pooling, L2-normalised); zero_shot, ``row_length``
candidate labels per premise (3 NLI logits each, softmax across the labels).
Shapes past ``MAX_ELEMENTS`` input elements are skipped.

``time_gather_before_head`` measures fill-mask with and without gathering the
mask rows before the LM head, interleaved, on a bert-base-size masked LM.

``python -m pipejit.bench.kernel_timings`` prints both as small tables.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from pipejit.kernels.pooling import masked_pool
from pipejit.kernels.sampling import sample
from pipejit.kernels.softmax_topk import softmax_topk
from pipejit.kernels.token_scores import token_scores
from pipejit.kernels.zero_shot import zero_shot_scores

MAX_ELEMENTS = 1 << 26
TOP_K = 5
TOKENS_PER_ITEM = 32
HIDDEN = 384
HELD_TOKENS = 64


def time_kernels(
    device: str = "cpu",
    batch_sizes: Iterable[int] = (1, 32, 256),
    row_lengths: Iterable[int] = (2, 1000, 30522, 250002),
    dtypes: Iterable[str] = ("float32",),
    *,
    budget_s: float = 0.3,
) -> list[dict]:
    """One record per (kernel, impl, batch, row length, dtype): median ms and GB/s."""
    torch_device = torch.device(device)
    impls = ["triton", "torch", "transformers"] if torch_device.type == "cuda" else None
    impls = impls or ["torch", "transformers"]
    records = []
    for dtype_name in dtypes:
        dtype = getattr(torch, dtype_name)
        for row_length in row_lengths:
            for batch in batch_sizes:
                for kernel, build in CASES.items():
                    case = build(batch, row_length, dtype, torch_device)
                    if case is None:
                        continue
                    steps, traffic = case
                    runs = {impl: steps[impl] for impl in impls if impl in steps}
                    for impl, ms in _interleaved(runs, torch_device, budget_s).items():
                        records.append(
                            {
                                "kernel": kernel,
                                "impl": impl,
                                "batch": batch,
                                "row_length": row_length,
                                "dtype": dtype_name,
                                "ms": ms,
                                "gb_per_s": traffic / (ms * 1e-3) / 1e9,
                            }
                        )
    return records


def _interleaved(
    steps: dict[str, Callable[[], object]], device: torch.device, budget_s: float
) -> dict[str, float]:
    """Median ms of each step, run in turn (one warmup each, then at least 3 rounds
    and until ``budget_s`` has passed, at most 50 rounds)."""
    for step in steps.values():
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    start = time.perf_counter()
    rounds = 0
    while rounds < 3 or (time.perf_counter() - start < budget_s and rounds < 50):
        for name, step in steps.items():
            _sync(device)
            begin = time.perf_counter()
            step()
            _sync(device)
            times[name].append((time.perf_counter() - begin) * 1e3)
        rounds += 1
    return {name: statistics.median(values) for name, values in times.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _random(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return (torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 3).to(device, dtype)


def _numpy_softmax(x: np.ndarray) -> np.ndarray:
    """transformers' pipelines' own softmax (text- and token-classification)."""
    shifted = np.exp(x - x.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def _softmax_topk_case(batch, n, dtype, device):
    if batch * n > MAX_ELEMENTS:
        return None
    x = _random((batch, n), dtype, device)
    k = min(TOP_K, n)

    def per_item():  # text-classification's postprocess: numpy softmax, then a sort
        for row in x:
            probs = _numpy_softmax(row.float().cpu().numpy())
            order = np.argsort(-probs, kind="stable")[:k]
            [(int(i), float(probs[i])) for i in order]

    steps = {
        "triton": lambda: softmax_topk(x, k, impl="triton"),
        "torch": lambda: softmax_topk(x, k, impl="torch"),
        "transformers": per_item,
    }
    return steps, x.numel() * x.element_size() + batch * k * 12


def _token_scores_case(batch, labels, dtype, device):
    rows = batch * TOKENS_PER_ITEM
    if rows * labels > MAX_ELEMENTS:
        return None
    x = _random((batch, TOKENS_PER_ITEM, labels), dtype, device)

    def per_item():  # token-classification: numpy softmax per text, argmax per token
        for item in x:
            probs = _numpy_softmax(item.float().cpu().numpy())
            [int(token.argmax()) for token in probs]

    steps = {
        "triton": lambda: token_scores(x, impl="triton"),
        "torch": lambda: token_scores(x, impl="torch"),
        "transformers": per_item,
    }
    return steps, x.numel() * x.element_size() + rows * labels * 4 + rows * 12


def _pool_case(batch, length, dtype, device):
    if batch * length * HIDDEN > MAX_ELEMENTS:
        return None
    hidden = _random((batch, length, HIDDEN), dtype, device)
    lengths = torch.randint(1, length + 1, (batch,), generator=torch.Generator().manual_seed(1))
    mask = (torch.arange(length)[None] < lengths[:, None]).long().to(device)

    def per_item():  # what a user does with feature-extraction's token vectors
        for vectors, count in zip(hidden, lengths.tolist()):
            mean = vectors[:count].float().cpu().numpy().mean(0)
            mean / max(np.linalg.norm(mean), 1e-12)

    steps = {
        "triton": lambda: masked_pool(hidden, mask, "mean", normalize=True, impl="triton"),
        "torch": lambda: masked_pool(hidden, mask, "mean", normalize=True, impl="torch"),
        "transformers": per_item,
    }
    return steps, hidden.numel() * hidden.element_size() + mask.numel() * 8 + batch * HIDDEN * 4


def _zero_shot_case(batch, labels, dtype, device):
    pairs = batch * labels
    if pairs * 3 > MAX_ELEMENTS:
        return None
    x = _random((pairs, 3), dtype, device)
    offsets = torch.arange(0, pairs + 1, labels, device=device)
    kw = {"entailment": 2, "contradiction": 0, "offsets": offsets}

    def per_item():  # zero-shot's postprocess: numpy softmax of each premise's logits
        for start in range(0, pairs, labels):
            entail = x[start : start + labels, 2].float().cpu().numpy()
            scores = np.exp(entail) / np.exp(entail).sum()
            scores.argsort()[::-1]

    steps = {
        "triton": lambda: zero_shot_scores(x, impl="triton", **kw),
        "torch": lambda: zero_shot_scores(x, impl="torch", **kw),
        "transformers": per_item,
    }
    return steps, x.numel() * x.element_size() + pairs * 4


def _sampling_case(batch, vocab, dtype, device):
    if batch * vocab > MAX_ELEMENTS:
        return None
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    x = _random((batch, vocab), dtype, device)
    held = torch.randint(0, vocab, (batch, HELD_TOKENS), device=device)
    settings = {"temperature": 0.7, "top_k": 50, "top_p": 0.9, "repetition_penalty": 1.1}
    chain = LogitsProcessorList(
        [
            RepetitionPenaltyLogitsProcessor(1.1),
            TemperatureLogitsWarper(0.7),
            TopKLogitsWarper(50),
            TopPLogitsWarper(0.9),
        ]
    )

    def generate_step():  # what generate does per step, on the whole batch
        scores = chain(held, x.float())
        torch.multinomial(scores.softmax(-1), 1)

    steps = {
        "triton": lambda: sample(x, previous_tokens=held, impl="triton", **settings),
        "torch": lambda: sample(x, previous_tokens=held, impl="torch", **settings),
        "transformers": generate_step,
    }
    return steps, x.numel() * x.element_size() + held.numel() * 8 + batch * 8


CASES = {
    "softmax_topk": _softmax_topk_case,
    "token_scores": _token_scores_case,
    "masked_pool": _pool_case,
    "zero_shot": _zero_shot_case,
    "sampling": _sampling_case,
}


def time_gather_before_head(
    device: str = "cpu", batch_size: int = 32, texts: int = 64, rounds: int = 5
) -> dict:
    """fill-mask on a bert-base-size masked LM (random weights, MiniLM's 30522-token
    vocabulary), eager, with the LM head on the mask rows only and on every row,
    the two run in turn over the same texts; median seconds per call of each."""
    import pipejit
    from pipejit.bench.workloads import sentences

    with tempfile.TemporaryDirectory() as folder:
        path = _masked_lm_folder(Path(folder))
        pipe = pipejit.pipeline("fill-mask", model=path, device=device, compile=False)
        inputs = _with_masks(sentences(texts, seed=0), pipe.tokenizer.mask_token)
        split = pipe.task.head_split
        timings: dict[str, list[float]] = {"gathered": [], "full": []}
        pipe(inputs, batch_size=batch_size)  # warm up
        for _ in range(rounds):
            for name in timings:
                pipe.task.head_split = split if name == "gathered" else None
                start = time.perf_counter()
                pipe(inputs, batch_size=batch_size)
                timings[name].append(time.perf_counter() - start)
        pipe.task.head_split = split
    gathered, full = (statistics.median(timings[name]) for name in ("gathered", "full"))
    return {
        "texts": len(inputs),
        "batch_size": batch_size,
        "gathered_s": gathered,
        "full_s": full,
        "saving": 1 - gathered / full,
        "rounds": rounds,
    }


def _masked_lm_folder(folder: Path) -> str:
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from pipejit.bench.models import BERT_BASE, minilm_folder

    tokenizer = AutoTokenizer.from_pretrained(minilm_folder())
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=tokenizer.vocab_size, **BERT_BASE)).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _with_masks(texts: list[str], mask: str) -> list[str]:
    out = []
    for i, text in enumerate(texts):
        words = text.split()
        words[i % len(words)] = mask
        out.append(" ".join(words))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-sizes", default="1,32,256")
    parser.add_argument("--row-lengths", default="2,1000,30522,250002")
    parser.add_argument("--dtypes", default="float32")
    parser.add_argument("--no-gather", action="store_true", help="skip the fill-mask gather run")
    args = parser.parse_args(argv)
    records = time_kernels(
        args.device,
        [int(b) for b in args.batch_sizes.split(",")],
        [int(n) for n in args.row_lengths.split(",")],
        args.dtypes.split(","),
    )
    print(f"{'kernel':<13} {'impl':<13} {'batch':>5} {'row':>7} {'dtype':<9} {'ms':>9} {'GB/s':>7}")
    for r in records:
        print(
            f"{r['kernel']:<13} {r['impl']:<13} {r['batch']:>5} {r['row_length']:>7} "
            f"{r['dtype']:<9} {r['ms']:>9.3f} {r['gb_per_s']:>7.2f}"
        )
    if not args.no_gather:
        g = time_gather_before_head(args.device)
        print(
            f"\nfill-mask, bert-base size, {g['texts']} texts at batch {g['batch_size']}, eager, "
            f"median of {g['rounds']} interleaved rounds: head on mask rows "
            f"{g['gathered_s']:.3f} s, on all rows {g['full_s']:.3f} s, saving {g['saving']:.0%}"
        )


if __name__ == "__main__":
    main()
