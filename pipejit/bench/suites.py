"""The benchmark suites: which task runs on which model over which workload.

A case suite is a function ``(folder, items, tiny) -> list[Case]`` that builds its
models into ``folder``; ``tiny`` swaps real sizes for tiny ones (the CLI's own
tests), ``items`` scales every workload. Each case runs through
``pipejit.bench.measure.run_case``. The suites that are not one task called on a
list of inputs (serving, HTTP, Ray Data, kernels) are in ``SETTINGS_SUITES``: each
is a function ``(folder, options) -> list[dict]`` whose results have the same
shape (see ``pipejit.bench.report``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path

from pipejit.bench import models, tts_model, vision_models, workloads
from pipejit.bench.measure import Case
from pipejit.bench.whisper_model import whisper_asr

TEXT = {"truncation": True}
SAMPLING_RATE = 16_000
LABELS = ["a cat", "the dog", "a photo of a car", "mountains", "a boat", "people", "food", "sky"]


def quick(folder: Path, items: int, tiny: bool) -> list[Case]:
    """The README's main job: a distilbert-size classifier and the real MiniLM embedder."""
    size = "tiny" if tiny else "distilbert"
    texts = workloads.sentences(items)
    return [
        Case(
            f"text-classification {size} x sentences",
            "text-classification",
            models.random_classifier(size, folder / "classifier"),
            texts,
            TEXT,
        ),
        Case(
            "feature-extraction all-MiniLM-L6-v2 x sentences",
            "feature-extraction",
            models.minilm_folder(),
            texts,
            TEXT,
        ),
    ]


def text(folder: Path, items: int, tiny: bool) -> list[Case]:
    """The classifier over short queries, sentences and long reviews; embeddings."""
    size = "tiny" if tiny else "distilbert"
    classifier = models.random_classifier(size, folder / "classifier")
    # tiny: the classifier's encoder embeds too (the real MiniLM costs seconds to set up)
    embedder, embedder_name = (
        (classifier, size) if tiny else (models.minilm_folder(), "all-MiniLM-L6-v2")
    )
    return [
        Case(f"text-classification {size} x queries", "text-classification", classifier,
             workloads.queries(items), TEXT),
        Case(f"text-classification {size} x sentences", "text-classification", classifier,
             workloads.sentences(items), TEXT),
        Case(f"text-classification {size} x reviews", "text-classification", classifier,
             workloads.reviews(max(1, items // 4)), TEXT),
        Case(f"feature-extraction {embedder_name} x reviews", "feature-extraction", embedder,
             workloads.reviews(max(1, items // 4)), TEXT),
    ]  # fmt: skip


def vision(folder: Path, items: int, tiny: bool) -> list[Case]:
    """A vit-base-size classifier over photo-like and noise images; zero-shot CLIP and OWL-ViT."""
    model = models.vit_classifier(folder / "vit", tiny=tiny)
    clip = vision_models.clip(folder / "clip", tiny=tiny)
    owlvit = vision_models.owlvit(folder / "owlvit", tiny=tiny)
    return [
        Case("image-classification vit x images", "image-classification", model,
             workloads.images(max(1, items // 4)), text=False),
        Case("image-classification vit x noise images", "image-classification", model,
             workloads.noise_images(max(1, items // 2)), text=False),
        Case("zero-shot-image-classification clip x small images",
             "zero-shot-image-classification", clip,
             workloads.noise_images(max(1, items // 4), seed=1, low=16, high=80),
             {"candidate_labels": LABELS}, text=False),
        Case("zero-shot-object-detection owlvit x small images", "zero-shot-object-detection",
             owlvit, workloads.noise_images(max(1, items // 16), seed=1, low=16, high=80),
             {"candidate_labels": LABELS[:4]}, text=False),
    ]  # fmt: skip


def audio(folder: Path, items: int, tiny: bool) -> list[Case]:
    """wav2vec2-base-size CTC (group and layer norm) over clips of 1 to 30 s; a whisper-tiny-size
    recogniser over clips of 5 to 60 s in 30 s chunks; an mms-tts-eng-size VITS speaking."""
    asr = "automatic-speech-recognition"
    # tiny models cost far more per second of audio than real ones (a tiny wav2vec2
    # shortens a clip 10 times, not 320; a tiny whisper's window is 10 s): short clips
    longest = {"longest_s": 3 if tiny else 30}
    clips = workloads.audio_clips(max(1, items // 16), **longest)
    long_clips = workloads.long_clips(max(1, items // 16), longest_s=15 if tiny else 60)
    whisper = whisper_asr(folder / "whisper", workloads.sentences(2000, seed=3), tiny=tiny)
    # random weights rarely stop on their own: cap each chunk near what 30 s of speech holds
    chunks = (
        {"chunk_length_s": 10, "generate_kwargs": {"max_new_tokens": 8}}
        if tiny
        else {"chunk_length_s": 30, "generate_kwargs": {"max_new_tokens": 96}}
    )
    seconds = {"unit": "s of audio", "count_units": _seconds_in}
    vits = tts_model.vits(folder / "vits", tiny=tiny)
    return [
        Case("automatic-speech-recognition wav2vec2 x clips", asr,
             models.wav2vec2_ctc(folder / "wav2vec2", tiny=tiny), clips, text=False, **seconds),
        Case("automatic-speech-recognition wav2vec2 layer-norm x clips", asr,
             models.wav2vec2_ctc(folder / "wav2vec2-ln", tiny=tiny, layer_norm=True),
             workloads.audio_clips(max(1, items // 8), **longest), text=False, **seconds),
        Case("automatic-speech-recognition whisper x long clips", asr, whisper,
             long_clips, {**chunks, "ignore_warning": True},
             text=False, **seconds),
        Case("text-to-audio vits x texts", "text-to-audio",
             vits, workloads.speech_texts(max(1, items // 16)),
             text=False, unit="s of audio", count_units=_seconds_out),
    ]  # fmt: skip


def generation(folder: Path, items: int, tiny: bool) -> list[Case]:
    """gpt2-size causal LMs, greedy, 64 new tokens a prompt (tiny: 8): a trained byte-level BPE over
    prompts of 4 to 60 words, and GPT-2's 50,257-token output layer over 4 to 120 words."""
    prompts = workloads.prompts(max(1, items // 8))
    model = models.gpt2_lm(folder / "gpt2", workloads.prompts(2000, seed=1), tiny=tiny)
    wide = models.gpt2_wordpiece_lm(folder / "gpt2-50257", tiny=tiny)
    greedy = {"max_new_tokens": 8 if tiny else 64, "do_sample": False}
    return [
        Case("text-generation gpt2 x prompts", "text-generation", model, prompts, greedy,
             text=False, unit="new tokens", count_units=_new_tokens(model)),
        Case("text-generation gpt2-50257 x long prompts", "text-generation", wide,
             workloads.prompts(max(1, items // 4), most_words=120),
             {**greedy, "return_tensors": True}, text=False, unit="new tokens",
             count_units=_new_tokens(wide)),
    ]  # fmt: skip


def _seconds_in(clips: list, outputs: list) -> float:
    return sum(len(clip) for clip in clips) / SAMPLING_RATE


def _seconds_out(texts: list, outputs: list) -> float:
    return sum(out["audio"].size / out["sampling_rate"] for out in outputs)


def _new_tokens(model: str) -> Callable[[list, list], float]:
    """New tokens of transformers' outputs: their ids (or their text, tokenized again),
    less the prompt's."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)

    def count(prompts: list[str], outputs: list) -> float:
        total = 0
        for prompt, (out, *_) in zip(prompts, outputs):
            ids = out.get("generated_token_ids")
            made = len(ids) if ids is not None else len(tokenizer(out["generated_text"]).input_ids)
            total += made - len(tokenizer(prompt).input_ids)
        return total

    return count


SUITES: dict[str, Callable[[Path, int, bool], list[Case]]] = {
    "quick": quick,
    "text": text,
    "vision": vision,
    "audio": audio,
    "generation": generation,
}
# each suite measured otherwise than by run_case: its module:function (imported when
# run), what it compares, and the flags of ``pipejit-bench run`` it reads
SETTINGS_SUITES = {
    "kernels": (
        "pipejit.bench.kernel_timings:suite",
        "post-processing kernels: triton, torch and transformers' own step, per shape; "
        "fill-mask's LM head on mask rows against all rows",
        "--batch-sizes --row-lengths --kernel-dtypes --no-gather",
    ),
    "serve": (
        "pipejit.bench.serve:suite",
        "one-input callers: direct calls against the micro-batcher (pipe.serve())",
        "--callers --max-wait-ms --items (x4 requests)",
    ),
    "http": (
        "pipejit.bench.http:suite",
        "pipejit serve against a FastAPI app calling transformers per request",
        "--clients --max-wait-ms --items (x2 requests)",
    ),
    "cold-start": (
        "pipejit.bench.cold_start:suite",
        "a new process's first compiled result: cold, warm from its compile_cache folder, "
        "and from the folder's portable artifacts alone",
        "--repeats --tiny",
    ),
    "ray": (
        "pipejit.bench.ray_data:suite",
        "Ray Data: single process, 1 actor, N actors",
        "--actors --items (x16 rows)",
    ),
}
SUITE_NAMES = (*SUITES, *SETTINGS_SUITES, "full")  # "full": every suite but quick


@dataclass
class Options:
    """What a settings suite reads from ``pipejit-bench run``'s flags."""

    device: str = "cpu"
    items: int = 128  # scales every workload: requests, rows
    tiny: bool = False
    repeats: int = 2  # interleaved rounds
    compile: bool = True
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 32])
    callers: list[int] = field(default_factory=lambda: [32])  # serve
    clients: list[int] = field(default_factory=lambda: [1, 8, 64])  # http
    max_wait_ms: float | None = None  # serve: 5, http: 0 (as pipejit serve's default)
    actors: int = 2  # ray
    row_lengths: list[int] = field(default_factory=lambda: [2, 1000, 30522, 250002])  # kernels
    kernel_dtypes: list[str] = field(default_factory=lambda: ["float32"])
    gather: bool = True  # kernels: also fill-mask with the LM head on mask rows only


def settings_suite(name: str) -> Callable[[Path, Options], list[dict]]:
    """The function of settings suite ``name``."""
    module, function = SETTINGS_SUITES[name][0].split(":")
    return getattr(import_module(module), function)
