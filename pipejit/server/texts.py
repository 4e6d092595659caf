"""Token counts and truncation for text requests, done on the server's own tokenizer copy.

The length check (an over-long input without ``truncate`` is refused before it is
queued), OpenAI's ``usage`` counts and left truncation need tokens on the event
loop. They use a private copy of the pipeline's fast tokenizer with truncation and
padding off: a Rust tokenizer whose settings another thread changes mid-call raises
"Already borrowed", and the micro-batcher's worker tokenizes with the original.
"""

from __future__ import annotations

from typing import Any

from tokenizers import Encoding, Tokenizer

from pipejit.server.errors import too_large

DIRECTIONS = ("Right", "Left")


class TextLimits:
    """Count tokens and enforce ``max_input_length`` (tokens, special tokens included)."""

    def __init__(self, tokenizer: Any, max_input_length: int):
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ValueError(
                f"pipejit serve needs a fast (Rust) tokenizer, got {type(tokenizer).__name__}"
            )
        self.tokenizer = Tokenizer.from_str(backend.to_str())
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.max_input_length = max_input_length

    def encode(self, text: str, pair: str | None = None) -> Encoding:
        return self.tokenizer.encode(text, pair)

    def prepare(
        self, texts: list[str], truncate: bool, direction: str = "Right", name: str = "inputs"
    ) -> tuple[list[str], list[int]]:
        """The texts to run (left truncation cuts their start) and each one's token count
        as it will run; an over-long text without ``truncate`` is a 413 naming it."""
        prepared, counts = [], []
        for index, text in enumerate(texts):
            encoding = self.tokenizer.encode(text)
            count = len(encoding.ids)
            if count > self.max_input_length:
                if not truncate:
                    raise too_large(self._too_long(name, index, len(texts), count))
                if direction == "Left":
                    text = _cut_start(text, encoding, self.max_input_length)
                count = self.max_input_length
            prepared.append(text)
            counts.append(count)
        return prepared, counts

    def check_pairs(self, first: str, seconds: list[str], truncate: bool, name: str) -> list[int]:
        """Token counts of (first, second) pairs, which truncate longest-first."""
        counts = []
        for index, second in enumerate(seconds):
            count = len(self.tokenizer.encode(first, second).ids)
            if count > self.max_input_length and not truncate:
                raise too_large(self._too_long(name, index, len(seconds), count))
            counts.append(min(count, self.max_input_length))
        return counts

    def truncation_params(self) -> dict[str, Any]:
        """Tokenizer arguments that cut an input to the limit on the right."""
        return {"truncation": True, "max_length": self.max_input_length}

    def _too_long(self, name: str, index: int, total: int, count: int) -> str:
        where = name if total == 1 else f"{name}[{index}]"
        return (
            f"{where} must have at most {self.max_input_length} tokens, given {count}; "
            "send truncate=true to cut it"
        )


def _cut_start(text: str, encoding: Encoding, limit: int) -> str:
    """``text`` without its start, so that its last whole words fit in ``limit`` tokens."""
    content = [i for i, seq in enumerate(encoding.sequence_ids) if seq == 0]
    keep = limit - (len(encoding.ids) - len(content))
    if keep <= 0:
        return ""
    first = len(content) - keep
    words = encoding.word_ids
    # a cut inside a word would re-tokenize its rest as a new word: start at the next word
    while 0 < first < len(content) and words[content[first]] == words[content[first - 1]]:
        first += 1
    if first >= len(content):
        first = len(content) - keep
    return text[encoding.offsets[content[first]][0] :]
