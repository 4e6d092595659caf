"""Tiny wav2vec2 and CLAP models with their processors, built offline and saved to folders.

Both ``pipejit.pipeline`` and ``transformers.pipeline`` load these folders, so the
audio parity tests compare the two on identical weights. Clips are synthetic:
a few tones and noise at a fixed seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from transformers import (
    ClapAudioConfig,
    ClapConfig,
    ClapFeatureExtractor,
    ClapModel,
    ClapProcessor,
    ClapTextConfig,
    RobertaTokenizer,
    Wav2Vec2Config,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForCTC,
    Wav2Vec2ForSequenceClassification,
    Wav2Vec2Processor,
)

SAMPLING_RATE = 16_000
AUDIO_LABELS = ["yes", "no", "up", "down", "left", "right", "stop"]
CTC_VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", *"abcdehilmnorstuy'"]


def wav2vec2_config(group_norm: bool, **overrides) -> Wav2Vec2Config:
    """20 samples per frame, two small layers; layer norm takes an attention mask."""
    settings = dict(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8, 8, 8),
        conv_kernel=(10, 3, 3),
        conv_stride=(5, 2, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="group" if group_norm else "layer",
        do_stable_layer_norm=not group_norm,
        mask_time_prob=0.0,
        vocab_size=len(CTC_VOCAB),
        pad_token_id=0,
        classifier_proj_size=8,
    )
    settings.update(overrides)
    return Wav2Vec2Config(**settings)


def feature_extractor(group_norm: bool) -> Wav2Vec2FeatureExtractor:
    return Wav2Vec2FeatureExtractor(
        sampling_rate=SAMPLING_RATE, do_normalize=True, return_attention_mask=not group_norm
    )


def _spread(model: torch.nn.Module, *heads: str) -> None:
    """Random heads with a wide spread, so that labels and tokens vary between clips."""
    torch.manual_seed(0)
    for name in heads:
        torch.nn.init.normal_(getattr(model, name).weight, std=2.0)


def build_classifier(folder: Path, group_norm: bool = False) -> Path:
    labels = {"id2label": dict(enumerate(AUDIO_LABELS))}
    labels["label2id"] = {n: i for i, n in labels["id2label"].items()}
    torch.manual_seed(0)
    model = Wav2Vec2ForSequenceClassification(wav2vec2_config(group_norm, **labels)).eval()
    _spread(model, "classifier")
    model.save_pretrained(folder)
    feature_extractor(group_norm).save_pretrained(folder)
    return folder


def build_ctc(folder: Path, group_norm: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.json"
    vocab_file.write_text(json.dumps({token: i for i, token in enumerate(CTC_VOCAB)}))
    tokenizer = Wav2Vec2CTCTokenizer(str(vocab_file), word_delimiter_token="|")
    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(wav2vec2_config(group_norm)).eval()
    _spread(model, "lm_head")
    model.save_pretrained(folder)
    Wav2Vec2Processor(feature_extractor(group_norm), tokenizer).save_pretrained(folder)
    return folder


def build_clap(folder: Path) -> Path:
    """A tiny CLAP: a 2-layer RoBERTa text tower and a small HTSAT audio tower."""
    folder.mkdir(parents=True, exist_ok=True)
    from tests.models import WORDS

    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])}
    for word in sorted(set(WORDS) | {"this", "is", "sound", "of", "dog", "cat", "car", "rain"}):
        vocab.setdefault("\u0120" + word, len(vocab))
        vocab.setdefault(word, len(vocab))
    vocab.setdefault(".", len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = RobertaTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    text = ClapTextConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        projection_dim=8,
    )
    audio = ClapAudioConfig(
        hidden_size=16,
        patch_embeds_hidden_size=8,
        depths=[1, 1],
        num_attention_heads=[2, 2],
        spec_size=64,
        window_size=4,
        num_mel_bins=16,
        patch_size=4,
        projection_dim=8,
        enable_fusion=False,
    )
    torch.manual_seed(0)
    model = ClapModel(
        ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=8)
    ).eval()
    model.save_pretrained(folder)
    extractor = ClapFeatureExtractor(
        feature_size=16,
        sampling_rate=SAMPLING_RATE,
        hop_length=160,
        max_length_s=2,
        fft_window_size=400,
        frequency_max=SAMPLING_RATE // 2,
        truncation="rand_trunc",
        padding="repeatpad",
    )
    ClapProcessor(extractor, tokenizer).save_pretrained(folder)
    return folder


AUDIO_BUILDERS = {
    "audio-classification": build_classifier,
    "audio-classification-group": lambda f: build_classifier(f, group_norm=True),
    "ctc": build_ctc,
    "ctc-group": lambda f: build_ctc(f, group_norm=True),
    "clap": build_clap,
}


def clip(seconds: float, seed: int, rate: int = SAMPLING_RATE) -> np.ndarray:
    """A float32 clip of a few tones under noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    tones = sum(
        rng.uniform(0.1, 0.4) * np.sin(2 * np.pi * rng.uniform(100, 3000) * t) for _ in range(3)
    )
    return (tones + 0.05 * rng.standard_normal(t.shape)).astype(np.float32)


def clips(count: int, seed: int = 0, low: float = 0.3, high: float = 3.0) -> list[np.ndarray]:
    """``count`` clips of mixed durations between ``low`` and ``high`` seconds."""
    rng = np.random.default_rng(seed)
    return [clip(float(rng.uniform(low, high)), seed * 1000 + i) for i in range(count)]


def audio_pipelines(tmp_path_factory):
    """``get(kind, task, **options)`` -> (transformers pipeline, eager pipejit pipeline),
    both loaded from one tiny model folder built once per kind."""
    import transformers

    import pipejit

    folders: dict[str, Path] = {}

    def get(kind: str, task: str, **options):
        if kind not in folders:
            folders[kind] = AUDIO_BUILDERS[kind](tmp_path_factory.mktemp(kind.replace("-", "_")))
        folder = str(folders[kind])
        options.setdefault("compile", False)
        return transformers.pipeline(task, model=folder), pipejit.pipeline(
            task, model=folder, **options
        )

    return get
