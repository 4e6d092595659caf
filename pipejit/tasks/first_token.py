"""Sequence classifiers that read only the first position: their last layer's feed-forward
on that position alone.

BERT-family sequence classifiers (BERT, RoBERTa, XLM-RoBERTa, Electra; for
text-classification and the NLI models of zero-shot-classification) classify from
the first position's final hidden state (the [CLS] or <s> token) and nothing else: in
the last encoder layer every other position's feed-forward output is computed and
thrown away. ``first_position_only`` hooks the last layer's attention module so that
its output keeps only the first position, and the feed-forward after it runs on that
one row: two thirds of that layer's work, about 11% of a 6-layer model's. Every other
layer, and the last one's attention over all positions, run as before, so the first
position's result is the same computation. Only the families named here, whose layer
and head transformers lays out this way, are changed.
"""

from __future__ import annotations

from typing import Any

import torch

# classifier class -> the attribute holding its encoder (its ``encoder.layer`` list)
FAMILIES = {
    "BertForSequenceClassification": "bert",
    "RobertaForSequenceClassification": "roberta",
    "XLMRobertaForSequenceClassification": "roberta",
    "ElectraForSequenceClassification": "electra",
}


def first_position_only(model: torch.nn.Module) -> bool:
    """Hook ``model``'s last layer to keep only the first position after its attention,
    where ``model`` is one of ``FAMILIES``; returns whether it did."""
    encoder = getattr(getattr(model, FAMILIES.get(type(model).__name__, ""), None), "encoder", None)
    layers = getattr(encoder, "layer", None)
    if not layers:
        return False
    last = layers[-1]
    if getattr(last, "is_decoder", False) or not isinstance(
        getattr(last, "attention", None), torch.nn.Module
    ):
        return False
    last.attention.register_forward_hook(_keep_first_position)
    return True


def _keep_first_position(module: torch.nn.Module, args: Any, output: Any) -> Any:
    # the attention module returns (output, weights) in transformers 5; a bare tensor too
    if isinstance(output, torch.Tensor):
        return output[:, :1]
    attention_output, *rest = output
    return (attention_output[:, :1], *rest)
