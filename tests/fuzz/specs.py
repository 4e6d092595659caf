"""The 22 tasks under fuzz: how to build each tiny model, its good inputs, and its parameters.

Each ``Spec`` builds a (transformers pipeline, eager pipejit pipeline) pair on one
tiny offline model, names a few good inputs, the keywords every call needs
(``candidate_labels``), parameters that must give transformers' answer, and
parameters that are wrong (bad type, out of range, unknown).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

LABELS = ["a cat", "the dog"]
TEXTS = ["the movie was good", "paris is a city"]
TABLE = {"movie": ["the plot", "good film"], "year": ["1999", "2001"]}
WORD_BOXES = [("price", [10, 10, 60, 40]), ("movie", [70, 10, 120, 40]), ("when", [5, 50, 60, 90])]
UNKNOWN = {"no_such_parameter": 1}


@dataclass
class Spec:
    """One task under fuzz. ``modality`` picks the hostile inputs it is fed."""

    task: str
    build: Callable[[Path], str]  # builds the model in a folder, returns the folder
    good: Callable[[Path], list[Any]]  # good inputs (files are written in the folder)
    modality: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    good_params: list[dict[str, Any]] = field(default_factory=list)
    bad_params: list[dict[str, Any]] = field(default_factory=list)
    # how transformers is called on one input, when not as ``reference(item, **kwargs)``
    reference_call: Callable[..., Any] | None = None
    # the share of the CI example budget this task gets (slow models get fewer)
    budget: float = 1.0


def _text_folder(kind: str) -> Callable[[Path], str]:
    def build(folder: Path) -> str:
        from tests.models import build_model_folder

        return str(build_model_folder(kind, folder))

    return build


def _vision_folder(kind: str) -> Callable[[Path], str]:
    def build(folder: Path) -> str:
        from tests.vision_models import build_vision_folder

        return str(build_vision_folder(kind, folder))

    return build


def _zero_shot_vision_folder(kind: str) -> Callable[[Path], str]:
    def build(folder: Path) -> str:
        from tests.vision_zero_shot_models import build_vision_folder

        return str(build_vision_folder(kind, folder))

    return build


def _audio_folder(kind: str) -> Callable[[Path], str]:
    def build(folder: Path) -> str:
        from tests.audio_models import AUDIO_BUILDERS

        return str(AUDIO_BUILDERS[kind](folder))

    return build


def _build_whisper(folder: Path) -> str:
    from tests.whisper_models import build_whisper_folder

    return str(build_whisper_folder(folder))


def _build_gpt2(folder: Path) -> str:
    from tests.generation_models import build_generation_folder

    return str(build_generation_folder("gpt2", folder))


def _build_llava(folder: Path) -> str:
    from tests.vlm_models import build_llava_folder

    return str(build_llava_folder(folder))


def _build_vits(folder: Path) -> str:
    from tests.tts_models import build_vits_folder

    return str(build_vits_folder(folder))


def _build_tapas(folder: Path) -> str:
    from tests.qa_models import build_tapas_folder

    return str(build_tapas_folder(folder, True, seed=2))


def _build_layoutlm(folder: Path) -> str:
    from tests.qa_models import build_layoutlm_folder

    return str(build_layoutlm_folder(folder, seed=1))


def _texts(_: Path) -> list[Any]:
    return list(TEXTS)


def _masked(_: Path) -> list[Any]:
    return ["the [MASK] was good", "paris is [MASK]"]


def _images(_: Path) -> list[Any]:
    from tests.vision_models import images

    return images(2, seed=7, low=24, high=48)


def _clips(_: Path) -> list[Any]:
    from tests.audio_models import clips

    return clips(2, seed=4, low=0.3, high=1.0)


def _videos(folder: Path) -> list[Any]:
    from tests.vision_zero_shot_models import write_video

    return [str(write_video(folder / f"good{i}.mp4", 8 + 4 * i, seed=i)) for i in range(2)]


def _tables(_: Path) -> list[Any]:
    return [{"table": TABLE, "query": "which movie"}, {"table": TABLE, "query": "what year"}]


def _documents(_: Path) -> list[Any]:
    image = Image.new("RGB", (200, 100), "white")
    return [
        {"image": image, "question": "what is the price", "word_boxes": WORD_BOXES},
        {"image": image, "question": "when", "word_boxes": WORD_BOXES[:2]},
    ]


def _prompts(_: Path) -> list[Any]:
    from tests.vlm_models import make_image

    return [
        {"images": make_image(0), "text": "<image> the"},
        {"images": make_image(1), "text": "a photo of <image> john went"},
    ]


def _image_text_call(reference, item: Any, **kwargs: Any) -> Any:
    """transformers misreads a list of {"images", "text"} dicts as a chat: one at a time."""
    if isinstance(item, dict) and set(item) == {"images", "text"}:
        return reference(images=item["images"], text=item["text"], **kwargs)
    return reference(item, **kwargs)


TOP_K_BAD = [{"top_k": 0}, {"top_k": -2}, {"top_k": "3"}, {"top_k": 1.5}]
TIMEOUT_BAD = [{"timeout": "soon"}, {"timeout": -1}]
GREEDY = {"max_new_tokens": 3, "do_sample": False}
GENERATION_BAD = [
    {"max_new_tokens": -1},
    {"max_new_tokens": "3"},
    {"generate_kwargs": {"num_beams": 0}},
    {"generate_kwargs": {"temperature": -1.0, "do_sample": True}},
]

SPECS: dict[str, Spec] = {
    s.task: s
    for s in [
        Spec(
            "text-classification",
            _text_folder("text-classification"),
            _texts,
            "text",
            good_params=[{"top_k": 2}, {"function_to_apply": "none"}, {"truncation": True}],
            bad_params=[*TOP_K_BAD, {"function_to_apply": "bogus"}, {"function_to_apply": 5}],
        ),
        Spec(
            "token-classification",
            _text_folder("token-classification"),
            _texts,
            "text",
            good_params=[{"aggregation_strategy": "simple"}, {"ignore_labels": []}],
            bad_params=[{"aggregation_strategy": "bogus"}, {"aggregation_strategy": 3}],
        ),
        Spec(
            "fill-mask",
            _text_folder("fill-mask"),
            _masked,
            "text",
            good_params=[{"top_k": 2}, {"targets": ["good", "bad"]}],
            bad_params=[*TOP_K_BAD, {"targets": 5}, {"targets": []}],
        ),
        Spec(
            "feature-extraction",
            _text_folder("feature-extraction"),
            _texts,
            "text",
            good_params=[{"truncation": True}],
            bad_params=[{"return_tensors": "yes"}, {"tokenize_kwargs": 5}],
        ),
        Spec(
            "zero-shot-classification",
            _text_folder("zero-shot-classification"),
            _texts,
            "text",
            kwargs={"candidate_labels": LABELS},
            good_params=[{"multi_label": True}, {"hypothesis_template": "It is {}."}],
            bad_params=[
                {"candidate_labels": []},
                {"candidate_labels": [None]},
                {"candidate_labels": 5},
                {"hypothesis_template": "no placeholder"},
            ],
        ),
        Spec(
            "image-classification",
            _vision_folder("image-classification"),
            _images,
            "image",
            good_params=[{"top_k": 2}, {"function_to_apply": "sigmoid"}],
            bad_params=[*TOP_K_BAD, *TIMEOUT_BAD, {"function_to_apply": "bogus"}],
        ),
        Spec(
            "image-feature-extraction",
            _vision_folder("image-feature-extraction"),
            _images,
            "image",
            good_params=[{"pool": True}],
            bad_params=[{"pool": "yes"}, *TIMEOUT_BAD],
        ),
        Spec(
            "object-detection",
            _vision_folder("object-detection"),
            _images,
            "image",
            good_params=[{"threshold": 0.0}],
            bad_params=[{"threshold": "high"}, {"threshold": 2.0}, *TIMEOUT_BAD],
        ),
        Spec(
            "image-segmentation",
            _vision_folder("image-segmentation"),
            _images,
            "image",
            good_params=[{"subtask": "semantic"}],
            bad_params=[
                {"subtask": "bogus"},
                {"threshold": "x"},
                {"overlap_mask_area_threshold": 3},
            ],
        ),
        Spec(
            "depth-estimation",
            _vision_folder("depth-estimation"),
            _images,
            "image",
            bad_params=TIMEOUT_BAD,
        ),
        Spec(
            "zero-shot-image-classification",
            _zero_shot_vision_folder("clip"),
            _images,
            "image",
            kwargs={"candidate_labels": LABELS},
            good_params=[{"hypothesis_template": "a photo of {}"}],
            bad_params=[{"candidate_labels": []}, {"candidate_labels": [3]}, *TIMEOUT_BAD],
        ),
        Spec(
            "video-classification",
            _zero_shot_vision_folder("videomae"),
            _videos,
            "video",
            good_params=[{"top_k": 1}],
            bad_params=[*TOP_K_BAD, {"num_frames": 0}, {"frame_sampling_rate": 0}],
        ),
        Spec(
            "zero-shot-object-detection",
            _zero_shot_vision_folder("owlvit"),
            _images,
            "image",
            kwargs={"candidate_labels": LABELS},
            good_params=[{"threshold": 0.0}, {"top_k": 1}],
            bad_params=[{"candidate_labels": []}, {"threshold": "x"}, *TOP_K_BAD],
        ),
        Spec(
            "mask-generation",
            _zero_shot_vision_folder("sam"),
            _images,
            "image",
            kwargs={
                "pred_iou_thresh": 0.0,
                "stability_score_thresh": 0.0,
                "points_per_crop": 4,
                "crops_nms_thresh": 1.0,
            },
            bad_params=[{"points_per_batch": 0}, {"points_per_crop": -1}, {"crops_n_layers": "x"}],
        ),
        Spec(
            "table-question-answering",
            _build_tapas,
            _tables,
            "table",
            good_params=[{"sequential": True}],
            bad_params=[{"truncation": "bogus"}, {"padding": 5}],
        ),
        Spec(
            "document-question-answering",
            _build_layoutlm,
            _documents,
            "document",
            good_params=[{"top_k": 2}],
            bad_params=[*TOP_K_BAD, {"max_answer_len": 0}, {"doc_stride": -1}],
        ),
        Spec(
            "audio-classification",
            _audio_folder("audio-classification"),
            _clips,
            "audio",
            good_params=[{"top_k": 1}],
            bad_params=[*TOP_K_BAD, {"function_to_apply": "bogus"}],
        ),
        Spec(
            "automatic-speech-recognition",
            _audio_folder("ctc"),
            _clips,
            "audio",
            good_params=[{"return_timestamps": "char"}],
            bad_params=[{"chunk_length_s": -1}, {"stride_length_s": "x"}, {"return_timestamps": 3}],
        ),
        Spec(
            "zero-shot-audio-classification",
            _audio_folder("clap"),
            _clips,
            "audio",
            kwargs={"candidate_labels": LABELS},
            good_params=[{"hypothesis_template": "a sound of {}"}],
            bad_params=[{"candidate_labels": []}, {"candidate_labels": 5}],
        ),
        Spec(
            "text-generation",
            _build_gpt2,
            _texts,
            "text",
            kwargs=GREEDY,
            good_params=[{"return_full_text": False}, {"max_new_tokens": 1}],
            bad_params=GENERATION_BAD,
        ),
        Spec(
            "image-text-to-text",
            _build_llava,
            _prompts,
            "prompt",
            kwargs={"max_new_tokens": 3},
            good_params=[{"return_full_text": False}],
            bad_params=GENERATION_BAD,
            reference_call=_image_text_call,
        ),
        Spec(
            "text-to-audio",
            _build_vits,
            _texts,
            "text",
            bad_params=[{"forward_params": 5}, {"generate_kwargs": "x"}],
        ),
    ]
}
# Whisper serves automatic-speech-recognition beside CTC: fuzzed under its own key.
WHISPER = Spec(
    "automatic-speech-recognition",
    _build_whisper,
    _clips,
    "audio",
    good_params=[{"return_timestamps": True}],
    bad_params=[{"return_timestamps": "word"}, {"chunk_length_s": -1}, {"num_beams": 0}],
    budget=0.25,
)
