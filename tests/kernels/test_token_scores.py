"""token_scores: the Triton kernel (interpreted on CPU) against the torch reference."""

import pytest
import torch

from pipejit.kernels.token_scores import token_scores, token_scores_ref
from tests.kernels.conftest import TOLERANCE

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "shape", [(1, 1, 1), (3, 7, 2), (5, 31), (2, 65, 9), (4, 1000), (1, 1025), (2, 50257)]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_kernel_matches_reference(shape, dtype, device):
    x = (torch.randn(*shape, generator=torch.Generator().manual_seed(1)) * 3).to(dtype)
    rtol, atol = TOLERANCE[dtype]
    probs, best, best_score = token_scores(x.to(device), impl="triton")
    want = token_scores_ref(x)
    assert probs.shape == x.shape and best.shape == best_score.shape == x.shape[:-1]
    assert probs.dtype == best_score.dtype == torch.float32 and best.dtype == torch.int64
    torch.testing.assert_close(probs.cpu(), want[0], rtol=rtol, atol=atol)
    torch.testing.assert_close(best_score.cpu(), want[2], rtol=rtol, atol=atol)
    # the best label may differ only between labels the reference scores alike
    picked = want[0].gather(-1, best.cpu().unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(picked, want[2], rtol=rtol, atol=atol)


@pytest.mark.parametrize("impl", ["torch", "triton"])
def test_ties_nan_and_inf(impl, device):
    x = torch.tensor(
        [
            [1.0, 3.0, 3.0, 0.0],  # tie: the lower label
            [1.0, NAN, 2.0, 0.0],  # NaN poisons the row: label 0, NaN scores
            [-INF, -INF, -INF, -INF],
            [-INF, 0.0, -INF, 0.0],
            [0.0, INF, 1.0, 2.0],
        ],
        device=device,
    )
    probs, best, best_score = token_scores(x, impl=impl)
    assert best.tolist() == [1, 0, 0, 1, 0]
    assert probs[[1, 2, 4]].isnan().all() and best_score[[1, 2, 4]].isnan().all()
    assert probs[3].tolist() == [0.0, 0.5, 0.0, 0.5] and best_score[0] == probs[0, 1]


def test_empty_batch_and_bad_input(device):
    probs, best, _ = token_scores(torch.zeros(0, 5, 3, device=device), impl="triton")
    assert probs.shape == (0, 5, 3) and best.shape == (0, 5)
    with pytest.raises(
        ValueError, match=r"logits must be a floating-point tensor \[\.\.\., labels\]"
    ):
        token_scores(torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="at least one label"):
        token_scores(torch.zeros(3, 0))
