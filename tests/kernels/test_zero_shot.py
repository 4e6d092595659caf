"""zero_shot_scores: the Triton kernel (interpreted on CPU) against the torch reference
and against transformers' numpy formulas."""

import numpy as np
import pytest
import torch

from pipejit.kernels.zero_shot import zero_shot_scores, zero_shot_scores_ref
from tests.kernels.conftest import TOLERANCE


def _logits(pairs, dtype=torch.float32, seed=0):
    return (torch.randn(pairs, 3, generator=torch.Generator().manual_seed(seed)) * 2).to(dtype)


@pytest.mark.parametrize("pairs", [1, 2, 31, 1024, 1025, 2500])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_pair_scores(pairs, dtype, device):
    x = _logits(pairs, dtype, seed=pairs)
    rtol, atol = TOLERANCE[dtype]
    got = zero_shot_scores(x.to(device), entailment=2, contradiction=0, impl="triton")
    want = zero_shot_scores_ref(x, entailment=2, contradiction=0)
    torch.testing.assert_close(got.cpu(), want, rtol=rtol, atol=atol)
    # transformers' formula (numpy, no max subtraction) on the same pairs
    pair = x.float().numpy()[:, [0, 2]]
    expected = np.exp(pair) / np.exp(pair).sum(-1, keepdims=True)
    np.testing.assert_allclose(want.numpy(), expected[:, 1], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "lengths", [[1], [3, 0, 5], [1] * 7, [2, 1500, 1, 1024, 1025], [0, 0], [2500]]
)
def test_softmax_across_each_premise(lengths, device):
    x = _logits(sum(lengths), seed=len(lengths))
    offsets = torch.tensor([0, *np.cumsum(lengths).tolist()], dtype=torch.long)
    kw = dict(entailment=2, contradiction=0, offsets=offsets)
    got = zero_shot_scores(x.to(device), impl="triton", **kw)
    want = zero_shot_scores_ref(x, **kw)
    torch.testing.assert_close(got.cpu(), want, rtol=1e-5, atol=1e-7)
    for start, end in zip(offsets[:-1].tolist(), offsets[1:].tolist()):
        entail = x[start:end, 2].numpy()
        expected = np.exp(entail) / np.exp(entail).sum()
        np.testing.assert_allclose(want[start:end].numpy(), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("impl", ["torch", "triton"])
def test_nan_and_large_logits(impl, device):
    x = torch.tensor([[0.0, 1.0, 200.0], [float("nan"), 0.0, 1.0], [300.0, 0.0, 299.0]])
    x = x.to(device)
    pair = zero_shot_scores(x, entailment=2, contradiction=0, impl=impl).cpu()
    assert pair[0] == 1.0 and pair[1].isnan()  # stable where numpy's exp overflows
    torch.testing.assert_close(pair[2], torch.tensor(1.0).sigmoid().neg().add(1.0))
    offsets = torch.tensor([0, 1, 3], device=device)
    across = zero_shot_scores(x, entailment=2, contradiction=0, offsets=offsets, impl=impl).cpu()
    assert across[0] == 1.0
    torch.testing.assert_close(across[1:], torch.tensor([1.0, 299.0]).softmax(0))
    x[2, 2] = float("nan")
    across = zero_shot_scores(x, entailment=2, contradiction=0, offsets=offsets, impl=impl).cpu()
    assert across[0] == 1.0 and across[1:].isnan().all()  # a NaN spoils its own premise only


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"entailment": 3, "contradiction": 0}, "entailment must be a label index below 3"),
        ({"entailment": 2, "contradiction": -1}, "contradiction must be a label index below 3"),
        (
            {"entailment": 2, "contradiction": 0, "offsets": torch.tensor([0.0, 2.0])},
            "offsets must be a 1-D int64 tensor",
        ),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        zero_shot_scores(torch.zeros(2, 3), **kwargs)
