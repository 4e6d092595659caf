"""The next token of each row by sampling, as ``transformers``' ``generate`` samples it.

Order and meaning follow generate: the repetition penalty (``RepetitionPenaltyLogitsProcessor``:
a positive logit of a token the row already holds is divided by the penalty, a negative one
multiplied), then temperature, top-k and top-p (the warpers, in that order), then one draw
from the softmax of what is left. Everything runs in float32.

The draw is an inverse-CDF pick: one uniform number per row, drawn with torch from
``generator``, is scaled by the row's kept mass and the token is the first whose
running sum passes it. Both implementations get the same numbers, so under a seeded
generator the Triton kernel and the torch reference pick the same token.

Defined edge cases (identical in both implementations):
- NaN logits count as -inf (never drawn); +inf counts as the largest float32.
- Ties: top-k keeps every token equal to the k-th largest value (as transformers
  does); top-p keeps a token when the mass of tokens strictly above it is below
  ``top_p``, so tokens tied at the cut are all kept (transformers' unstable sort
  keeps an arbitrary part of such a tie).
- ``previous_tokens`` entries that are negative (padding, e.g. -1) or not below the
  vocabulary size are ignored; repeats count once.
- A row with no finite logit returns token 0.

The kernel runs one program per row: it writes the penalised, tempered row to a
float32 workspace, finds the top-k and top-p cut-offs by bisection over the
order-preserving integer keys of the float values (a pass over the row each step;
top-k stops early once exactly k values stand above the probe), and scans the row
once more for the drawn token.
"""

import torch

from pipejit.kernels._triton import kernel, tl, use_triton

FLOAT32_MAX = torch.finfo(torch.float32).max


def sample(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    previous_tokens: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    impl: str = "auto",
) -> torch.Tensor:
    """Sample one token per row of ``logits`` [rows, vocab]; returns int64 [rows].

    ``impl``: "auto" (Triton on CUDA, torch elsewhere), "triton" or "torch"."""
    _check(logits, temperature, top_k, top_p, repetition_penalty, previous_tokens)
    uniforms = _uniforms(logits, generator)
    if use_triton(impl, logits.device):
        return _sample_triton(
            logits, uniforms, temperature, top_k, top_p, repetition_penalty, previous_tokens
        )
    filtered = filter_logits(
        logits,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        previous_tokens=previous_tokens,
    )
    return pick(filtered, uniforms)


def sample_ref(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    previous_tokens: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    impl: str = "torch",
) -> torch.Tensor:
    """The torch reference of ``sample`` (``impl`` is accepted for the same signature
    and must be "torch")."""
    if impl != "torch":
        raise ValueError(f"sample_ref is the torch reference; impl must be 'torch', got {impl!r}")
    return sample(
        logits,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        previous_tokens=previous_tokens,
        generator=generator,
        impl="torch",
    )


def filter_logits(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    previous_tokens: torch.Tensor | None = None,
) -> torch.Tensor:
    """The float32 logits that ``sample`` draws from: penalised, tempered, and -inf
    wherever top-k or top-p removed a token (the torch reference's filtering step)."""
    x = logits.float().nan_to_num(nan=-torch.inf, posinf=FLOAT32_MAX, neginf=-torch.inf)
    rows, vocab = x.shape
    if repetition_penalty != 1.0 and previous_tokens is not None and previous_tokens.numel():
        ids = previous_tokens.to(x.device)
        index = torch.where((ids >= 0) & (ids < vocab), ids, vocab)  # spare column for ignored
        padded = torch.cat([x, x.new_zeros(rows, 1)], dim=1)
        held = padded.gather(1, index)
        held = torch.where(held < 0, held * repetition_penalty, held / repetition_penalty)
        x = padded.scatter(1, index, held)[:, :vocab]
    x = x / temperature
    ranked = None
    if 0 < top_k < vocab:
        kth = x.topk(top_k, dim=-1).values[:, -1:]
        x = x.masked_fill(x < kth, -torch.inf)
        # top-p then needs only the kept values (k, or more where the k-th value is tied)
        ranked = x.topk(int((x >= kth).sum(-1).max()), dim=-1).values
    if top_p < 1.0:
        values = ranked if ranked is not None else x.sort(dim=-1, descending=True).values
        mass = (values - values[:, :1]).exp().nan_to_num(nan=0.0)
        above = mass.cumsum(-1) - mass  # mass strictly before each sorted place
        kept = (above < top_p * mass.sum(-1, keepdim=True)).sum(-1, keepdim=True)
        cut = values.gather(1, (kept - 1).clamp(min=0))
        x = x.masked_fill(x < cut, -torch.inf)
    return x


def pick(filtered: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw from softmax(``filtered``) with one uniform in [0, 1) per row."""
    rows, vocab = filtered.shape
    top = filtered.amax(-1, keepdim=True)
    finite = torch.isfinite(top)
    weights = torch.where(finite, (filtered - torch.where(finite, top, 0.0)).exp(), 0.0)
    running = weights.cumsum(-1)
    target = uniforms.to(running.device)[:, None] * running[:, -1:]
    token = torch.searchsorted(running, target, right=True).squeeze(1)
    columns = torch.arange(vocab, device=filtered.device)
    last = torch.where(weights > 0, columns, -1).amax(-1)
    return torch.where(last >= 0, torch.minimum(token, last), 0)


def _uniforms(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else logits.device
    draws = torch.rand(logits.shape[0], generator=generator, device=device, dtype=torch.float32)
    return draws.to(logits.device)


def _check(logits, temperature, top_k, top_p, repetition_penalty, previous_tokens) -> None:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or not logits.is_floating_point():
        raise ValueError("logits must be a floating-point tensor [rows, vocab]")
    if logits.shape[1] == 0:
        raise ValueError("logits must have at least one column")
    if not temperature > 0:
        raise ValueError(f"temperature must be a positive float, got {temperature!r}")
    if not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be an int >= 0 (0: no top-k), got {top_k!r}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    if not repetition_penalty > 0:
        raise ValueError(f"repetition_penalty must be a positive float, got {repetition_penalty!r}")
    if previous_tokens is not None:
        if previous_tokens.dim() != 2 or previous_tokens.shape[0] != logits.shape[0]:
            raise ValueError(
                f"previous_tokens must be [rows, n] with rows={logits.shape[0]}, "
                f"got shape {tuple(previous_tokens.shape)}"
            )
        if previous_tokens.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"previous_tokens must be int64, got {previous_tokens.dtype}")


def _sample_triton(logits, uniforms, temperature, top_k, top_p, penalty, previous_tokens):
    rows, vocab = logits.shape
    logits = logits if logits.stride(1) == 1 else logits.contiguous()
    penalize = penalty != 1.0 and previous_tokens is not None and previous_tokens.numel() > 0
    previous = previous_tokens.to(logits.device, torch.int64).contiguous() if penalize else None
    workspace = torch.empty(rows, vocab, device=logits.device, dtype=torch.float32)
    out = torch.empty(rows, device=logits.device, dtype=torch.int64)
    block = min(4096, max(32, _next_power_of_2(vocab)))
    _sample_kernel[(rows,)](
        logits,
        logits.stride(0),
        previous if penalize else out,
        previous.shape[1] if penalize else 0,
        uniforms.contiguous(),
        workspace,
        out,
        vocab,
        float(temperature),
        float(penalty),
        int(top_k),
        float(top_p),
        PENALIZE=penalize,
        TOP_K=0 < top_k < vocab,
        TOP_P=top_p < 1.0,
        BLOCK=block,
        num_warps=8 if block >= 2048 else 4,
    )
    return out


def _next_power_of_2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


@kernel
def _sample_kernel(
    logits_ptr,
    row_stride,
    previous_ptr,
    n_previous,
    uniform_ptr,
    work_ptr,
    out_ptr,
    vocab,
    temperature,
    penalty,
    top_k,
    top_p,
    PENALIZE: tl.constexpr,
    TOP_K: tl.constexpr,
    TOP_P: tl.constexpr,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    source = logits_ptr + row * row_stride
    work = work_ptr + row * vocab
    cols = tl.arange(0, BLOCK)
    big = 3.4028234663852886e38

    # 1. cleaned, tempered row into the workspace (NaN -> -inf, +inf -> largest float)
    for start in range(0, vocab, BLOCK):
        offs = start + cols
        inside = offs < vocab
        x = tl.load(source + offs, mask=inside, other=float("-inf")).to(tl.float32)
        x = tl.minimum(tl.where(x != x, float("-inf"), x), big)
        tl.store(work + offs, tl.math.div_rn(x, temperature), mask=inside)
    # 2. the repetition penalty on the tokens the row holds (repeats write the same value)
    if PENALIZE:
        tl.debug_barrier()
        held = previous_ptr + row * n_previous
        for start in range(0, n_previous, BLOCK):
            offs = start + cols
            ids = tl.load(held + offs, mask=offs < n_previous, other=-1)
            valid = (ids >= 0) & (ids < vocab)
            x = tl.load(source + ids, mask=valid, other=0.0).to(tl.float32)
            x = tl.minimum(tl.where(x != x, float("-inf"), x), big)
            x = tl.where(x < 0, x * penalty, tl.math.div_rn(x, penalty))
            tl.store(work + ids, tl.math.div_rn(x, temperature), mask=valid)
    tl.debug_barrier()

    # 3. the row's maximum, and the integer key range to search
    top = tl.full((), float("-inf"), tl.float32)
    for start in range(0, vocab, BLOCK):
        offs = start + cols
        x = tl.load(work + offs, mask=offs < vocab, other=float("-inf"))
        top = tl.maximum(top, tl.max(x, 0))
    shift = tl.where(top == float("-inf"), 0.0, top)  # exp(x - shift) stays NaN-free
    top_bits = tl.where(top == 0, 0.0, top).to(tl.int32, bitcast=True)
    top_key = tl.where(top_bits < 0, top_bits ^ 0x7FFFFFFF, top_bits).to(tl.int64)
    floor_key = tl.full((), -2139095041, tl.int64)  # the key of -inf
    cut = floor_key

    # 4. top-k: the largest key with at least k values at or above it
    if TOP_K:
        lo = floor_key
        hi = top_key
        while lo < hi:
            mid = lo + (hi - lo + 1) // 2
            count = tl.zeros((), tl.int32)
            for start in range(0, vocab, BLOCK):
                offs = start + cols
                x = tl.load(work + offs, mask=offs < vocab, other=float("-inf"))
                bits = tl.where(x == 0, 0.0, x).to(tl.int32, bitcast=True)
                key = tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits).to(tl.int64)
                count += tl.sum(((key >= mid) & (offs < vocab)).to(tl.int32), 0)
            if count == top_k:  # exactly k above the probe: it is as good a cut as the k-th
                lo = mid
                hi = mid
            elif count > top_k:
                lo = mid
            else:
                hi = mid - 1
        cut = lo

    # 5. top-p: the smallest key whose strictly-greater mass is below top_p of the kept mass
    if TOP_P:
        total = tl.zeros((), tl.float32)
        for start in range(0, vocab, BLOCK):
            offs = start + cols
            x = tl.load(work + offs, mask=offs < vocab, other=float("-inf"))
            bits = tl.where(x == 0, 0.0, x).to(tl.int32, bitcast=True)
            key = tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits).to(tl.int64)
            total += tl.sum(tl.where(key >= cut, tl.exp(x - shift), 0.0), 0)
        goal = top_p * total
        lo = cut
        hi = top_key
        while lo < hi:
            mid = lo + (hi - lo) // 2
            above = tl.zeros((), tl.float32)
            for start in range(0, vocab, BLOCK):
                offs = start + cols
                x = tl.load(work + offs, mask=offs < vocab, other=float("-inf"))
                bits = tl.where(x == 0, 0.0, x).to(tl.int32, bitcast=True)
                key = tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits).to(tl.int64)
                above += tl.sum(tl.where((key > mid) & (key >= cut), tl.exp(x - shift), 0.0), 0)
            if above < goal:
                hi = mid
            else:
                lo = mid + 1
        cut = lo

    # 6. the draw: first token whose running kept mass passes uniform * kept mass
    kept_mass = tl.zeros((), tl.float32)
    for start in range(0, vocab, BLOCK):
        offs = start + cols
        x = tl.load(work + offs, mask=offs < vocab, other=float("-inf"))
        bits = tl.where(x == 0, 0.0, x).to(tl.int32, bitcast=True)
        key = tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits).to(tl.int64)
        kept_mass += tl.sum(tl.where(key >= cut, tl.exp(x - shift), 0.0), 0)
    target = tl.load(uniform_ptr + row) * kept_mass
    running = tl.zeros((), tl.float32)
    found = tl.full((), 2147483647, tl.int32)
    last = tl.full((), -1, tl.int32)
    for start in range(0, vocab, BLOCK):
        offs = start + cols
        x = tl.load(work + offs, mask=offs < vocab, other=float("-inf"))
        bits = tl.where(x == 0, 0.0, x).to(tl.int32, bitcast=True)
        key = tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits).to(tl.int64)
        weight = tl.where(key >= cut, tl.exp(x - shift), 0.0)
        passed = (running + tl.cumsum(weight, 0)) > target
        found = tl.minimum(found, tl.min(tl.where(passed, offs, 2147483647), 0))
        last = tl.maximum(last, tl.max(tl.where(weight > 0, offs, -1), 0))
        running += tl.sum(weight, 0)
    token = tl.minimum(found, last)
    token = tl.where((top == float("-inf")) | (last < 0), 0, token)
    tl.store(out_ptr + row, token.to(tl.int64))
