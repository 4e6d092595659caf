"""Batched decoding of a causal LM with a static KV cache and a compiled one-token step.

A left-padded batch of prompts runs one prefill forward that fills a
``transformers.StaticCache``; then each new token runs the same fixed-shape
step (batch x 1 token against the whole cache), compiled once per (batch size,
cache length) with ``torch.compile(fullgraph=True)``. Compiled batches run at the
shape policy's decode sizes (powers of two), so graphs stay few whatever sizes the
scheduler cuts; cache lengths come from its coarse ladder, so prompts of any length
share the step's graph: the prompt length only sets where in the cache decoding
starts, which the cache counts in a tensor of its own, never in a shape. The
prefill may take further inputs (a vision-language model's pixel values); the
step never does.

Finished rows (EOS or a stop criterion) stay in the batch, masked: their next
tokens are replaced by the pad token, as ``generate`` does, and the loop ends
when every row has finished or ``max_new_tokens`` are out.
"""

from __future__ import annotations

import time
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
from transformers import StaticCache

from pipejit.contract import ChooseToken, Decoded, StopCheck
from pipejit.engine.runner import compile_limit, precision, recompile_limit
from pipejit.engine.shapes import ShapePolicy, cache_length
from pipejit.engine.stats import ModuleStats

# Static caches kept per decoder, by (batch, cache length); the oldest leaves first.
KEPT_CACHES = 4


def _fill_rows(t: torch.Tensor, rows: int, filled: int) -> torch.Tensor:
    """``t`` (the same number of entries per row on its first axis, row by row) with the
    last row's entries repeated until it holds ``filled`` rows."""
    per_row = t.shape[0] // rows
    last = t[t.shape[0] - per_row :]
    return torch.cat([t, last.repeat(filled - rows, *[1] * (t.dim() - 1))])


class Decoder:
    """Prefill + static-cache decoding for one causal LM, eager or compiled per batch size."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        compile: bool,
        shapes: ShapePolicy,
        backend: Any = "inductor",
        mode: str | None = None,
        max_graphs: int = 64,
        autocast: torch.dtype | None = None,
        stats: ModuleStats | None = None,
    ):
        self.model = model
        self.autocast = autocast
        self.shapes = shapes
        self.stats = stats if stats is not None else ModuleStats()
        # (batch, cache length) of every compiled step run: one graph each
        self.step_shapes: set[tuple[int, int]] = set()
        self._caches: OrderedDict[tuple[int, int], StaticCache] = OrderedDict()
        self._step = None
        per_function, self._patched_limit = compile_limit(max_graphs)
        if compile:
            self._step = torch.compile(
                self._eager_step,
                fullgraph=True,
                dynamic=False,
                backend=backend,
                mode=mode,
                **per_function,
            )

    def decode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        *,
        max_new_tokens: int,
        choose: ChooseToken,
        eos_ids: torch.Tensor,
        pad_id: int,
        stop: StopCheck | None = None,
        budgets: torch.Tensor | None = None,
        prefill_kwargs: Mapping[str, torch.Tensor] | None = None,
    ) -> Decoded:
        """Decode up to ``max_new_tokens`` for each row of a left-padded batch
        (``budgets``: a smaller limit per row, where rows differ).

        ``prefill_kwargs`` are further inputs of the prefill forward only (an image's
        ``pixel_values``): each lists the rows' entries in row order on its first
        axis, the same number per row."""
        rows = input_ids.shape[0]
        filled = self.shapes.decode_rows(rows) if self._step is not None else rows
        if filled != rows:
            # compiled: a batch runs at a decode size, filled with copies of its last row

            def fill(t: torch.Tensor | None) -> torch.Tensor | None:
                return None if t is None else _fill_rows(t, rows, filled)

            decoded = self.decode(
                fill(input_ids),
                fill(attention_mask),
                max_new_tokens=max_new_tokens,
                choose=choose,
                eos_ids=eos_ids,
                pad_id=pad_id,
                stop=stop,
                budgets=fill(budgets),
                prefill_kwargs={k: fill(v) for k, v in (prefill_kwargs or {}).items()},
            )
            return Decoded(decoded.tokens[:rows], decoded.counts[:rows])
        length = input_ids.shape[1]
        device = input_ids.device
        total = length + max_new_tokens
        slots = cache_length(total)
        cache = self._cache(rows, slots, device)
        mask = torch.zeros(rows, slots, dtype=torch.long, device=device)
        mask[:, :length] = attention_mask
        positions = attention_mask.long().cumsum(-1) - 1
        positions = positions.masked_fill(attention_mask == 0, 0)
        seen = torch.where(attention_mask.bool(), input_ids, -1)
        seen = torch.cat([seen, seen.new_full((rows, max_new_tokens), -1)], dim=1)
        new = torch.full((rows, max_new_tokens), pad_id, dtype=torch.long, device=device)
        finished = torch.zeros(rows, dtype=torch.bool, device=device)
        counts = torch.zeros(rows, dtype=torch.long, device=device)
        self.stats.count((rows, length))
        with torch.inference_mode(), precision(self.autocast, device):
            cache.reset()  # the cache counts its own filled length: start at 0
            logits = (
                self.model(
                    input_ids=input_ids,
                    attention_mask=mask,
                    position_ids=positions,
                    cache=cache,
                    use_cache=True,
                    logits_to_keep=1,
                    **(prefill_kwargs or {}),
                )
                .logits[:, -1]
                .float()
            )
            next_position = positions[:, -1:] + 1
            for step in range(max_new_tokens):
                token = choose(logits, seen[:, : length + step])
                token = token.masked_fill(finished, pad_id)
                counts += (~finished).long()
                new[:, step] = token
                seen[:, length + step] = token.masked_fill(finished, -1)
                finished |= torch.isin(token, eos_ids)
                if budgets is not None:
                    finished |= counts >= budgets
                if stop is not None:
                    so_far = seen[:, : length + step + 1]
                    finished |= stop(so_far.masked_fill(so_far < 0, pad_id))
                if step + 1 == max_new_tokens or bool(finished.all()):
                    break
                where = length + step
                mask[:, where] = 1
                logits = self._run_step(token[:, None], next_position + step, mask, cache)
                self.stats.decode_steps += 1
        return Decoded(new, counts)

    def _run_step(self, token, position, mask, cache) -> torch.Tensor:
        if self._step is None:
            return self._eager_step(token, position, mask, cache)
        shape = (token.shape[0], mask.shape[1])
        first = shape not in self.step_shapes
        self.step_shapes.add(shape)
        start = time.perf_counter()
        try:
            with recompile_limit(self._patched_limit):
                logits = self._step(token, position, mask, cache)
        except torch.OutOfMemoryError:
            raise
        except Exception as error:  # noqa: BLE001 - any compiler failure means: run eager
            self._step = None
            self.stats.compile_failed = f"{type(error).__name__}: {error}"
            warnings.warn(
                f"torch.compile failed for the decode step of {type(self.model).__name__} "
                f"({type(error).__name__}: {str(error)[:200]}); decoding eager from now on. "
                "Pass compile=False to skip compiling.",
                RuntimeWarning,
                stacklevel=3,
            )
            return self._eager_step(token, position, mask, cache)
        if first:
            self.stats.compile_seconds[("step", *shape)] = time.perf_counter() - start
        return logits

    def _eager_step(self, token, position, mask, cache) -> torch.Tensor:
        out = self.model(
            input_ids=token,
            attention_mask=mask,
            position_ids=position,
            cache=cache,
            use_cache=True,
        )
        return out.logits[:, -1].float()

    def _cache(self, rows: int, length: int, device: torch.device) -> StaticCache:
        """A static cache of this shape, kept for the next batches of the same shape."""
        key = (rows, length)
        if key in self._caches:
            self._caches.move_to_end(key)
            return self._caches[key]
        while len(self._caches) >= KEPT_CACHES:
            self._caches.popitem(last=False)
        cache = StaticCache(config=self.model.config, max_cache_len=length)
        self._caches[key] = cache
        return cache
