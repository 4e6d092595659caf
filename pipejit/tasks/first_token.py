"""Sequence classifiers that read only the first position: their last layer computed for
that position alone.

BERT-family sequence classifiers (BERT, RoBERTa, XLM-RoBERTa, Electra; for
text-classification and the NLI models of zero-shot-classification) classify from
the first position's final hidden state (the [CLS] or <s> token) and nothing else. In
the last encoder layer only that position's output is read, and it needs every
position's keys and values but nothing else of the other positions.
``first_position_only`` gives the last layer's self-attention module a forward that
computes the query of the first position only, attends from it over every position's
keys and values (through the model's own attention implementation), and returns that
one row; a pre-hook on the attention's output block hands it the first position's
residual, so the output projection, its layer norm and the feed-forward after it all
run on one row. Of that layer only the key and value projections still run on every
position: about 14% of a 6-layer model's work is skipped. Every other layer runs as
before, so the first position's result is the same computation. Only the families named
here, whose layers transformers lays out this way, are changed.
"""

from __future__ import annotations

import functools
import sys
import types
from typing import Any

import torch

# classifier class -> the attribute holding its encoder (its ``encoder.layer`` list)
FAMILIES = {
    "BertForSequenceClassification": "bert",
    "RobertaForSequenceClassification": "roberta",
    "XLMRobertaForSequenceClassification": "roberta",
    "ElectraForSequenceClassification": "electra",
}
# what the self-attention module must hold for the first-position forward to stand in
SELF_ATTENTION_PARTS = ("query", "key", "value", "attention_head_size", "scaling", "config")


def first_position_only(model: torch.nn.Module) -> bool:
    """Make ``model``'s last layer compute the first position only, where ``model`` is one
    of ``FAMILIES`` laid out as expected; returns whether it did."""
    encoder = getattr(getattr(model, FAMILIES.get(type(model).__name__, ""), None), "encoder", None)
    layers = getattr(encoder, "layer", None)
    if not layers:
        return False
    attention = getattr(layers[-1], "attention", None)
    own = getattr(attention, "self", None)
    if (
        getattr(layers[-1], "is_decoder", False)
        or getattr(attention, "is_cross_attention", False)
        or not isinstance(getattr(attention, "output", None), torch.nn.Module)
        or not all(hasattr(own, part) for part in SELF_ATTENTION_PARTS)
        or not hasattr(sys.modules[type(own).__module__], "eager_attention_forward")
    ):
        return False
    eager = sys.modules[type(own).__module__].eager_attention_forward
    # bound as a method, so that a deep copy of the model binds its copy of the module
    own.forward = types.MethodType(functools.partial(_first_position_forward, eager), own)
    attention.output.register_forward_pre_hook(_first_position_residual)
    return True


def _first_position_forward(
    eager,
    module: torch.nn.Module,
    hidden_states: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, Any]:
    """Self-attention ``module``'s forward from the first position only (``eager``: the
    family's own attention function, transformers' fallback)."""
    for unused in ("cache", "past_key_values", "encoder_hidden_states"):
        kwargs.pop(unused, None)
    batch = hidden_states.shape[0]

    def heads(projection: torch.nn.Module, states: torch.Tensor) -> torch.Tensor:
        shape = (batch, states.shape[1], -1, module.attention_head_size)
        return projection(states).view(shape).transpose(1, 2)

    query = heads(module.query, hidden_states[:, :1])
    key, value = heads(module.key, hidden_states), heads(module.value, hidden_states)
    if attention_mask is not None and attention_mask.dim() == 4:
        attention_mask = attention_mask[:, :, :1]  # the first query's row of the mask
    attend = _attention_functions().get_interface(module.config._attn_implementation, eager)
    output, weights = attend(
        module, query, key, value, attention_mask, dropout=0.0, scaling=module.scaling, **kwargs
    )
    return output.reshape(batch, 1, -1).contiguous(), weights


def _first_position_residual(module: torch.nn.Module, args: tuple) -> tuple:
    # (the first position's attention output, the layer's input): that position's residual
    if len(args) < 2:
        return None
    attention_output, residual, *rest = args
    return (attention_output, residual[:, :1], *rest)


def _attention_functions():
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    return ALL_ATTENTION_FUNCTIONS
