"""Per-token softmax over the labels and the best label, in one pass, for token-classification.

``token_scores(logits)`` takes [..., labels] logits of any float dtype and returns the
float32 probabilities (same shape), the best label (int64, shape without the label
axis) and its probability. The host then aggregates words from these small arrays.

Edge values, as ``softmax_topk`` with k=1 defines them: a row holding a NaN or +inf,
or only -inf, gets NaN probabilities and best label 0 (NaN ranks first, ties keep the
lower label, as numpy's argmax over the same row).

The kernel runs ``ROWS`` rows per program as one [ROWS, BLOCK] tile: a first pass keeps
each row's running maximum and sum over blocks of labels, a second writes the
probabilities and keeps the first best.
"""

import torch

from pipejit.kernels._triton import kernel, tl, use_triton

# elements per [ROWS, BLOCK] tile: 8 per thread at 8 warps. A 4096-element tile at 4 warps
# (32 per thread) needed 255 registers and spilled ~450 bytes on sm_80 and sm_90
# (pipejit.bench.kernel_build); 8 per thread keeps them near 120.
TILE = 2048


def token_scores(
    logits: torch.Tensor, *, impl: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(probabilities, best label, best probability) of each token's label logits.

    ``impl``: "auto" (Triton on CUDA, torch elsewhere), "triton" or "torch"."""
    _check(logits)
    if use_triton(impl, logits.device):
        return _token_scores_triton(logits)
    return token_scores_ref(logits)


def token_scores_ref(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The torch reference of ``token_scores``."""
    _check(logits)
    # torch's softmax already gives a row with a NaN or +inf (or only -inf) all NaN
    probs = logits.float().softmax(-1)
    # argmax takes the first of equal maxima, and a NaN as the maximum
    best = probs.argmax(-1, keepdim=True)
    return probs, best.squeeze(-1), probs.gather(-1, best).squeeze(-1)


def _check(logits) -> None:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.dim() < 1:
        raise ValueError("logits must be a floating-point tensor [..., labels]")
    if logits.shape[-1] == 0:
        raise ValueError("logits must have at least one label")


def _token_scores_triton(logits):
    shape = logits.shape
    flat = logits.reshape(-1, shape[-1])
    flat = flat if flat.stride(-1) == 1 else flat.contiguous()
    rows, labels = flat.shape
    probs = torch.empty(rows, labels, device=logits.device, dtype=torch.float32)
    best = torch.empty(rows, device=logits.device, dtype=torch.int64)
    best_score = torch.empty(rows, device=logits.device, dtype=torch.float32)
    block = min(1024, 1 << max(0, labels - 1).bit_length())
    block_rows = max(1, min(64, TILE // block))
    if rows:
        _token_scores_kernel[(_cdiv(rows, block_rows),)](
            flat,
            flat.stride(0),
            rows,
            labels,
            probs,
            best,
            best_score,
            ROWS=block_rows,
            BLOCK=block,
            num_warps=8 if block_rows * block >= TILE else 4,
        )
    return probs.view(shape), best.view(shape[:-1]), best_score.view(shape[:-1])


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


@kernel
def _token_scores_kernel(
    x_ptr,
    row_stride,
    rows,
    labels,
    probs_ptr,
    best_ptr,
    best_score_ptr,
    ROWS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    live = row < rows
    cols = tl.arange(0, BLOCK)
    top = tl.full((ROWS,), float("-inf"), tl.float32)
    total = tl.zeros((ROWS,), tl.float32)
    poisoned = tl.zeros((ROWS,), tl.int32)
    for start in range(0, labels, BLOCK):
        offs = start + cols
        inside = live[:, None] & (offs < labels)[None, :]
        x = tl.load(
            x_ptr + row[:, None] * row_stride + offs[None, :], mask=inside, other=float("-inf")
        ).to(tl.float32)
        bad = (x != x) | (x == float("inf"))
        poisoned = tl.maximum(poisoned, tl.max(bad.to(tl.int32), 1))
        x = tl.where(x != x, float("-inf"), x)
        new_top = tl.maximum(top, tl.max(x, 1))
        shift = tl.where(new_top == float("-inf"), 0.0, new_top)
        total = total * tl.exp(top - shift) + tl.sum(tl.exp(x - shift[:, None]), 1)
        top = new_top
    ruined = (poisoned > 0) | (top == float("-inf"))
    shift = tl.where(top == float("-inf"), 0.0, top)
    total = tl.where(total > 0, total, 1.0)  # rows past the end, or ruined: no 0/0
    best = tl.zeros((ROWS,), tl.int32)
    best_score = tl.full((ROWS,), float("-inf"), tl.float32)
    for start in range(0, labels, BLOCK):
        offs = start + cols
        inside = live[:, None] & (offs < labels)[None, :]
        x = tl.load(x_ptr + row[:, None] * row_stride + offs[None, :], mask=inside, other=0.0)
        p = tl.exp(x.to(tl.float32) - shift[:, None]) / total[:, None]
        p = tl.where(ruined[:, None], float("nan"), p)
        tl.store(probs_ptr + row[:, None] * labels + offs[None, :], p, mask=inside)
        p = tl.where(inside, p, float("-inf"))
        block_top = tl.max(p, 1)
        block_best = tl.min(tl.where(p == block_top[:, None], offs[None, :], 2147483647), 1)
        better = block_top > best_score
        best = tl.where(better, block_best, best)
        best_score = tl.where(better, block_top, best_score)
    best_score = tl.where(ruined, float("nan"), best_score)
    best = tl.where(ruined, 0, best)
    tl.store(best_ptr + row, best.to(tl.int64), mask=live)
    tl.store(best_score_ptr + row, best_score, mask=live)
