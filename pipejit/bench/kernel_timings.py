"""The ``kernels`` suite: the post-processing kernels, Triton, their torch references and
what transformers does instead.

``time_kernels`` times each kernel family at each (batch, row length, dtype) with
every implementation that applies, round-robin so that drift hits all alike:
``"triton"`` (CUDA only: on a CPU Triton only interprets), ``"torch"`` (the
reference, what ``impl="auto"`` runs off CUDA) and ``"transformers"`` (what a
transformers pipeline does for the same step, item by item on the host). Each
record holds the median milliseconds, items (rows of the batch) per second, the
achieved GB/s over the step's essential traffic (its input read once, its output
written once) and, for Triton, whether its outputs match the torch reference's
(sampling draws at random: not compared).

What a "row" is, per kernel: softmax_topk and sampling, one row of ``row_length``
classes (k = 5, fill-mask's default; sampling with top-k 50, top-p 0.9,
temperature 0.7, repetition penalty 1.1 over 64 held tokens); token_scores, 32
tokens of ``row_length`` labels per item; masked_pool, ``row_length`` tokens of 384
features per item (mean pooling, L2-normalised); zero_shot, ``row_length``
candidate labels per premise (3 NLI logits each, softmax across the labels).
Shapes past ``MAX_ELEMENTS`` input elements are skipped.

``gather_before_head`` measures fill-mask with and without gathering the mask
rows before the LM head, interleaved, on a bert-base-size masked LM.
``suite`` makes both into results: a case per kernel, settings its shapes.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipejit.bench.parity import TOLERANCE, outputs_match
from pipejit.bench.results import engine_run, settings_case
from pipejit.bench.suites import Options
from pipejit.bench.timing import interleaved
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


def suite(folder: Path, options: Options) -> list[dict[str, Any]]:
    """A case per kernel over the run's batch sizes and ``--row-lengths``, and the
    fill-mask gather (unless ``--no-gather``)."""
    records = time_kernels(
        options.device, options.batch_sizes, options.row_lengths, options.kernel_dtypes
    )
    cases = []
    for kernel in CASES:
        runs: dict[str, dict[str, dict]] = {}
        for r in records:
            if r["kernel"] == kernel:
                setting = f"{r['batch']} x {r['row_length']} {r['dtype']}"
                runs.setdefault(setting, {})[r["impl"]] = {
                    k: v for k, v in r.items() if k not in ("kernel", "impl")
                }
        if runs:
            cases.append(
                settings_case(
                    f"kernel {kernel}",
                    axis="batch x row length",
                    baseline="transformers",
                    runs=runs,
                    columns=("ms", "gb_per_s"),
                    notes=[
                        "Items/s: rows of the batch per second. transformers: what its "
                        "pipeline does for the same step; torch: pipejit's reference (off "
                        "CUDA); triton: CUDA only. Parity: Triton against torch."
                    ],
                )
            )
    if options.gather:
        cases.append(gather_before_head(options.device, folder, options.tiny, options.repeats))
    return cases


def time_kernels(
    device: str = "cpu",
    batch_sizes: Iterable[int] = (1, 32, 256),
    row_lengths: Iterable[int] = (2, 1000, 30522, 250002),
    dtypes: Iterable[str] = ("float32",),
    *,
    budget_s: float = 0.3,
) -> list[dict]:
    """One record per (kernel, impl, batch, row length, dtype): median ms, items/s,
    GB/s and parity (see the module docstring)."""
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
                    steps = {impl: steps[impl] for impl in impls if impl in steps}
                    first = {impl: step() for impl, step in steps.items()}  # warmup
                    seconds = interleaved(steps, 3, device=device, budget_s=budget_s)
                    for impl, values in seconds.items():
                        ms = statistics.median(values) * 1e3
                        run = engine_run(
                            batch,
                            values,
                            _parity(kernel, impl, first, dtype_name),
                            ms=ms,
                            gb_per_s=traffic / (ms * 1e-3) / 1e9,
                        )
                        records.append(
                            {
                                "kernel": kernel,
                                "impl": impl,
                                "batch": batch,
                                "row_length": row_length,
                                "dtype": dtype_name,
                                **run,
                            }
                        )
    return records


def _parity(kernel: str, impl: str, outputs: dict, dtype: str) -> bool | None:
    """Triton's outputs against torch's (None: not compared)."""
    if impl != "triton" or kernel == "sampling" or "torch" not in outputs:
        return None
    return outputs_match(_host(outputs["triton"]), _host(outputs["torch"]), *TOLERANCE[dtype])


def _host(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().float().cpu().numpy()
    if isinstance(value, (list, tuple)):
        return [_host(v) for v in value]
    return value


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


def gather_before_head(
    device: str, folder: Path, tiny: bool = False, rounds: int = 5, batch_size: int = 32
) -> dict[str, Any]:
    """fill-mask on a bert-base-size masked LM (random weights, MiniLM's 30522-token
    vocabulary; tiny with ``tiny``), eager, the LM head on the mask rows only and on
    every row, the two run in turn over the same texts; one case."""
    from unittest import mock

    import pipejit
    from pipejit.bench.workloads import sentences
    from pipejit.tasks import fill_mask

    path = _masked_lm_folder(folder / "masked-lm", tiny)
    pipes = {"mask rows": pipejit.pipeline("fill-mask", model=path, device=device, compile=False)}
    with mock.patch.object(fill_mask, "lm_head_split", return_value=None):  # the full forward
        pipes["all rows"] = pipejit.pipeline("fill-mask", model=path, device=device, compile=False)
    if pipes["mask rows"].task.head_split is None:
        raise RuntimeError("fill-mask found no LM head to split on this model")
    mask = pipes["mask rows"].tokenizer.mask_token
    inputs = _with_masks(sentences(16 if tiny else 64, seed=0), mask)
    outputs = {rows: pipe(inputs, batch_size=batch_size) for rows, pipe in pipes.items()}  # warmup
    steps = {rows: lambda p=pipe: p(inputs, batch_size=batch_size) for rows, pipe in pipes.items()}
    seconds = interleaved(steps, rounds, device=device)
    parity = {
        "all rows": True,
        "mask rows": outputs_match(outputs["mask rows"], outputs["all rows"]),
    }
    return settings_case(
        f"fill-mask {'tiny' if tiny else 'bert-base'}: LM head on mask rows or all rows",
        task="fill-mask",
        axis="batch",
        baseline="all rows",
        runs={batch_size: {r: engine_run(len(inputs), seconds[r], parity[r]) for r in seconds}},
        notes=[f"{len(inputs)} texts, one mask each, eager, {rounds} rounds interleaved."],
    )


def _masked_lm_folder(folder: Path, tiny: bool) -> str:
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from pipejit.bench.models import BERT_BASE, TINY, minilm_folder

    tokenizer = AutoTokenizer.from_pretrained(minilm_folder())
    torch.manual_seed(0)
    sizes = TINY if tiny else BERT_BASE
    model = BertForMaskedLM(BertConfig(vocab_size=tokenizer.vocab_size, **sizes)).eval()
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
