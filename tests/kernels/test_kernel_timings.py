"""The kernels bench suite's records: one per kernel, impl and shape, in the results' shape."""

import pytest

from pipejit.bench.kernel_timings import CASES, time_kernels


def test_records_for_every_kernel_and_impl_on_cpu():
    records = time_kernels("cpu", batch_sizes=(1, 3), row_lengths=(2, 40), budget_s=0.0)
    keys = {"kernel", "impl", "batch", "row_length", "dtype", "ms", "gb_per_s"}
    keys |= {"items_per_s", "spread", "parity"}
    assert all(set(r) == keys for r in records)
    assert all(r["parity"] is None for r in records)  # Triton against torch: CUDA only
    seen = {(r["kernel"], r["impl"], r["batch"], r["row_length"]) for r in records}
    for kernel in CASES:
        for impl in ("torch", "transformers"):  # Triton only interprets on a CPU: not timed
            assert {(kernel, impl, b, n) for b in (1, 3) for n in (2, 40)} <= seen
    assert not any(r["impl"] == "triton" for r in records)
    assert all(r["ms"] > 0 and r["gb_per_s"] > 0 for r in records)
    assert all(r["items_per_s"] * r["ms"] / 1e3 == pytest.approx(r["batch"]) for r in records)


def test_oversized_shapes_are_skipped():
    records = time_kernels("cpu", batch_sizes=(1,), row_lengths=(1 << 20,), budget_s=0.0)
    kernels = {r["kernel"] for r in records}
    assert "masked_pool" not in kernels and "softmax_topk" in kernels  # 1 x 1M x 384 is too big


def test_triton_is_held_to_the_torch_reference_sampling_is_not_compared():
    import torch

    from pipejit.bench.kernel_timings import _parity

    values, indices = torch.tensor([[0.5, 0.25]]), torch.tensor([[3, 1]])
    same = {"torch": (values, indices), "triton": (values + 1e-7, indices)}
    assert _parity("softmax_topk", "triton", same, "float32") is True
    off = {"torch": (values, indices), "triton": (values, indices.flip(-1))}
    assert _parity("softmax_topk", "triton", off, "float32") is False
    assert _parity("sampling", "triton", off, "float32") is None
    assert _parity("softmax_topk", "torch", off, "float32") is None
