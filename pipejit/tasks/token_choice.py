"""The next token of each row from its logits: greedy, or sampled through the kernel.

Greedy applies the repetition penalty (as transformers' processor does) and
takes the argmax; sampling hands everything to ``pipejit.kernels.sampling.sample``,
the one place the sampling kernel is called.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import GenerationConfig


@dataclass(frozen=True)
class TokenChooser:
    """How a call picks tokens; called with float32 logits [rows, vocab] and the
    tokens each row holds so far [rows, n] (-1 where none)."""

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0

    @classmethod
    def from_config(cls, config: GenerationConfig) -> TokenChooser:
        penalty = config.repetition_penalty
        if penalty is None or penalty <= 0:
            raise ValueError(f"repetition_penalty must be a positive float, got {penalty!r}")
        if not config.do_sample:
            return cls(repetition_penalty=float(penalty))
        temperature = 1.0 if config.temperature is None else float(config.temperature)
        if temperature <= 0:
            raise ValueError(f"temperature must be a positive float, got {temperature!r}")
        return cls(
            do_sample=True,
            temperature=temperature,
            top_k=int(config.top_k or 0),
            top_p=1.0 if config.top_p is None else float(config.top_p),
            repetition_penalty=float(penalty),
        )

    def __call__(self, logits: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
        if self.do_sample:
            from pipejit.kernels.sampling import sample

            return sample(
                logits,
                temperature=self.temperature,
                top_k=self.top_k,
                top_p=self.top_p,
                repetition_penalty=self.repetition_penalty,
                previous_tokens=seen,
            )
        if self.repetition_penalty != 1.0:
            logits = penalize_repeats(logits, seen, self.repetition_penalty)
        return logits.argmax(dim=-1)


def penalize_repeats(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """Divide the positive logits of tokens a row already holds by ``penalty`` and
    multiply the negative ones; -1 entries of ``seen`` are ignored."""
    rows, vocab = logits.shape
    # -1 entries write to a spare last column, dropped at the end
    index = torch.where(seen < 0, vocab, seen)
    padded = torch.cat([logits, logits.new_zeros(rows, 1)], dim=1)
    scores = padded.gather(1, index)
    scores = torch.where(scores < 0, scores * penalty, scores / penalty)
    return padded.scatter(1, index, scores)[:, :vocab]
