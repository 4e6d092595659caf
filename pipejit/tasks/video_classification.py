"""video-classification: VideoMAE-like models label clips of sampled frames.

A video file (path or URL) is decoded with PyAV by transformers' own frame
reader; frames given as arrays (one [frames, height, width, 3] array, or a
list of frames as arrays or PIL images) are sampled at the same indices. Each
clip is one model item, batched with clips of the same processed shape; the
scores and top-k run on the device.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

import numpy as np
import torch
from PIL import Image

from pipejit.contract import Features, ForwardTask, Params, Row
from pipejit.kernels.softmax_topk import softmax_topk
from pipejit.tasks.base import reject_unknown
from pipejit.tasks.image_inputs import DEFAULT_URL_TIMEOUT

FUNCTIONS = ("softmax", "sigmoid", "none")


class VideoClassification(ForwardTask):
    name = "video-classification"
    pads = False
    length_unit = "video patches"

    def __init__(self, reference):
        super().__init__(reference)
        if getattr(reference, "video_processor", None) is not None:
            raise ValueError(
                "pipejit's video-classification runs models whose frames go through an image "
                "processor (VideoMAE, ViViT, TimeSformer); this model comes with a video "
                "processor, which pipejit does not run yet: use transformers.pipeline for it"
            )
        self.image_processor = reference.image_processor
        self._tubelet = int(getattr(self.config, "tubelet_size", 1) or 1)
        self._patch = int(getattr(self.config, "patch_size", 16) or 16)

    @property
    def max_length(self) -> int:
        # frames are resized and counted by num_frames; no item is ever too long
        return 1 << 30

    @property
    def pad_values(self) -> dict[str, int]:
        return {}  # clips are stacked unpadded

    def is_single(self, inputs: Any) -> bool:
        if isinstance(inputs, (str, np.ndarray)):
            return True
        return isinstance(inputs, (list, tuple)) and bool(inputs) and all(map(_is_frame, inputs))

    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        reject_unknown(
            self.name, kwargs, {"top_k", "num_frames", "frame_sampling_rate", "function_to_apply"}
        )
        num_frames = kwargs.get("num_frames")
        num_frames = self.config.num_frames if num_frames is None else num_frames
        rate = kwargs.get("frame_sampling_rate")
        rate = 1 if rate is None else rate
        for name, value in (("num_frames", num_frames), ("frame_sampling_rate", rate)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        top_k = kwargs.get("top_k", 5)
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0:
            raise ValueError(f"top_k must be a non-negative int, got {top_k!r}")
        function = kwargs.get("function_to_apply")
        if function is None:
            function = {"regression": "none", "multi_label_classification": "sigmoid"}.get(
                self.config.problem_type, "softmax"
            )
        if function not in FUNCTIONS:
            raise ValueError(
                f"function_to_apply must be one of {list(FUNCTIONS)}, got {function!r}"
            )
        indices = np.linspace(0, num_frames * rate - 1, num=num_frames, dtype=np.int64)
        return Params(
            # a tuple: parameters are hashed to key CUDA graphs
            preprocess={"indices": tuple(indices.tolist())},
            postprocess={"top_k": min(top_k, self.config.num_labels), "function": function},
        )

    def preprocess(self, item: Any, params: Params) -> list[Features]:
        indices = np.asarray(params.preprocess["indices"], dtype=np.int64)
        frames = _read_file(item, indices) if isinstance(item, str) else _pick(item, indices)
        if len(frames) < len(indices):
            raise ValueError(
                f"the video has {len(frames)} of the {len(indices)} frames asked for (frame "
                f"indices up to {int(indices[-1])}); lower num_frames or frame_sampling_rate"
            )
        pixels = self.image_processor(frames, return_tensors="pt")["pixel_values"][0]
        pixels = pixels.to(self.model.dtype)
        count, _, height, width = pixels.shape
        patches = max(count // self._tubelet, 1) * (height // self._patch) * (width // self._patch)
        return [Features({"pixel_values": pixels}, group=tuple(pixels.shape), size=patches)]

    def reduce(self, outputs: Any, inputs: dict[str, torch.Tensor], params: Params) -> dict:
        k, function = params.postprocess["top_k"], params.postprocess["function"]
        scores, ids = softmax_topk(outputs.logits, max(k, 1), function=function)
        return {"scores": scores[:, :k], "ids": ids[:, :k]}

    def postprocess(self, item: Any, features: list[Features], rows: list[Row], params: Params):
        row = rows[0]
        labels = self.config.id2label
        return [
            {"score": score, "label": labels[i]}
            for score, i in zip(row["scores"].tolist(), row["ids"].tolist())
        ]


def _is_frame(value: Any) -> bool:
    return isinstance(value, Image.Image) or (isinstance(value, np.ndarray) and value.ndim == 3)


def _pick(video: Any, indices: np.ndarray) -> list[np.ndarray]:
    """The frames at ``indices`` of a video given as arrays or PIL images."""
    if isinstance(video, np.ndarray) and video.ndim == 4:
        frames = list(video)
    elif isinstance(video, (list, tuple)) and video and all(map(_is_frame, video)):
        frames = list(video)
    else:
        raise TypeError(
            "a video must be a file path, an http(s) URL, a [frames, height, width, 3] array "
            f"or a list of frames (arrays or PIL images), got {type(video).__name__}"
        )
    wanted = set(indices.tolist())
    return [
        np.asarray(frame.convert("RGB")) if isinstance(frame, Image.Image) else frame
        for i, frame in enumerate(frames)
        if i in wanted
    ]


def _read_file(video: str, indices: np.ndarray) -> list[np.ndarray]:
    """Decode the frames at ``indices`` of a video file or URL with PyAV."""
    import av
    from transformers.pipelines.video_classification import read_video_pyav

    source: str | BytesIO = video
    if video.startswith(("http://", "https://")):
        source = BytesIO(_fetch(video))
    try:
        with av.open(source) as container:
            return list(read_video_pyav(container, indices))
    except FileNotFoundError as error:
        raise ValueError(f"{video!r:.80} is neither an existing video file nor a URL") from error
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise ValueError(f"could not decode a video from {video!r:.80}: {error}") from error


def _fetch(url: str) -> bytes:
    import httpx

    try:
        response = httpx.get(url, follow_redirects=True, timeout=DEFAULT_URL_TIMEOUT)
        response.raise_for_status()
    except httpx.HTTPError as error:
        raise ValueError(
            f"could not fetch {url!r} ({type(error).__name__}: {error}); is the network "
            "reachable? Pass the video as a local path or as frames."
        ) from error
    return response.content
