"""masked_pool: the Triton kernel (interpreted on CPU) against the torch reference."""

import pytest
import torch

from pipejit.kernels._triton import use_triton
from pipejit.kernels.pooling import MAX_KERNEL_DIM, masked_pool, masked_pool_ref
from tests.kernels.conftest import TOLERANCE


def _batch(batch, length, dim, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(batch, length, dim, generator=gen).to(dtype)
    lengths = torch.randint(1, length + 1, (batch,), generator=gen)
    mask = (torch.arange(length)[None] < lengths[:, None]).long()
    return hidden, mask


@pytest.mark.parametrize(
    ("batch", "length", "dim"),
    [(1, 1, 1), (3, 7, 31), (5, 33, 384), (2, 130, 768), (2, 9, 1025), (1, 3, 4096)],
)
@pytest.mark.parametrize("mode", ["mean", "cls", "max"])
@pytest.mark.parametrize("normalize", [False, True])
def test_kernel_matches_reference(batch, length, dim, mode, normalize, device):
    hidden, mask = _batch(batch, length, dim, torch.float32, seed=dim)
    got = masked_pool(hidden.to(device), mask.to(device), mode, normalize=normalize, impl="triton")
    want = masked_pool_ref(hidden, mask, mode, normalize=normalize)
    assert got.dtype == torch.float32 and got.shape == (batch, dim)
    torch.testing.assert_close(got.cpu(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs(dtype, device):
    hidden, mask = _batch(4, 40, 384, dtype, seed=3)
    rtol, atol = TOLERANCE[dtype]
    for mode in ("mean", "max"):
        got = masked_pool(hidden.to(device), mask.to(device), mode, normalize=True, impl="triton")
        want = masked_pool_ref(hidden, mask, mode, normalize=True)
        torch.testing.assert_close(got.cpu(), want, rtol=rtol, atol=atol)


def test_matches_sentence_transformers_mean_pooling():
    """The formula of sentence-transformers' mean pooling, written out."""
    hidden, mask = _batch(3, 12, 16, torch.float32)
    m = mask.unsqueeze(-1).float()
    expected = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    expected = torch.nn.functional.normalize(expected, p=2, dim=1)
    torch.testing.assert_close(masked_pool_ref(hidden, mask, "mean", normalize=True), expected)


@pytest.mark.parametrize("impl", ["torch", "triton"])
def test_padding_never_counts_and_empty_rows_pool_to_zero(impl, device):
    hidden = torch.randn(3, 4, 5)
    hidden[0, 2:] = float("nan")  # padding holding NaN
    hidden[1, 1, 2] = float("nan")  # a real token holding NaN
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]])
    hidden, mask = hidden.to(device), mask.to(device)
    for mode in ("mean", "max"):
        pooled = masked_pool(hidden, mask, mode, impl=impl).cpu()
        assert not pooled[0].isnan().any()
        assert pooled[1].isnan().tolist() == [False, False, True, False, False]
        assert pooled[2].tolist() == [0.0] * 5
    assert torch.equal(masked_pool(hidden, mask, "cls", impl=impl).cpu(), hidden[:, 0].cpu())


def test_auto_switch():
    assert use_triton("auto", torch.device("cuda"), True)
    assert not use_triton("auto", torch.device("cuda"), False)
    hidden = torch.zeros(1, 2, MAX_KERNEL_DIM + 1)
    with pytest.raises(ValueError, match=f"dim {MAX_KERNEL_DIM + 1} > {MAX_KERNEL_DIM}"):
        masked_pool(hidden, torch.ones(1, 2), "mean", impl="triton")
    assert masked_pool(hidden, torch.ones(1, 2), "mean").shape == (1, MAX_KERNEL_DIM + 1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            (torch.zeros(2, 3), torch.ones(2, 3), "mean"),
            r"hidden must be .* \[batch, length, dim\]",
        ),
        ((torch.zeros(2, 3, 4), torch.ones(2, 4), "mean"), r"mask must be \[batch, length\]"),
        ((torch.zeros(2, 3, 4), torch.ones(2, 3), "sum"), "mode must be one of"),
    ],
)
def test_bad_arguments_are_named(args, message):
    with pytest.raises(ValueError, match=message):
        masked_pool(*args)
