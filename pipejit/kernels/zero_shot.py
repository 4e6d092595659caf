"""Zero-shot classification scores from NLI logits, for a batch of (premise, label) pairs.

``zero_shot_scores(logits, entailment=e, contradiction=c, offsets=None)`` takes the
NLI logits of the pairs [pairs, nli_labels] (any float dtype) and returns float32
[pairs]:
- with ``offsets`` None (``multi_label``, or a single candidate label): each pair's
  entailment probability against contradiction alone, softmax([l_c, l_e])[1];
- with ``offsets`` (int64 [segments + 1], the pairs of segment s being
  offsets[s]:offsets[s+1], one segment per premise, any lengths, empty allowed): the
  softmax of the entailment logits across each segment's pairs.
Both are computed stably (max subtracted); transformers' numpy version overflows
to NaN for logits past ~88, where this gives the limit value.

NaN logits give NaN scores for their pair (and, across labels, for the segment).

The kernel runs one program per segment (per block of pairs without offsets),
walking long segments block by block with a running maximum and sum.
"""

import torch

from pipejit.kernels._triton import kernel, tl, use_triton

BLOCK = 1024


def zero_shot_scores(
    logits: torch.Tensor,
    *,
    entailment: int,
    contradiction: int,
    offsets: torch.Tensor | None = None,
    impl: str = "auto",
) -> torch.Tensor:
    """Entailment scores of each pair; across each segment's pairs when ``offsets`` is given.

    ``impl``: "auto" (Triton on CUDA, torch elsewhere), "triton" or "torch"."""
    _check(logits, entailment, contradiction, offsets)
    if use_triton(impl, logits.device):
        return _zero_shot_triton(logits, entailment, contradiction, offsets)
    return zero_shot_scores_ref(
        logits, entailment=entailment, contradiction=contradiction, offsets=offsets
    )


def zero_shot_scores_ref(
    logits: torch.Tensor,
    *,
    entailment: int,
    contradiction: int,
    offsets: torch.Tensor | None = None,
) -> torch.Tensor:
    """The torch reference of ``zero_shot_scores``."""
    _check(logits, entailment, contradiction, offsets)
    x = logits.float()
    if offsets is None:
        # columns picked one by one: a list index would copy an index tensor from the host
        return torch.stack([x[:, contradiction], x[:, entailment]], -1).softmax(-1)[:, 1]
    entail = x[:, entailment]
    offsets = offsets.to(x.device)
    lengths = offsets.diff()
    segment = torch.repeat_interleave(torch.arange(len(lengths), device=x.device), lengths)
    top = torch.full((len(lengths),), -torch.inf, device=x.device)
    top = top.scatter_reduce(0, segment, entail, "amax")
    weights = (entail - top[segment]).exp()
    totals = torch.zeros(len(lengths), device=x.device).index_add(0, segment, weights)
    return weights / totals[segment]


def _check(logits, entailment, contradiction, offsets) -> None:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or not logits.is_floating_point():
        raise ValueError("logits must be a floating-point tensor [pairs, nli_labels]")
    labels = logits.shape[1]
    for name, index in (("entailment", entailment), ("contradiction", contradiction)):
        if not isinstance(index, int) or not 0 <= index < labels:
            raise ValueError(f"{name} must be a label index below {labels}, got {index!r}")
    if offsets is not None:
        if offsets.dim() != 1 or offsets.dtype != torch.int64 or offsets.numel() < 1:
            raise ValueError("offsets must be a 1-D int64 tensor [segments + 1]")


def _zero_shot_triton(logits, entailment, contradiction, offsets):
    pairs = logits.shape[0]
    out = torch.empty(pairs, device=logits.device, dtype=torch.float32)
    segments = pairs if offsets is None else offsets.shape[0] - 1
    grid = (-(-pairs // BLOCK),) if offsets is None else (segments,)
    if pairs and grid[0]:
        _zero_shot_kernel[grid](
            logits,
            logits.stride(0),
            logits.stride(1),
            pairs,
            offsets.to(logits.device).contiguous() if offsets is not None else out,
            out,
            entailment,
            contradiction,
            ACROSS=offsets is not None,
            BLOCK=BLOCK,
            num_warps=4,
        )
    return out


@kernel
def _zero_shot_kernel(
    x_ptr,
    row_stride,
    col_stride,
    pairs,
    offsets_ptr,
    out_ptr,
    entailment,
    contradiction,
    ACROSS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    program = tl.program_id(0).to(tl.int64)
    steps = tl.arange(0, BLOCK)
    if not ACROSS:
        pair = program * BLOCK + steps
        live = pair < pairs
        entail = tl.load(x_ptr + pair * row_stride + entailment * col_stride, mask=live, other=0.0)
        contra = tl.load(
            x_ptr + pair * row_stride + contradiction * col_stride, mask=live, other=0.0
        )
        entail = entail.to(tl.float32)
        contra = contra.to(tl.float32)
        top = tl.maximum(entail, contra)
        # NaN in either logit: NaN (tl.maximum may drop it)
        top = tl.where((entail != entail) | (contra != contra), float("nan"), top)
        e = tl.exp(entail - top)
        tl.store(out_ptr + pair, e / (e + tl.exp(contra - top)), mask=live)
    else:
        first = tl.load(offsets_ptr + program)
        end = tl.load(offsets_ptr + program + 1)
        top = tl.full((), float("-inf"), tl.float32)
        total = tl.zeros((), tl.float32)
        nan_seen = tl.zeros((), tl.int32)
        for start in range(first, end, BLOCK):
            pair = start + steps
            live = pair < end
            entail = tl.load(
                x_ptr + pair * row_stride + entailment * col_stride, mask=live, other=float("-inf")
            ).to(tl.float32)
            nan_seen = tl.maximum(nan_seen, tl.max((entail != entail).to(tl.int32), 0))
            new_top = tl.maximum(top, tl.max(entail, 0))
            shift = tl.where(new_top == float("-inf"), 0.0, new_top)
            total = total * tl.exp(top - shift) + tl.sum(tl.exp(entail - shift), 0)
            top = new_top
        for start in range(first, end, BLOCK):
            pair = start + steps
            live = pair < end
            entail = tl.load(
                x_ptr + pair * row_stride + entailment * col_stride, mask=live, other=0.0
            ).to(tl.float32)
            score = tl.exp(entail - top) / total
            score = tl.where(nan_seen > 0, float("nan"), score)
            tl.store(out_ptr + pair, score, mask=live)
