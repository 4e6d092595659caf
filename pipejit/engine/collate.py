"""Pad a batch of model items to its bucket length and stack it on the device."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from pipejit.tasks.base import Features


def collate(
    items: Sequence[Features],
    length: int,
    pad_values: Mapping[str, int],
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """Right-pad every tensor of ``items`` to ``length`` and stack them.

    Keys missing from ``pad_values`` pad with 0 (attention masks, token types).
    The stacked batch crosses to the device in one copy per key.
    """
    batch: dict[str, torch.Tensor] = {}
    for key in items[0].tensors:
        out = torch.full((len(items), length), pad_values.get(key, 0), dtype=torch.long)
        for row, item in enumerate(items):
            values = item.tensors[key]
            out[row, : values.shape[0]] = values
        batch[key] = out.to(device, non_blocking=True) if device.type != "cpu" else out
    return batch
