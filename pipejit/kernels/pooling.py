"""Masked pooling of token vectors into one vector per row, with optional L2 normalisation.

``masked_pool(hidden, mask, mode)`` takes hidden states [batch, length, dim] of any
float dtype and an attention mask [batch, length] (nonzero = a real token) and
returns float32 [batch, dim]:
- ``"mean"``: the mean over the real tokens (sentence-transformers' mean pooling);
- ``"cls"``: the first token's vector, whatever the mask;
- ``"max"``: the element-wise maximum over the real tokens.
``normalize=True`` divides each vector by its L2 norm (at least 1e-12, as
``torch.nn.functional.normalize``).

Edge cases: padding never contributes, even when it holds NaN; a NaN in a real token
propagates to that row's mean or max; a row without any real token pools to zeros
(mean and max).

The kernel runs one program per row, the whole vector in one block, and walks the
length in slices of as many tokens as fit a fixed tile.
"""

import torch

from pipejit.kernels._triton import kernel, tl, use_triton

MODES = ("mean", "cls", "max")
# elements of the [tokens, dim] slice a program holds at once; from 1024 columns on, 8 warps
# share it (with 4, Triton 3.6 built the 1024-column kernels at 168 registers and spilled)
TILE = 8192
MAX_KERNEL_DIM = 16384


def masked_pool(
    hidden: torch.Tensor,
    mask: torch.Tensor,
    mode: str = "mean",
    *,
    normalize: bool = False,
    impl: str = "auto",
) -> torch.Tensor:
    """Pool ``hidden`` [batch, length, dim] under ``mask`` [batch, length] to [batch, dim].

    ``impl``: "auto" (Triton on CUDA up to dim ``MAX_KERNEL_DIM``, torch elsewhere),
    "triton" or "torch"."""
    _check(hidden, mask, mode)
    dim = hidden.shape[-1]
    if use_triton(
        impl, hidden.device, dim <= MAX_KERNEL_DIM, f"dim {dim} > {MAX_KERNEL_DIM} in one block"
    ):
        return _pool_triton(hidden, mask, mode, normalize)
    return masked_pool_ref(hidden, mask, mode, normalize=normalize)


def masked_pool_ref(
    hidden: torch.Tensor, mask: torch.Tensor, mode: str = "mean", *, normalize: bool = False
) -> torch.Tensor:
    """The torch reference of ``masked_pool``."""
    _check(hidden, mask, mode)
    x = hidden.float()
    real = (mask != 0).unsqueeze(-1)
    if mode == "cls":
        pooled = x[:, 0]
    elif mode == "mean":
        count = real.sum(1).clamp(min=1)
        weights = real.transpose(1, 2).to(x.dtype)
        pooled = torch.bmm(weights, x).squeeze(1) / count
        if pooled.isnan().any():  # 0 x NaN (or inf) in padding: sum the real tokens alone
            pooled = torch.where(real, x, 0.0).sum(1) / count
    else:
        pooled = torch.where(real, x, -torch.inf).amax(1)
        pooled = torch.where(real.any(1), pooled, 0.0)
    if normalize:
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
    return pooled


def _check(hidden, mask, mode) -> None:
    if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3 or not hidden.is_floating_point():
        raise ValueError("hidden must be a floating-point tensor [batch, length, dim]")
    if mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"mask must be [batch, length] = {tuple(hidden.shape[:2])}, got {tuple(mask.shape)}"
        )
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if hidden.shape[1] == 0 and mode == "cls":
        raise ValueError("cls pooling needs at least one token")


def _pool_triton(hidden, mask, mode, normalize):
    batch, length, dim = hidden.shape
    hidden = hidden if hidden.stride(-1) == 1 else hidden.contiguous()
    mask = mask.contiguous()
    out = torch.empty(batch, dim, device=hidden.device, dtype=torch.float32)
    block = 1 << max(0, dim - 1).bit_length()
    tokens = max(1, TILE // block)
    if batch:
        _pool_kernel[(batch,)](
            hidden,
            hidden.stride(0),
            hidden.stride(1),
            mask,
            length,
            dim,
            out,
            MODE=MODES.index(mode),
            NORMALIZE=normalize,
            TOKENS=tokens,
            BLOCK=block,
            num_warps=8 if block >= 1024 else 4,
        )
    return out


@kernel
def _pool_kernel(
    x_ptr,
    batch_stride,
    token_stride,
    mask_ptr,
    length,
    dim,
    out_ptr,
    MODE: tl.constexpr,
    NORMALIZE: tl.constexpr,
    TOKENS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    inside = cols < dim
    source = x_ptr + row * batch_stride
    if MODE == 1:
        pooled = tl.load(source + cols, mask=inside, other=0.0).to(tl.float32)
    else:
        steps = tl.arange(0, TOKENS)
        acc = tl.zeros((BLOCK,), tl.float32)
        if MODE == 2:
            acc = tl.full((BLOCK,), float("-inf"), tl.float32)
        nan_seen = tl.zeros((BLOCK,), tl.int32)
        count = tl.zeros((), tl.float32)
        for start in range(0, length, TOKENS):
            token = start + steps
            real = tl.load(mask_ptr + row * length + token, mask=token < length, other=0) != 0
            take = real[:, None] & inside[None, :]
            x = tl.load(
                source + token[:, None] * token_stride + cols[None, :], mask=take, other=0.0
            ).to(tl.float32)
            count += tl.sum(real.to(tl.float32), 0)
            if MODE == 0:
                acc += tl.sum(tl.where(take, x, 0.0), 0)
            else:
                nan_seen = tl.maximum(nan_seen, tl.max((take & (x != x)).to(tl.int32), 0))
                acc = tl.maximum(acc, tl.max(tl.where(take, x, float("-inf")), 0))
        if MODE == 0:
            pooled = acc / tl.maximum(count, 1.0)
        else:
            pooled = tl.where(nan_seen > 0, float("nan"), acc)
            pooled = tl.where(count > 0, pooled, 0.0)
    if NORMALIZE:
        norm = tl.sqrt(tl.sum(tl.where(inside, pooled * pooled, 0.0), 0))
        pooled = pooled / tl.maximum(norm, 1e-12)
    tl.store(out_ptr + row * dim + cols, pooled, mask=inside)
