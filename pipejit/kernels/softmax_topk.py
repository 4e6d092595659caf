"""Row-wise softmax, sigmoid or identity fused with top-k: scores and their column indices.

``softmax_topk(x, k)`` returns float32 ``values`` [rows, k] and int64 ``indices``
[rows, k], best first, for any float input dtype and any k up to the row length.
With ``columns`` (an int64 list of column ids), the softmax still normalises over
the whole row but only those columns are ranked, and ``indices`` are column ids
(fill-mask's ``targets``).

Defined order and edge values (the kernel and the reference agree on all of them):
- ranking is by the computed score, larger first; equal scores keep the lower
  column (the lower position in ``columns``) first, as a stable sort does;
- NaN scores rank above every number;
- under softmax, a row holding a NaN or +inf gets NaN scores everywhere, and a row
  of only -inf gets NaN scores (as torch's softmax gives); -inf elsewhere scores 0;
- -0.0 and 0.0 are equal.

The kernel runs one program per row. For softmax, a first pass over the row keeps
a running maximum and sum (online softmax); a second pass scores each block and
merges the block's best ``KB`` (k rounded up to a power of two) into a running
best list, as packed int64 keys (order-preserving float bits, then the inverted
column). Blocks whose best key cannot enter the list are skipped. Rows of any
length run block after block. For k above ``MAX_KERNEL_K`` the kernel writes the
scores and a stable torch sort ranks them; ``auto`` sends such calls to the torch
reference.
"""

import torch

from pipejit.kernels._triton import kernel, tl, use_triton

FUNCTIONS = ("softmax", "sigmoid", "none")
MAX_KERNEL_K = 128
MAX_BLOCK = 1024


def softmax_topk(
    scores: torch.Tensor,
    k: int,
    *,
    function: str = "softmax",
    columns: torch.Tensor | None = None,
    impl: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best scores of each row of ``scores`` [rows, n] after ``function``.

    ``impl``: "auto" (Triton on CUDA for k <= ``MAX_KERNEL_K``, else torch), "triton", "torch".
    """
    _check(scores, k, function, columns)
    if runs_triton(impl, scores.device, k):
        return _softmax_topk_triton(scores, k, function, columns)
    return softmax_topk_ref(scores, k, function=function, columns=columns)


def runs_triton(impl: str, device: torch.device, k: int) -> bool:
    """Whether a call runs the kernel: "auto" on CUDA up to k = ``MAX_KERNEL_K``."""
    return use_triton(impl, device, supported=impl == "triton" or k <= MAX_KERNEL_K)


def softmax_topk_ref(
    scores: torch.Tensor,
    k: int,
    *,
    function: str = "softmax",
    columns: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The torch reference of ``softmax_topk``."""
    _check(scores, k, function, columns)
    x = scores.float()
    if function == "softmax":  # a row with a NaN or +inf, or only -inf, comes out all NaN
        x = x.softmax(-1)
    elif function == "sigmoid":
        x = x.sigmoid()
    if columns is not None:
        columns = columns.to(x.device)
        x = x[:, columns]
    values, positions = rank(x, k)
    return values, (columns[positions] if columns is not None else positions)


def rank(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest of each row, larger first, NaN first, ties by lower column.

    On CPU, with k well below the row length, a float top-k (k + 1 wide) is far
    cheaper than a full sort; only rows where a tie crosses the k-th place fall
    back to a stable sort. On GPUs the stable sort is used as is (no host sync)."""
    n = x.shape[1]
    if x.is_cuda or 4 * k >= n:
        values, order = torch.sort(x, dim=1, descending=True, stable=True)
        return values[:, :k].contiguous(), order[:, :k].contiguous()
    values, order = x.topk(k + 1, dim=1)
    crossing = (values[:, k - 1] == values[:, k]) | (
        values[:, k - 1].isnan() & values[:, k].isnan()
    )
    values, order = values[:, :k], order[:, :k]
    # canonical order inside the top k: by column, then stably by value
    order, by_column = order.sort(dim=1)
    values = values.gather(1, by_column)
    values, by_value = values.sort(dim=1, descending=True, stable=True)
    order = order.gather(1, by_value)
    if crossing.any():
        rows = crossing.nonzero().squeeze(1)
        exact_values, exact_order = torch.sort(x[rows], dim=1, descending=True, stable=True)
        values[rows], order[rows] = exact_values[:, :k], exact_order[:, :k]
    return values, order


def _check(scores, k, function, columns) -> None:
    if not isinstance(scores, torch.Tensor) or scores.dim() != 2 or not scores.is_floating_point():
        raise ValueError("scores must be a floating-point tensor [rows, n]")
    if function not in FUNCTIONS:
        raise ValueError(f"function must be one of {FUNCTIONS}, got {function!r}")
    if columns is not None and (columns.dim() != 1 or columns.dtype != torch.int64):
        raise ValueError("columns must be a 1-D int64 tensor of column ids")
    width = scores.shape[1] if columns is None else columns.shape[0]
    if not isinstance(k, int) or not 1 <= k <= width:
        raise ValueError(f"k must be an int from 1 to the {width} ranked columns, got {k!r}")


def _softmax_topk_triton(scores, k, function, columns):
    rows, n = scores.shape
    scores = scores if scores.stride(1) == 1 else scores.contiguous()
    candidates = n if columns is None else columns.shape[0]
    columns = None if columns is None else columns.to(scores.device).contiguous()
    write_all = k > MAX_KERNEL_K
    kb = max(16, _next_power_of_2(k)) if not write_all else 16
    block = max(kb, min(MAX_BLOCK, _next_power_of_2(max(n, candidates))))
    width = candidates if write_all else k
    values = torch.empty(rows, width, device=scores.device, dtype=torch.float32)
    indices = torch.empty(rows, width, device=scores.device, dtype=torch.int64)
    _softmax_topk_kernel[(rows,)](
        scores,
        scores.stride(0),
        n,
        columns if columns is not None else indices,
        candidates,
        values,
        indices,
        k,
        FUNCTION=FUNCTIONS.index(function),
        HAS_COLUMNS=columns is not None,
        WRITE_ALL=write_all,
        KB=kb,
        BLOCK=block,
        INSERT_LIMIT=8,
        num_warps=4,
    )
    if not write_all:
        return values, indices
    values, positions = torch.sort(values, dim=1, descending=True, stable=True)
    positions = positions[:, :k]
    picked = columns[positions] if columns is not None else positions
    return values[:, :k].contiguous(), picked.contiguous()


def _next_power_of_2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


@kernel
def _softmax_topk_kernel(
    x_ptr,
    row_stride,
    n,
    columns_ptr,
    candidates,
    values_ptr,
    indices_ptr,
    k,
    FUNCTION: tl.constexpr,
    HAS_COLUMNS: tl.constexpr,
    WRITE_ALL: tl.constexpr,
    KB: tl.constexpr,
    BLOCK: tl.constexpr,
    INSERT_LIMIT: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    source = x_ptr + row * row_stride
    cols = tl.arange(0, BLOCK)
    lowest = -9223372036854775807 - 1

    # softmax: running maximum (NaN ignored) and sum; NaN and +inf poison the row
    top = tl.full((), float("-inf"), tl.float32)
    total = tl.zeros((), tl.float32)
    poisoned = tl.zeros((), tl.int32)
    if FUNCTION == 0:
        for start in range(0, n, BLOCK):
            offs = start + cols
            x = tl.load(source + offs, mask=offs < n, other=float("-inf")).to(tl.float32)
            poisoned = tl.maximum(
                poisoned, tl.max(((x != x) | (x == float("inf"))).to(tl.int32), 0)
            )
            x = tl.where(x != x, float("-inf"), x)
            new_top = tl.maximum(top, tl.max(x, 0))
            shift = tl.where(new_top == float("-inf"), 0.0, new_top)
            total = total * tl.exp(top - shift) + tl.sum(tl.exp(x - shift), 0)
            top = new_top

    best = tl.full((KB,), lowest, tl.int64)
    out_row = row * (candidates if WRITE_ALL else k)
    for start in range(0, candidates, BLOCK):
        offs = start + cols
        inside = offs < candidates
        if HAS_COLUMNS:
            column = tl.load(columns_ptr + offs, mask=inside, other=0)
        else:
            column = offs
        x = tl.load(source + column, mask=inside, other=0.0).to(tl.float32)
        if FUNCTION == 0:
            # nothing finite (top = -inf) or a NaN / +inf in the row: NaN, as torch gives
            score = tl.exp(x - tl.where(top == float("-inf"), 0.0, top)) / total
            score = tl.where((poisoned > 0) | (top == float("-inf")), float("nan"), score)
        elif FUNCTION == 1:
            score = 1.0 / (1.0 + tl.exp(-x))
        else:
            score = x
        if WRITE_ALL:
            tl.store(values_ptr + out_row + offs, score, mask=inside)
        else:
            bits = tl.where(score == 0, 0.0, score).to(tl.int32, bitcast=True)
            key = tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
            key = tl.where(score != score, 0x7FFFFFFF, key)
            packed = (key.to(tl.int64) << 32) | (2147483647 - offs).to(tl.int64)
            packed = tl.where(inside, packed, lowest)
            floor = tl.min(best, 0)
            entering = tl.sum((packed > floor).to(tl.int32), 0)
            if entering > INSERT_LIMIT:  # many newcomers: merge the block's sorted best
                if BLOCK > KB:
                    block_best = tl.topk(packed, KB)
                else:
                    block_best = tl.sort(packed, descending=True)
                best = tl.topk(tl.reshape(tl.join(best, block_best), (2 * KB,)), KB)
            else:  # a few: each replaces the list's smallest (the list stays unsorted)
                for _ in range(entering):
                    newcomer = tl.max(packed, 0)
                    slot = tl.argmin(best, 0)
                    if newcomer > tl.min(best, 0):
                        best = tl.where(tl.arange(0, KB) == slot, newcomer, best)
                    packed = tl.where(packed == newcomer, lowest, packed)
    if not WRITE_ALL:
        best = tl.sort(best, descending=True)
        place = tl.arange(0, KB)
        key = (best >> 32).to(tl.int32)
        bits = tl.where(key < 0, key ^ 0x7FFFFFFF, key)
        position = 2147483647 - (best & 0xFFFFFFFF)
        if HAS_COLUMNS:
            position = tl.load(columns_ptr + position, mask=place < k, other=0)
        tl.store(values_ptr + out_row + place, bits.to(tl.float32, bitcast=True), mask=place < k)
        tl.store(indices_ptr + out_row + place, position, mask=place < k)
