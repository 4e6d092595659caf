"""Helpers every task shares: refusing unknown parameters, tokenizing texts."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch

from pipejit.contract import Features, Params


def reject_unknown(task: str, kwargs: dict[str, Any], allowed: set[str]) -> None:
    """A TypeError naming the parameters ``task`` does not take, and those it does."""
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise TypeError(
            f"{task} got unexpected parameter(s) {unknown}; it accepts {sorted(allowed)}"
        )


def encode(tokenizer, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
    """Tokenize one text (or pair) to unpadded 1-D int64 tensors."""
    encoded = tokenizer(*args, **kwargs)
    return {k: torch.tensor(v, dtype=torch.long) for k, v in encoded.items()}


# tokenizer options under which a list of texts encodes each text as it would alone
# (padding or tensors would tie the texts of one call together)
BATCHABLE_OPTIONS = frozenset({"truncation", "max_length", "add_special_tokens"})


def encode_texts(
    tokenizer, items: list[Any], **kwargs: Any
) -> list[dict[str, torch.Tensor]] | None:
    """Tokenize many texts in one call, each to what ``encode`` gives it alone (a fast
    tokenizer encodes a list across its threads); None where they cannot go together:
    an item that is not a string, or an option outside ``BATCHABLE_OPTIONS``."""
    if not items or set(kwargs) - BATCHABLE_OPTIONS or not all(isinstance(t, str) for t in items):
        return None
    columns = {}
    for key, rows in tokenizer(items, **kwargs).items():
        lengths = [len(row) for row in rows]
        # one conversion for the whole window (a tensor per text cost 4x as much), then views
        flat = np.fromiter(itertools.chain.from_iterable(rows), np.int64, count=sum(lengths))
        columns[key] = torch.from_numpy(flat).split(lengths)
    return [{key: column[i] for key, column in columns.items()} for i in range(len(items))]


class TextsInOneCall:
    """For a task whose input is one text tokenized as it is: a window of texts is
    tokenized in one call (``encode_texts``); other windows go input by input. Its
    post-processing never calls the tokenizer, so a stream's next window may be
    tokenized while the current one runs (``Task.prepares_ahead``)."""

    prepares_ahead = True

    def preprocess_many(self, items: list[Any], params: Params) -> list:
        encoded = encode_texts(self.tokenizer, items, **params.preprocess)
        if encoded is None:
            return super().preprocess_many(items, params)
        return [[Features(tensors)] for tensors in encoded]
