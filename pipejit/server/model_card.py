"""What a model folder's sentence-transformers files say: pooling and maximum length.

TEI pools an embedding model as its ``1_Pooling/config.json`` says and limits
inputs to ``sentence_bert_config.json``'s ``max_seq_length``; so does this server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# sentence-transformers' pooling flags -> pipejit's feature-extraction pooling modes
POOLING_FLAGS = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
}


def _read(folder: str, name: str) -> dict[str, Any] | None:
    path = Path(folder) / name
    if not path.is_file():
        return None
    with path.open() as handle:
        return json.load(handle)


def pooling_mode(folder: str) -> str | None:
    """The pooling that the folder's sentence-transformers config asks for, or None."""
    config = _read(folder, "1_Pooling/config.json")
    if config is None:
        return None
    chosen = [mode for flag, mode in POOLING_FLAGS.items() if config.get(flag)]
    if len(chosen) != 1:
        others = sorted(k for k, v in config.items() if k.startswith("pooling_mode") and v)
        raise ValueError(
            f"{folder}/1_Pooling/config.json asks for pooling {others}; pipejit serve pools "
            f"with exactly one of {sorted(POOLING_FLAGS)}; pass --pooling mean|cls|max"
        )
    return chosen[0]


def max_seq_length(folder: str) -> int | None:
    """``max_seq_length`` from sentence_bert_config.json, or None."""
    config = _read(folder, "sentence_bert_config.json")
    value = None if config is None else config.get("max_seq_length")
    return value if isinstance(value, int) and value > 0 else None
