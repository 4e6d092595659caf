"""Tiny decoder-only language models (GPT-2-like, Llama-like) with byte-level BPE
tokenizers trained offline, saved to folders that both pipelines load.

The tokenizers carry a chat template, so chat inputs run through the real
``apply_chat_template`` path. The Llama-like tokenizer adds a BOS token and has a
pad token of its own; the GPT-2-like one has none (transformers pads with EOS).
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    GenerationConfig,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from tests.models import WORDS

MAX_POSITIONS = 128
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}"
    "{% if not loop.last or not continue_final_message %}<|end|>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
ROLE_TOKENS = ["<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]


def _corpus() -> list[str]:
    lines = []
    for i in range(0, len(WORDS), 7):
        lines.append(" ".join(WORDS[i : i + 7]))
        lines.append(" ".join(reversed(WORDS[i : i + 9])).capitalize() + ".")
    return lines * 3


def _train_bpe(specials: list[str], vocab_size: int = 400) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer)
    return tokenizer


def build_gpt2_tokenizer(folder: Path) -> PreTrainedTokenizerFast:
    raw = _train_bpe(["<|endoftext|>", *ROLE_TOKENS])
    raw.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        model_max_length=MAX_POSITIONS,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    return tokenizer


def build_llama_tokenizer(folder: Path) -> PreTrainedTokenizerFast:
    raw = _train_bpe(["<pad>", "<s>", "</s>", *ROLE_TOKENS])
    raw.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", raw.token_to_id("<s>"))]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        model_max_length=MAX_POSITIONS,
    )
    tokenizer.chat_template = "<s>" + CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    return tokenizer


def _gpt2(tokenizer, **overrides) -> GPT2LMHeadModel:
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=MAX_POSITIONS,
        n_embd=32,
        n_layer=2,
        n_head=4,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **overrides,
    )
    return GPT2LMHeadModel(config)


def _llama(tokenizer, **overrides) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **overrides,
    )
    return LlamaForCausalLM(config)


BUILDERS = {
    "gpt2": (build_gpt2_tokenizer, _gpt2),
    "llama": (build_llama_tokenizer, _llama),
}


def build_generation_folder(kind: str, folder: Path, generation: dict | None = None) -> Path:
    """Save a tiny ``kind`` model ("gpt2" or "llama") and its tokenizer to ``folder``.

    ``generation`` sets the model's saved generation config (its defaults). The
    output embeddings are scaled up so that greedy decoding is far from ties
    and EOS is likely within a few dozen tokens.
    """
    build_tokenizer, build_model = BUILDERS[kind]
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(folder)
    torch.manual_seed(0)
    return save_widened(build_model(tokenizer), tokenizer, folder, generation)


def save_widened(model, tokenizer, folder: Path, generation: dict | None = None) -> Path:
    """Draw every weight matrix wide (std 0.3, far from greedy ties), give the model a
    generation config with the tokenizer's special ids (and ``generation``), save it."""
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() > 1:
                param.normal_(0.0, 0.3)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **(generation or {}),
    )
    model.save_pretrained(folder)
    return folder
