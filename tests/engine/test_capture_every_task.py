"""Every capturable task's step, recorded and replayed as a CUDA graph would be, at parity.

On a CPU ``with_graphs`` (tests/engine/capture_standin.py) records a forward task's
step (forward plus ``reduce``) with ``RecordingCapture``, which refuses host syncs and
tensors the engine does not own and replays only the traced operations: a task whose
step a real CUDA graph could not hold fails here. Each task runs on the tiny model its
own test module uses, batches of several rows are captured, and a second call replays.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import pytest
import transformers

import pipejit
from pipejit.contract import StepTask
from pipejit.registry import TASK_CLASSES
from tests.audio_models import audio_pipelines, clips
from tests.engine.capture_standin import with_graphs
from tests.models import WORDS, sentences
from tests.parity import assert_same
from tests.qa_models import build_layoutlm_folder, build_tapas_folder
from tests.vision_models import assert_same_images, images, vision_pair
from tests.vision_zero_shot_models import images as mixed_images
from tests.vision_zero_shot_models import pipeline_pair, write_video

# The task classes whose step is captured; a class that changes kind must change this.
CAPTURABLE = {
    "TextClassification",
    "TokenClassification",
    "FeatureExtraction",
    "ZeroShotClassification",
    "ImageClassification",
    "ImageFeatureExtraction",
    "ObjectDetection",
    "ImageSegmentation",
    "DepthEstimation",
    "ZeroShotImageClassification",
    "VideoClassification",
    "ZeroShotObjectDetection",
    "TableQuestionAnswering",
    "DocumentQuestionAnswering",
    "AudioClassification",
    "SpeechRecognitionCTC",
    "ZeroShotAudioClassification",
}

# lengths in one bucket, so that each call is one batch and one capture
TEXTS = sentences(3, seed=3, min_words=8, max_words=8)
# one size: models that keep the aspect ratio put every image in one shape group
SAME_SIZE = [image.resize((56, 40)) for image in images(3, seed=7)]
# all under the first audio bucket of 0.5 s (8000 samples)
CLIPS = clips(4, seed=4, low=0.2, high=0.5)
TABLE = {
    "movie": ["the plot", "good film", "bad story"],
    "year": ["1999", "2001", "2005"],
    "score": ["5", "7", "3"],
}


def _boxes(words: list[str]) -> list:
    return [(word, [40 * i, 10, 40 * i + 30, 60]) for i, word in enumerate(words)]


DOCUMENTS = [
    {"image": None, "question": question, "word_boxes": _boxes(WORDS[start : start + 12])}
    for question, start in [("what is the price", 60), ("who is the director", 40)]
]


def _text(kind: str) -> Callable:
    return lambda env: env.pipelines(kind)


def _vision(kind: str) -> Callable:
    return lambda env: vision_pair(kind, env.folder(kind))


def _zero_shot_vision(kind: str, task: str) -> Callable:
    return lambda env: pipeline_pair(kind, task, env.folder(kind))


def _audio(kind: str, task: str) -> Callable:
    return lambda env: env.audio(kind, task)


def _from_folder(task: str, build: Callable) -> Callable:
    def make(env):
        folder = str(build(env.folder(task)))
        return transformers.pipeline(task, model=folder), pipejit.pipeline(
            task, model=folder, compile=False
        )

    return make


def _depths_equal(actual, expected) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert list(a) == list(e) == ["predicted_depth", "depth"]
        assert_same(a["predicted_depth"], e["predicted_depth"])
        assert_same_images(a["depth"], e["depth"])


def _segments_equal(actual, expected) -> None:
    assert len(actual) == len(expected)
    for segments, reference in zip(actual, expected):
        assert [s["label"] for s in segments] == [s["label"] for s in reference]
        for a, e in zip(segments, reference):
            assert list(a) == list(e) == ["score", "label", "mask"]
            assert_same(a["score"], e["score"])
            assert_same_images(a["mask"], e["mask"])


@dataclass
class Case:
    """One task's run: how its pipelines are built and called, and how outputs compare."""

    pair: Callable[[Any], tuple]
    inputs: Callable[[Any], list]
    options: dict[str, Any] = field(default_factory=dict)
    # how transformers is called for the expected outputs (default: the same call)
    reference: Callable[[Any, list, dict], Any] | None = None
    compare: Callable[[Any, Any], None] = assert_same
    batch_size: int = 4


def _one_by_one(ref, inputs, options):
    return [ref(item, **options) for item in inputs]


CASES = {
    "text-classification": Case(_text("text-classification"), lambda env: TEXTS),
    "token-classification": Case(
        _text("token-classification"),
        lambda env: TEXTS,
        {"aggregation_strategy": "simple", "ignore_labels": []},
    ),
    "feature-extraction": Case(
        _text("feature-extraction"),
        lambda env: TEXTS,
        # transformers at batch 1 keeps each text's own tokens
        reference=lambda ref, inputs, options: ref(inputs, batch_size=1),
    ),
    "zero-shot-classification": Case(
        _text("zero-shot-classification"),
        lambda env: TEXTS[:2],
        {"candidate_labels": ["sports", "food", "travel"]},
        batch_size=6,  # one row per (text, label) pair
    ),
    "image-classification": Case(
        _vision("image-classification"), lambda env: images(3, seed=1), {"top_k": 3}
    ),
    "image-feature-extraction": Case(
        _vision("image-feature-extraction"), lambda env: images(3, seed=2), {"pool": True}
    ),
    "object-detection": Case(
        _vision("object-detection"), lambda env: SAME_SIZE, {"threshold": 0.0}
    ),
    "image-segmentation": Case(
        _vision("image-segmentation"), lambda env: images(3, seed=6), compare=_segments_equal
    ),
    "depth-estimation": Case(
        _vision("depth-estimation"), lambda env: SAME_SIZE, compare=_depths_equal
    ),
    "zero-shot-image-classification": Case(
        _zero_shot_vision("clip", "zero-shot-image-classification"),
        lambda env: mixed_images(3, seed=3),
        {"candidate_labels": ["a cat", "the dog", "a car"]},
    ),
    "video-classification": Case(
        _zero_shot_vision("videomae", "video-classification"),
        lambda env: env.videos(),
        {"top_k": 3},
    ),
    "zero-shot-object-detection": Case(
        _zero_shot_vision("owlvit", "zero-shot-object-detection"),
        lambda env: mixed_images(3, seed=5),
        {"candidate_labels": ["a cat", "the dog"], "threshold": 0.0},
    ),
    "table-question-answering": Case(
        # the seed test_table_question_answering uses: its weights select several cells
        _from_folder("table-question-answering", partial(build_tapas_folder, seed=2)),
        lambda env: [{"table": TABLE, "query": q} for q in ("which movie", "the score of film")],
        reference=lambda ref, inputs, options: ref([dict(i) for i in inputs]),
    ),
    "document-question-answering": Case(
        _from_folder("document-question-answering", partial(build_layoutlm_folder, seed=1)),
        lambda env: DOCUMENTS,
        {"top_k": 2},
        reference=lambda ref, inputs, options: ref([dict(i) for i in inputs], **options),
    ),
    "audio-classification": Case(
        _audio("audio-classification", "audio-classification"),
        lambda env: CLIPS[:3],
        {"top_k": 3},
    ),
    "automatic-speech-recognition": Case(
        _audio("ctc", "automatic-speech-recognition"), lambda env: CLIPS[:3]
    ),
    "zero-shot-audio-classification": Case(
        _audio("clap", "zero-shot-audio-classification"),
        lambda env: CLIPS[:3],
        {"candidate_labels": ["dog", "rain", "car"]},
        reference=_one_by_one,
    ),
}


class Models:
    """Builds each kind's model folder and pipelines once for the module."""

    def __init__(self, tmp_path_factory, pipelines):
        self._tmp = tmp_path_factory
        self.pipelines = pipelines
        self.audio = audio_pipelines(tmp_path_factory)
        self._videos: list[str] | None = None

    def folder(self, kind: str):
        return self._tmp.mktemp(kind.replace("-", "_"))

    def videos(self) -> list[str]:
        if self._videos is None:
            folder = self._tmp.mktemp("videos")
            self._videos = [
                str(write_video(folder / f"v{i}.mp4", frames, seed=i))
                for i, frames in enumerate((8, 12))
            ]
        return self._videos


@pytest.fixture(scope="module")
def models(tmp_path_factory, pipelines):
    return Models(tmp_path_factory, pipelines)


def test_the_capturable_task_classes_are_the_expected_ones():
    capturable = {cls.__name__ for cls in TASK_CLASSES if cls.capturable}
    assert capturable == CAPTURABLE
    assert {cls.name for cls in TASK_CLASSES if cls.capturable} == set(CASES)


def test_every_other_task_is_a_step_task_or_opts_out_explicitly():
    for cls in TASK_CLASSES:
        assert not (issubclass(cls, StepTask) and cls.capturable), cls.__name__
        if not cls.capturable:
            opted_out = any(
                base.__dict__.get("capturable") is False
                for base in cls.__mro__
                if base.__module__.startswith("pipejit.tasks")
            )
            assert issubclass(cls, StepTask) or opted_out, cls.__name__


def _no_cap(pj):
    """The pipeline's shapes without the capture token cap (the cap is test_graphs' business)."""
    return replace(pj.shapes, capture_max_tokens=1 << 40)


@pytest.mark.parametrize("task", sorted(CASES))
def test_the_captured_step_replays_at_parity(task, models):
    case = CASES[task]
    reference, pj = case.pair(models)
    pj = with_graphs(pj, shapes=_no_cap(pj))
    inputs = case.inputs(models)
    call = case.reference or (lambda ref, items, options: ref(items, **options))
    expected = call(reference, inputs, case.options)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*CUDA graphs turned off")
        case.compare(pj(inputs, batch_size=case.batch_size, **case.options), expected)
        first = pj.stats()
        assert first["graphs_disabled"] is None
        assert first["captures"] > 0 and first["graph_hits"] > 0, first["graph_fallbacks"]
        assert max(rows for rows, *_ in first["captured_buckets"]) > 1
        case.compare(pj(inputs, batch_size=case.batch_size, **case.options), expected)
    second = pj.stats()
    assert second["graphs_disabled"] is None
    assert second["captures"] == first["captures"]
    assert second["graph_hits"] > first["graph_hits"]


def test_audio_graphs_are_capped_in_tokens_not_samples(models):
    reference, pj = models.audio("audio-classification", "audio-classification")
    pj = with_graphs(pj)
    # 4 rows of 8000 samples (0.5 s): 4 * 400 tokens at 20 samples a token, a tenth of the cap
    assert_same(pj(CLIPS, batch_size=4), reference(CLIPS))
    assert pj.stats()["captured_buckets"] == [(4, 8000)]
