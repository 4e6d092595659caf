"""Tiny BERT-like models and a WordPiece tokenizer, built offline and saved to folders.

Both ``pipejit.pipeline`` and ``transformers.pipeline`` load these folders through
the real loading code, so parity tests compare the two on identical weights.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    BertTokenizer,
)

WORDS = """the a an of to in on at for with and or but not is was are were be been has have
had do does did will would can could should may might must this that these those it its
he she they we you i me him her them us my your our their who what which when where why how
movie film story actor actress plot scene music ending director camera script character
good bad great terrible awesome awful boring brilliant funny sad happy slow fast long short
restaurant food service table waiter dinner lunch price menu wine dessert coffee tea
paris london berlin tokyo york new city river street house school company bank market
john mary alice bob smith jones microsoft google apple amazon university hospital
love hate like enjoyed watched ate went saw made took gave found said told thought
very really quite too so much more most less little big small old young first last
day night week year time today yesterday tomorrow morning evening people man woman child
sports politics science technology business health travel weather economy election game
team player match goal win lose score season coach ball field court vote president law
""".split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
LETTERS = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-")
MAX_LENGTH = 128
NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
NLI_LABELS = ["contradiction", "neutral", "entailment"]


def build_tokenizer(folder: Path) -> BertTokenizer:
    """A lower-casing WordPiece tokenizer whose vocabulary covers any ASCII word."""
    vocab = list(dict.fromkeys(SPECIAL + LETTERS + ["##" + c for c in LETTERS] + sorted(WORDS)))
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = BertTokenizer(
        vocab={token: i for i, token in enumerate(vocab)}, model_max_length=MAX_LENGTH
    )
    tokenizer.save_pretrained(folder)
    return tokenizer


def bert_config(tokenizer: BertTokenizer, **overrides) -> BertConfig:
    settings = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=MAX_LENGTH,
        pad_token_id=tokenizer.pad_token_id,
    )
    settings.update(overrides)
    return BertConfig(**settings)


def _labels(names: list[str]) -> dict:
    return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}


BUILDERS = {
    "text-classification": lambda tok: BertForSequenceClassification(
        bert_config(tok, **_labels(["negative", "neutral", "positive"]))
    ),
    "text-classification-single": lambda tok: BertForSequenceClassification(
        bert_config(tok, num_labels=1)
    ),
    "text-classification-regression": lambda tok: BertForSequenceClassification(
        bert_config(tok, num_labels=2, problem_type="regression")
    ),
    "token-classification": lambda tok: BertForTokenClassification(
        bert_config(tok, **_labels(NER_LABELS))
    ),
    "fill-mask": lambda tok: BertForMaskedLM(bert_config(tok)),
    "feature-extraction": lambda tok: BertModel(bert_config(tok)),
    "zero-shot-classification": lambda tok: BertForSequenceClassification(
        bert_config(tok, **_labels(NLI_LABELS))
    ),
}


def build_model_folder(kind: str, folder: Path, seed: int = 0) -> Path:
    """Save a tiny model of ``kind`` (a key of ``BUILDERS``) with its tokenizer in ``folder``."""
    tokenizer = build_tokenizer(folder)
    torch.manual_seed(seed)
    model = BUILDERS[kind](tokenizer).eval()
    _spread_weights(model)
    model.save_pretrained(folder)
    return folder


def _spread_weights(model: torch.nn.Module) -> None:
    """Larger random weights than the init's, so that labels and scores differ clearly."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 2 and any(k in name for k in ("classifier", "decoder", "pooler")):
                param.normal_(0, 0.5)
            elif param.dim() == 2:
                param.normal_(0, 0.1)


def sentences(count: int, seed: int = 0, min_words: int = 1, max_words: int = 30) -> list[str]:
    """Mixed-length sentences of known words plus a few unknown ones, in random order."""
    rng = random.Random(seed)
    extra = ["zyx", "Quokka", "naïve", "H2O", "McDonald's"]
    out = []
    for _ in range(count):
        n = rng.randint(min_words, max_words)
        words = [rng.choice(WORDS + extra) for _ in range(n)]
        words[0] = words[0].capitalize()
        out.append(" ".join(words) + rng.choice([".", "!", "?", ""]))
    return out
