"""Stack a batch of model items on the device, right-padded to its bucket length."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from pipejit.contract import Features


def collate(
    items: Sequence[Features],
    length: int | None,
    pad_values: Mapping[str, float],
    device: torch.device,
    padding_side: str = "right",
) -> dict[str, torch.Tensor]:
    """Pad the first axis of every tensor of ``items`` to ``length`` and stack them
    (padding goes right, or left with ``padding_side="left"``).

    With ``length`` None the items are stacked as they are (they share one shape), and
    so are the tensors an item names in ``Features.whole`` and those already ``length``
    long (one item of a bucket of its own length: a sentence sent alone).
    Keys missing from ``pad_values`` pad with 0 (attention masks, token types).
    Dtypes and trailing axes are kept. The stacked batch crosses to the device in
    one copy per key.
    """
    batch: dict[str, torch.Tensor] = {}
    for key, first in items[0].tensors.items():
        if length is None or key in items[0].whole or _all_long(items, key, length):
            out = torch.stack([item.tensors[key] for item in items])
        else:
            shape = (len(items), length, *first.shape[1:])
            out = torch.full(shape, pad_values.get(key, 0), dtype=first.dtype)
            for row, item in enumerate(items):
                values = item.tensors[key]
                if padding_side == "left":
                    out[row, length - values.shape[0] :] = values
                else:
                    out[row, : values.shape[0]] = values
        if device.type != "cpu":
            out = out.pin_memory().to(device, non_blocking=True)
        batch[key] = out
    return batch


def _all_long(items: Sequence[Features], key: str, length: int) -> bool:
    return all(item.tensors[key].shape[0] == length for item in items)


def to_host(reduced: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """A batch's small reduced tensors to numpy, in one non-blocking copy each and one sync."""
    if not reduced:
        return {}
    device = next(iter(reduced.values())).device
    if device.type == "cpu":
        return {k: v.numpy() for k, v in reduced.items()}
    host = {}
    for key, value in reduced.items():
        buffer = torch.empty(value.shape, dtype=value.dtype, pin_memory=True)
        host[key] = buffer.copy_(value, non_blocking=True)
    torch.cuda.current_stream(device).synchronize()
    return {k: v.numpy() for k, v in host.items()}
