"""fill-mask: the top-k tokens for each mask token of a text.

Gather before the head: only the mask positions need vocabulary logits, so when the
model is a base encoder plus a known LM head (found through its public module
attributes, see ``lm_head_split``) the engine runs the base and ``reduce`` applies
the head to the mask rows alone: a 30k-250k wide projection on a few rows instead
of batch x length rows. Other models run their full forward. The mask positions
vary per batch and are read to size the result, so fill-mask is not captured in
CUDA graphs. ``targets`` reach ``reduce`` as a call tensor.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pipejit.contract import Features, ForwardTask, Params, Row
from pipejit.kernels.softmax_topk import softmax_topk
from pipejit.tasks.base import encode, reject_unknown

# The LM heads of masked-LM classes, as the names of the model's own child modules,
# applied in this order to the base model's last hidden state (BERT, RoBERTa/XLM-R,
# ALBERT, DistilBERT, ELECTRA, DeBERTa-v2 and the models that share their layout).
LM_HEADS = (
    ("cls",),
    ("lm_head",),
    ("predictions",),
    ("vocab_transform", "activation", "vocab_layer_norm", "vocab_projector"),
    ("generator_predictions", "generator_lm_head"),
    ("lm_predictions",),
)


def lm_head_split(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module] | None:
    """(base model, head) when ``model`` is its ``base_model`` followed by one of
    ``LM_HEADS`` and nothing else with weights; None otherwise."""
    base = getattr(model, "base_model", None)
    if base is None or base is model:
        return None
    children = dict(model.named_children())
    weighted = {
        name
        for name, child in children.items()
        if child is not base and any(True for _ in child.parameters())
    }
    for names in LM_HEADS:
        if all(name in children for name in names) and weighted <= set(names):
            return base, torch.nn.Sequential(*(children[name] for name in names))
    return None


class FillMask(ForwardTask):
    name = "fill-mask"
    truncation_hint = "pass tokenizer_kwargs={'truncation': True} to cut it to the model's maximum"
    # "auto": Triton kernels on CUDA, their torch references elsewhere; "triton"/"torch" force one
    kernel_impl = "auto"
    # the result's width is the batch's largest mask count, read on the host
    capturable = False

    def __init__(self, reference):
        super().__init__(reference)
        # None runs the full forward and reads the logits at the masks
        self.head_split = lm_head_split(self.model)

    @property
    def forward_module(self) -> torch.nn.Module:
        return self.model if self.head_split is None else self.head_split[0]

    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        reject_unknown(self.name, kwargs, {"top_k", "targets", "tokenizer_kwargs"})
        if self.tokenizer.mask_token_id is None:
            raise ValueError("fill-mask needs a tokenizer with a mask token; this one defines none")
        top_k = kwargs.get("top_k")
        top_k = 5 if top_k is None else top_k
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive int, got {top_k!r}")
        targets = kwargs.get("targets")
        target_ids = None
        if targets is not None:
            # the reference's own resolution of targets: vocabulary lookup, else first sub-token
            target_ids = torch.as_tensor(self.reference.get_target_ids(targets), dtype=torch.long)
            top_k = min(top_k, len(target_ids))
        vocabulary = self.config.vocab_size
        if target_ids is None and top_k > vocabulary:
            raise ValueError(f"top_k={top_k} is more than the vocabulary's {vocabulary} tokens")
        pre = dict(kwargs.get("tokenizer_kwargs") or {})
        return Params(preprocess=pre, postprocess={"top_k": top_k, "target_ids": target_ids})

    def call_tensors(self, params: Params) -> dict[str, torch.Tensor]:
        target_ids = params.postprocess["target_ids"]
        return {} if target_ids is None else {"target_ids": target_ids.to(self.model.device)}

    def preprocess(self, item: Any, params: Params) -> list[Features]:
        if not isinstance(item, str):
            raise ValueError(f"fill-mask takes a string, got {type(item).__name__}")
        tensors = encode(self.tokenizer, item, **params.preprocess)
        if not (tensors["input_ids"] == self.tokenizer.mask_token_id).any():
            raise ValueError(f"No mask_token ({self.tokenizer.mask_token}) found on the input")
        return [Features(tensors)]

    def reduce(self, outputs: Any, inputs: dict[str, torch.Tensor], params: Params) -> dict:
        """Softmax and top-k at the mask positions only, laid out [batch, mask slot, k]."""
        rows, positions, slots = self._mask_places(inputs)
        if self.head_split is None:
            logits = outputs.logits[rows, positions]
        else:
            logits = self.head_split[1](outputs[0][rows, positions])
        return self._rank(logits, rows, slots, inputs, params)

    def _mask_places(self, inputs: dict[str, torch.Tensor]):
        is_mask = inputs["input_ids"] == self.tokenizer.mask_token_id
        rows, positions = is_mask.nonzero(as_tuple=True)
        slots = is_mask.long().cumsum(1)[rows, positions] - 1
        return rows, positions, slots

    def _rank(self, logits, rows, slots, inputs, params) -> dict:
        """Each mask row's softmax over the whole vocabulary, top-k among the targets
        when given, scattered to [batch, mask slot, k]."""
        k = params.postprocess["top_k"]
        target_ids = inputs.get("target_ids")
        values, tokens = softmax_topk(logits, k, columns=target_ids, impl=self.kernel_impl)
        batch = inputs["input_ids"].shape[0]
        width = int(slots.max()) + 1 if slots.numel() else 1
        out_values = values.new_zeros(batch, width, k)
        out_tokens = tokens.new_zeros(batch, width, k)
        out_values[rows, slots] = values
        out_tokens[rows, slots] = tokens
        return {"scores": out_values, "tokens": out_tokens}

    def postprocess(self, item: Any, features: list[Features], rows: list[Row], params: Params):
        (feature,), (row,) = features, rows
        input_ids = feature.tensors["input_ids"].numpy()
        mask_positions = np.flatnonzero(input_ids == self.tokenizer.mask_token_id)
        single = len(mask_positions) == 1
        results = []
        for slot, position in enumerate(mask_positions):
            candidates = []
            for score, token in zip(row["scores"][slot], row["tokens"][slot]):
                filled = input_ids.copy()
                filled[position] = token
                filled = filled[filled != self.tokenizer.pad_token_id]
                candidates.append(
                    {
                        "score": float(score),
                        "token": int(token),
                        "token_str": self.tokenizer.decode([int(token)]),
                        "sequence": self.tokenizer.decode(filled, skip_special_tokens=single),
                    }
                )
            results.append(candidates)
        return results[0] if single else results

    def format_list(self, outputs: list[Any], inputs: list, call_kwargs: dict[str, Any]) -> Any:
        # transformers unwraps a list of one input
        return outputs[0] if len(outputs) == 1 else outputs
