"""Collate: right-padding to the bucket for any dtype and trailing axes, stacking when unpadded."""

import pytest
import torch

from pipejit.contract import Features
from pipejit.engine.collate import MASKED_FILL_ROWS, HostCopy, collate

CPU = torch.device("cpu")


def test_pads_first_axis_keeping_dtype_and_trailing_axes():
    items = [
        Features({"x": torch.ones(3, 2), "ids": torch.tensor([5, 6, 7])}),
        Features({"x": torch.full((1, 2), 2.0), "ids": torch.tensor([9])}),
    ]
    batch = collate(items, 4, {"x": -1.0, "ids": 0}, CPU)
    assert batch["x"].dtype == torch.float32 and batch["x"].shape == (2, 4, 2)
    assert batch["x"][1].tolist() == [[2.0, 2.0], [-1.0, -1.0], [-1.0, -1.0], [-1.0, -1.0]]
    assert batch["ids"].dtype == torch.long
    assert batch["ids"].tolist() == [[5, 6, 7, 0], [9, 0, 0, 0]]


def test_unpadded_items_are_stacked_as_they_are():
    pixels = [torch.rand(3, 4, 5) for _ in range(3)]
    batch = collate([Features({"pixel_values": p}) for p in pixels], None, {}, CPU)
    assert torch.equal(batch["pixel_values"], torch.stack(pixels))


def test_items_already_as_long_as_the_bucket_are_stacked_unpadded():
    items = [Features({"ids": torch.tensor([5, 6, 7]), "mask": torch.ones(3, dtype=torch.long)})]
    for side in ("right", "left"):
        batch = collate(items, 3, {"ids": 0}, CPU, padding_side=side)
        assert batch["ids"].tolist() == [[5, 6, 7]] and batch["mask"].tolist() == [[1, 1, 1]]
        assert batch["ids"].is_contiguous() and batch["ids"].dtype == torch.long
    # one item shorter than the bucket: the whole batch pads
    items.append(Features({"ids": torch.tensor([9]), "mask": torch.ones(1, dtype=torch.long)}))
    batch = collate(items, 3, {"ids": 0}, CPU, padding_side="left")
    assert batch["ids"].tolist() == [[5, 6, 7], [0, 0, 9]]
    assert batch["mask"].tolist() == [[1, 1, 1], [0, 0, 1]]


def test_host_copy_gives_numpy():
    host = HostCopy({"scores": torch.tensor([[0.5, 0.25]]), "ids": torch.tensor([[1, 0]])}).wait()
    assert host["scores"].tolist() == [[0.5, 0.25]] and host["ids"].tolist() == [[1, 0]]
    assert HostCopy({}).wait() == {}


@pytest.mark.cuda
def test_host_copy_keeps_the_rows_of_its_moment_on_a_gpu():
    """The copy is queued before later work on the stream: overwriting the device tensor
    after it starts does not reach the rows it reads."""
    scores = torch.arange(4096, dtype=torch.float32, device="cuda").reshape(64, 64)
    copy = HostCopy({"scores": scores})
    scores.mul_(-1)
    host = copy.wait()
    assert host["scores"][1, :3].tolist() == [64.0, 65.0, 66.0]
    assert scores[1, 0].item() == -64.0


@pytest.mark.parametrize("side", ["right", "left"])
def test_many_rows_fill_as_few_rows_do(side):
    """From ``MASKED_FILL_ROWS`` rows the batch fills in one masked copy: the same result."""
    torch.manual_seed(0)
    sizes = [int(n) for n in torch.randint(1, 12, (3 * MASKED_FILL_ROWS,))]
    items = [
        Features({"ids": torch.randint(1, 99, (n,)), "x": torch.rand(n, 3, dtype=torch.float16)})
        for n in sizes
    ]
    pads = {"ids": 0, "x": -1.0}
    many = collate(items, 12, pads, CPU, padding_side=side)
    one_by_one = [collate([item], 12, pads, CPU, padding_side=side) for item in items]
    for key in ("ids", "x"):
        assert many[key].dtype == items[0].tensors[key].dtype
        assert torch.equal(many[key], torch.cat([batch[key] for batch in one_by_one]))
