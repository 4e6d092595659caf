"""softmax_topk: the Triton kernel (interpreted on CPU) against the torch reference."""

import pytest
import torch

from pipejit.kernels.softmax_topk import MAX_KERNEL_K, runs_triton, softmax_topk, softmax_topk_ref
from tests.kernels.conftest import TOLERANCE

NAN, INF = float("nan"), float("inf")


def _data(rows, n, dtype, seed=0):
    return (torch.randn(rows, n, generator=torch.Generator().manual_seed(seed)) * 3).to(dtype)


def assert_topk_close(got, want, scores, k, function="softmax", dtype=torch.float32):
    """Values within the dtype's tolerance; an index may differ from the reference's
    only where the reference scores both columns within that tolerance (near-ties)."""
    rtol, atol = TOLERANCE[dtype]
    (values, indices), ref_values = got, want[0]
    assert values.dtype == torch.float32 and indices.dtype == torch.int64
    assert values.shape == indices.shape == (scores.shape[0], k)
    torch.testing.assert_close(values.cpu(), ref_values, rtol=rtol, atol=atol, equal_nan=True)
    all_values, order = softmax_topk_ref(scores.cpu(), scores.shape[1], function=function)
    by_column = torch.empty_like(all_values).scatter_(1, order, all_values)
    torch.testing.assert_close(
        by_column.gather(1, indices.cpu()), ref_values, rtol=rtol, atol=atol, equal_nan=True
    )
    assert all(len(set(row)) == k for row in indices.tolist())


@pytest.mark.parametrize(
    ("rows", "n", "k"),
    [
        (1, 1, 1),
        (3, 2, 1),
        (3, 2, 2),
        (5, 31, 1),
        (5, 31, 31),
        (3, 1000, 5),
        (2, 1024, 16),
        (2, 1025, 17),
        (2, 300, MAX_KERNEL_K + 1),  # past the kernel's list: kernel scores, torch ranks
        (2, 300, 300),
    ],
)
@pytest.mark.parametrize("function", ["softmax", "sigmoid", "none"])
def test_kernel_matches_reference(rows, n, k, function, device):
    x = _data(rows, n, torch.float32, seed=n)
    got = softmax_topk(x.to(device), k, function=function, impl="triton")
    want = softmax_topk_ref(x, k, function=function)
    assert_topk_close(got, want, x, k, function)
    assert torch.equal(got[1].cpu(), want[1])  # fp32 random data: no near-ties


@pytest.mark.parametrize(
    ("rows", "n", "k"), [(2, 4000, MAX_KERNEL_K), (2, 50257, 5), (1, 250002, 10), (1, 30522, 1)]
)
def test_long_rows_and_the_largest_kernel_k(rows, n, k, device):
    """Softmax only: each is hundreds of blocks through the interpreter."""
    x = _data(rows, n, torch.float32, seed=n)
    function = "softmax"
    got = softmax_topk(x.to(device), k, function=function, impl="triton")
    want = softmax_topk_ref(x, k, function=function)
    assert_topk_close(got, want, x, k, function)
    assert torch.equal(got[1].cpu(), want[1])  # fp32 random data: no near-ties


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize(("n", "k"), [(31, 3), (1100, 20)])
def test_input_dtypes(dtype, n, k, device):
    x = _data(2, n, dtype, seed=1)
    for function in ("softmax", "sigmoid"):
        got = softmax_topk(x.to(device), k, function=function, impl="triton")
        want = softmax_topk_ref(x, k, function=function)
        assert_topk_close(got, want, x, k, function, dtype=dtype)


@pytest.mark.parametrize("impl", ["torch", "triton"])
def test_ties_keep_the_lower_column_first(impl, device):
    x = torch.tensor(
        [
            [1.0, 3.0, 2.0, 3.0, 3.0, 0.0],  # a tie crossing the k-th place
            [-0.0, 0.0, -1.0, 0.0, -2.0, -3.0],  # -0.0 equals 0.0
        ]
    ).to(device)
    values, indices = softmax_topk(x, 2, function="none", impl=impl)
    assert indices.tolist() == [[1, 3], [0, 1]]
    values, indices = softmax_topk(x, 4, impl=impl)
    assert indices.tolist() == [[1, 3, 4, 2], [0, 1, 3, 2]]
    # a long row of equal values, the tie spanning several blocks
    flat = torch.zeros(1, 3000, device=device)
    assert softmax_topk(flat, 7, impl=impl)[1].tolist() == [list(range(7))]


@pytest.mark.parametrize("impl", ["torch", "triton"])
def test_nan_and_inf(impl, device):
    x = torch.tensor(
        [
            [0.0, NAN, 1.0, 2.0],
            [-INF, 1.0, -INF, 0.0],
            [-INF, -INF, -INF, -INF],
            [0.0, INF, 1.0, 2.0],
        ]
    ).to(device)
    values, indices = softmax_topk(x, 3, impl=impl)
    assert values[0].isnan().all() and indices[0].tolist() == [0, 1, 2]  # NaN poisons the row
    assert indices[1].tolist() == [1, 3, 0] and values[1, 2] == 0  # -inf scores 0
    assert values[2].isnan().all()  # nothing finite: NaN, as torch's softmax
    assert values[3].isnan().all()  # +inf poisons the row too
    values, indices = softmax_topk(x, 2, function="none", impl=impl)
    assert indices[0].tolist() == [1, 3]  # NaN ranks above every number
    assert indices[3].tolist() == [1, 3] and values[3, 0] == INF
    values, indices = softmax_topk(x, 4, function="sigmoid", impl=impl)
    assert indices[1].tolist() == [1, 3, 0, 2] and values[1, 2:].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("k", [1, 3, 5])
def test_columns_rank_only_the_targets(k, device):
    x = _data(3, 5000, torch.float32, seed=4)
    columns = torch.tensor([17, 4999, 3, 2500, 3, 1024], dtype=torch.long)
    got = softmax_topk(x.to(device), k, columns=columns.to(device), impl="triton")
    want = softmax_topk_ref(x, k, columns=columns)
    torch.testing.assert_close(got[0].cpu(), want[0])
    assert torch.equal(got[1].cpu(), want[1])
    # normalised over the whole row, not over the targets
    full = x.softmax(-1)
    torch.testing.assert_close(want[0], full.gather(1, want[1]))


def test_reference_fallback_for_ties_crossing_the_kth_place_on_cpu():
    """The CPU reference's top-k shortcut gives way to a stable sort only where needed."""
    x = torch.randn(4, 2000, generator=torch.Generator().manual_seed(0))
    x[1, [10, 500, 1999]] = 9.0  # three-way tie at the top, k = 2 cuts through it
    x[2, [3, 4]] = float("nan")
    values, indices = softmax_topk_ref(x, 2, function="none")
    exact_values, exact = torch.sort(x, dim=1, descending=True, stable=True)
    assert torch.equal(indices, exact[:, :2])
    assert indices[1].tolist() == [10, 500] and indices[2].tolist() == [3, 4]


def test_auto_switches_on_device_and_k():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert runs_triton("auto", cuda, MAX_KERNEL_K)
    assert not runs_triton("auto", cuda, MAX_KERNEL_K + 1)
    assert not runs_triton("auto", cpu, 1)
    assert runs_triton("triton", cpu, MAX_KERNEL_K + 1)
    assert not runs_triton("torch", cuda, 1)


def test_auto_on_cpu_is_the_reference():
    x = _data(2, 100, torch.float32)
    got, want = softmax_topk(x, 4), softmax_topk_ref(x, 4)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((torch.zeros(2, 5), 0), {}, "k must be an int from 1 to the 5"),
        ((torch.zeros(2, 5), 6), {}, "k must be an int from 1 to the 5"),
        ((torch.zeros(5), 1), {}, r"scores must be a floating-point tensor \[rows, n\]"),
        ((torch.zeros(2, 5), 1), {"function": "relu"}, "function must be one of"),
        ((torch.zeros(2, 5), 3), {"columns": torch.tensor([1, 2])}, "k must be an int from 1"),
        ((torch.zeros(2, 5), 1), {"impl": "gpu"}, "impl must be one of"),
    ],
)
def test_bad_arguments_are_named(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        softmax_topk(*args, **kwargs)
