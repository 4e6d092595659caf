"""fill-mask: the top-k tokens for each mask token of a text."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pipejit.tasks.base import Features, Params, Row, Task, encode, reject_unknown


class FillMask(Task):
    name = "fill-mask"
    truncation_hint = "pass tokenizer_kwargs={'truncation': True} to cut it to the model's maximum"

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

    def preprocess(self, item: Any, params: Params) -> list[Features]:
        if not isinstance(item, str):
            raise ValueError(f"fill-mask takes a string, got {type(item).__name__}")
        tensors = encode(self.tokenizer, item, **params.preprocess)
        if not (tensors["input_ids"] == self.tokenizer.mask_token_id).any():
            raise ValueError(f"No mask_token ({self.tokenizer.mask_token}) found on the input")
        return [Features(tensors)]

    def reduce(self, outputs: Any, inputs: dict[str, torch.Tensor], params: Params) -> dict:
        """Softmax and top-k at the mask positions only, laid out [batch, mask slot, k]."""
        is_mask = inputs["input_ids"] == self.tokenizer.mask_token_id
        rows, positions = is_mask.nonzero(as_tuple=True)
        slot = is_mask.long().cumsum(1)[rows, positions] - 1
        probs = outputs.logits[rows, positions].float().softmax(-1)
        target_ids = params.postprocess["target_ids"]
        if target_ids is not None:
            target_ids = target_ids.to(probs.device)
            probs = probs[:, target_ids]
        k = params.postprocess["top_k"]
        values, tokens = probs.topk(k)
        if target_ids is not None:
            tokens = target_ids[tokens]
        slots = int(is_mask.sum(1).max())
        batch = is_mask.shape[0]
        out_values = values.new_zeros(batch, slots, k)
        out_tokens = tokens.new_zeros(batch, slots, k)
        out_values[rows, slot] = values
        out_tokens[rows, slot] = tokens
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
