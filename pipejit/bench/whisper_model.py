"""Whisper-like speech recognizers with random weights and an offline tokenizer.

No checkpoint can be downloaded here, so the tokenizer is a byte-level BPE
trained on given texts, with Whisper's special tokens in Whisper's order (start
of transcript, languages, tasks, ..., no-timestamps) and one timestamp token per
20 ms of the window after them, so that transformers' Whisper decoding (initial
tokens, timestamp rules, ``_decode_asr``) runs on it unchanged. ``whisper_asr``
saves a whisper-tiny-size model (or a tiny one for tests) with it.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path

import torch
import transformers

TASKS = ("translate", "transcribe")
# whisper-tiny's layers; the vocabulary is the trained tokenizer's, not Whisper's 51,865
TINY_SIZE = dict(
    d_model=384,
    encoder_layers=4,
    decoder_layers=4,
    encoder_attention_heads=6,
    decoder_attention_heads=6,
    encoder_ffn_dim=1536,
    decoder_ffn_dim=1536,
)


def special_tokens(languages: Iterable[str]) -> list[str]:
    return [
        "<|endoftext|>",
        "<|startoftranscript|>",
        *(f"<|{code}|>" for code in languages),
        *(f"<|{task}|>" for task in TASKS),
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nocaptions|>",
        "<|notimestamps|>",
    ]


def whisper_tokenizer(
    texts: list[str], vocab_size: int, languages: Iterable[str], window_seconds: int
) -> transformers.WhisperTokenizer:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(texts, trainer)
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file, merges_file = raw.model.save(tmp)
        vocab = json.loads(Path(vocab_file).read_text())
        lines = Path(merges_file).read_text().splitlines()
    merges = [tuple(line.split(" ")) for line in lines if line and not line.startswith("#")]
    tokenizer = transformers.WhisperTokenizer(
        vocab=vocab, merges=merges, pad_token="<|endoftext|>", model_max_length=448
    )
    # registered as special so that timestamp tokens start right after <|notimestamps|>
    tokenizer.add_special_tokens({"additional_special_tokens": special_tokens(languages)[1:]})
    tokenizer.add_tokens([f"<|{i * 0.02:.2f}|>" for i in range(window_seconds * 50 + 1)])
    return tokenizer


def generation_config(
    tokenizer: transformers.WhisperTokenizer,
    languages: Iterable[str] | None,
    max_length: int,
    alignment_heads: list[list[int]],
) -> transformers.GenerationConfig:
    """What a Whisper checkpoint ships: multilingual when ``languages`` are given."""
    ids = tokenizer.convert_tokens_to_ids
    eos = ids("<|endoftext|>")
    settings = dict(
        decoder_start_token_id=ids("<|startoftranscript|>"),
        eos_token_id=eos,
        pad_token_id=eos,
        bos_token_id=eos,
        no_timestamps_token_id=ids("<|notimestamps|>"),
        prev_sot_token_id=ids("<|startofprev|>"),
        max_length=max_length,
        num_beams=1,
        max_initial_timestamp_index=50,
        # as Whisper: no transcript starts with a bare space or ends at once
        begin_suppress_tokens=[ids("\u0120"), eos],
        suppress_tokens=[ids("<|startoflm|>"), ids("<|nocaptions|>")],
        is_multilingual=bool(languages),
        alignment_heads=alignment_heads,
    )
    if languages:
        settings["lang_to_id"] = {f"<|{code}|>": ids(f"<|{code}|>") for code in languages}
        settings["task_to_id"] = {task: ids(f"<|{task}|>") for task in TASKS}
    return transformers.GenerationConfig(**settings)


def whisper_asr(
    folder: Path,
    texts: list[str],
    *,
    tiny: bool = False,
    languages: Iterable[str] | None = None,
    seed: int = 0,
) -> str:
    """Save a Whisper-like model with its tokenizer and feature extractor to ``folder``.

    Full size: whisper-tiny's layers, 80 mel bins and a 30-second window, decoding
    up to 448 positions. ``tiny``: width 32, 2+2 layers, 16 mel bins, a 10-second
    window and 24 positions, for tests. Weights are drawn wide (std 0.3) so that
    greedy decoding is far from ties and transcripts vary with the audio.
    """
    folder.mkdir(parents=True, exist_ok=True)
    languages = tuple(languages or ())
    window = 10 if tiny else 30
    tokenizer = whisper_tokenizer(texts, 300 if tiny else 4096, languages or ("en",), window)
    mels = 16 if tiny else 80
    extractor = transformers.WhisperFeatureExtractor(feature_size=mels, chunk_length=window)
    positions = 24 if tiny else 448
    sizes = (
        dict(
            d_model=32,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
        )
        if tiny
        else TINY_SIZE
    )
    eos = tokenizer.eos_token_id
    config = transformers.WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=mels,
        max_source_positions=extractor.nb_max_frames // 2,
        max_target_positions=positions,
        decoder_start_token_id=tokenizer.convert_tokens_to_ids("<|startoftranscript|>"),
        eos_token_id=eos,
        pad_token_id=eos,
        bos_token_id=eos,
        begin_suppress_tokens=None,
        suppress_tokens=None,
        **sizes,
    )
    torch.manual_seed(seed)
    model = transformers.WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() > 1 and "embed_positions" not in name:
                param.normal_(0.0, 0.3)
        # Timestamp tokens score near zero (their output rows are tied to these), so they
        # are picked only where Whisper's timestamp rules force them: a random model that
        # emitted them freely can keep transformers' seek loop from advancing.
        first_timestamp = tokenizer.convert_tokens_to_ids("<|notimestamps|>") + 1
        model.get_decoder().embed_tokens.weight[first_timestamp:].normal_(0.0, 0.01)
    heads = [[layer, 0] for layer in range(sizes["decoder_layers"])]
    # as Whisper checkpoints: generation may run up to the decoder's positions
    model.generation_config = generation_config(tokenizer, languages, positions, heads)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    extractor.save_pretrained(folder)
    return str(folder)
