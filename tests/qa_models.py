"""Tiny TAPAS and LayoutLM question-answering models, built offline and saved to folders.

The tokenizers take a hand-written vocabulary (the words of ``tests.models`` plus
single characters), so any ASCII text tokenizes without a hub download.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    BertTokenizer,
    LayoutLMConfig,
    LayoutLMForQuestionAnswering,
    TapasConfig,
    TapasForQuestionAnswering,
    TapasTokenizer,
)

from tests.models import LETTERS, SPECIAL, WORDS

MAX_LENGTH = 128
AGGREGATORS = {0: "NONE", 1: "SUM", 2: "AVERAGE", 3: "COUNT"}


def _vocab(extra: list[str]) -> list[str]:
    letters = LETTERS + ["##" + c for c in LETTERS]
    return list(dict.fromkeys(SPECIAL + extra + letters + sorted(WORDS)))


def build_tapas_folder(folder: Path, aggregation: bool = True, seed: int = 0) -> Path:
    """A TAPAS question-answering model (with or without an aggregation head) and tokenizer."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(_vocab(["[EMPTY]"])) + "\n")
    tokenizer = TapasTokenizer(str(vocab_file), model_max_length=MAX_LENGTH)
    tokenizer.save_pretrained(folder)
    heads = (
        dict(
            num_aggregation_labels=len(AGGREGATORS),
            aggregation_labels=AGGREGATORS,
            no_aggregation_label_index=0,
        )
        if aggregation
        else dict(num_aggregation_labels=0)
    )
    config = TapasConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=MAX_LENGTH,
        **heads,
    )
    torch.manual_seed(seed)
    model = TapasForQuestionAnswering(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 2 and "embeddings" not in name:
                param.normal_(0, 0.2)
        # cell logits far from 0, so no cell sits on the 0.5 selection threshold by chance
        model.output_weights.normal_(0, 1.0)
        model.column_output_weights.normal_(0, 1.0)
        if aggregation:
            for param in model.aggregation_classifier.parameters():
                param.normal_(0, 1.0)
    model.save_pretrained(folder)
    return folder


def build_layoutlm_folder(folder: Path, seed: int = 0) -> Path:
    """A LayoutLM (v1, text and boxes only) extractive question-answering model and tokenizer."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = _vocab([])
    tokenizer = BertTokenizer(
        vocab={token: i for i, token in enumerate(vocab)}, model_max_length=MAX_LENGTH
    )
    tokenizer.save_pretrained(folder)
    config = LayoutLMConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=MAX_LENGTH,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LayoutLMForQuestionAnswering(config).eval()
    with torch.no_grad():
        model.qa_outputs.weight.normal_(0, 0.5)
    model.save_pretrained(folder)
    return folder
