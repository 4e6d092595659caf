"""The benchmark suites: which task runs on which model over which workload.

A suite is a function ``(folder, items, tiny) -> list[Case]`` that builds its
models into ``folder``; ``tiny`` swaps real sizes for tiny ones (the CLI's own
tests), ``items`` scales every workload.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipejit.bench import models, workloads
from pipejit.bench.measure import Case

TEXT = {"truncation": True}


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
    embedder = models.minilm_folder()
    return [
        Case(f"text-classification {size} x queries", "text-classification", classifier,
             workloads.queries(items), TEXT),
        Case(f"text-classification {size} x sentences", "text-classification", classifier,
             workloads.sentences(items), TEXT),
        Case(f"text-classification {size} x reviews", "text-classification", classifier,
             workloads.reviews(max(1, items // 4)), TEXT),
        Case("feature-extraction all-MiniLM-L6-v2 x reviews", "feature-extraction", embedder,
             workloads.reviews(max(1, items // 4)), TEXT),
    ]  # fmt: skip


def vision(folder: Path, items: int, tiny: bool) -> list[Case]:
    """A vit-base-size classifier over 224x224 and mixed-size images."""
    model = models.vit_classifier(folder / "vit", tiny=tiny)
    return [
        Case("image-classification vit x images", "image-classification", model,
             workloads.images(max(1, items // 4)), text=False),
    ]  # fmt: skip


def audio(folder: Path, items: int, tiny: bool) -> list[Case]:
    """A wav2vec2-base-size CTC recogniser over clips of 1 to 30 seconds."""
    model = models.wav2vec2_ctc(folder / "wav2vec2", tiny=tiny)
    clips = workloads.audio_clips(max(1, items // 16))
    return [
        Case("automatic-speech-recognition wav2vec2 x clips", "automatic-speech-recognition",
             model, clips, text=False),
    ]  # fmt: skip


def generation(folder: Path, items: int, tiny: bool) -> list[Case]:
    """A gpt2-size causal LM: mixed-length prompts, 64 new tokens each, greedy."""
    prompts = workloads.prompts(max(1, items // 8))
    model = models.gpt2_lm(folder / "gpt2", workloads.prompts(2000, seed=1), tiny=tiny)
    return [
        Case("text-generation gpt2 x prompts", "text-generation", model, prompts,
             {"max_new_tokens": 64, "do_sample": False}, text=False),
    ]  # fmt: skip


SUITES: dict[str, Callable[[Path, int, bool], list[Case]]] = {
    "quick": quick,
    "text": text,
    "vision": vision,
    "audio": audio,
    "generation": generation,
}
# "kernels" times the post-processing kernels instead of cases; "full" is every suite.
SUITE_NAMES = (*SUITES, "kernels", "full")
