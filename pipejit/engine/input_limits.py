"""Bounds on one input's size, checked before a task reads it, so no input can eat the memory.

A service receives whatever its clients send. Before a task tokenizes, decodes or
converts an input, ``InputLimits.check`` walks it (lists, tuples and dicts, up to
``MAX_NESTING`` levels) and refuses, with a ValueError naming the problem:

- a string longer than ``max_input_length`` characters (tokenizers read the whole
  text even with ``truncation=True``), or one holding a lone surrogate (not text);
- an image of zero pixels, or of more than ``max_image_pixels`` (width x height),
  read from the PIL image's size or an image file's header, before any pixel is decoded;
- audio longer than ``max_audio_seconds``, read from an array's length and its rate,
  or an audio file's header, before it is decoded or resampled.

The limits are ``pipeline()`` keywords; the defaults below are documented in the README.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from dataclasses import dataclass, replace
from numbers import Real
from typing import Any

import numpy as np
import torch
from PIL import Image

DEFAULT_MAX_INPUT_LENGTH = 100_000
DEFAULT_MAX_IMAGE_PIXELS = 25_000_000
DEFAULT_MAX_AUDIO_SECONDS = 1800.0
LIMIT_OPTIONS = ("max_input_length", "max_image_pixels", "max_audio_seconds")
# Deeper nesting than any task's input format (a chat's content parts) is refused.
MAX_NESTING = 16
# Longer strings are never file paths (PATH_MAX), so only shorter ones are looked up.
_MAX_PATH = 4096


@dataclass(frozen=True)
class InputLimits:
    """The size bounds of one input, and what of it the task reads as images or audio."""

    max_input_length: int = DEFAULT_MAX_INPUT_LENGTH
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS
    # the task's audio rate (None: it takes no audio); whether strings may name images
    sampling_rate: int | None = None
    reads_images: bool = False

    def __post_init__(self) -> None:
        for name in LIMIT_OPTIONS:
            value = getattr(self, name)
            number = (int, float) if name == "max_audio_seconds" else (int,)
            if isinstance(value, bool) or not isinstance(value, number):
                raise TypeError(f"{name} must be a positive {number[-1].__name__}, got {value!r}")
            if not 0 < value < float("inf"):
                raise ValueError(f"{name} must be positive and finite, got {value!r}")

    def reading(self, reference: Any) -> InputLimits:
        """These limits for a pipeline on ``reference`` (a transformers pipeline): audio
        at its feature extractor's rate, strings as image files when it has an image processor."""
        rate = getattr(getattr(reference, "feature_extractor", None), "sampling_rate", None)
        return replace(
            self,
            sampling_rate=int(rate) if isinstance(rate, Real) and rate > 0 else None,
            reads_images=getattr(reference, "image_processor", None) is not None,
        )

    def check(self, item: Any) -> None:
        """A ValueError if ``item``, or anything inside it, is over a limit."""
        self._check(item, 0)

    def _check(self, item: Any, depth: int) -> None:
        if depth > MAX_NESTING:
            raise ValueError(f"the input nests lists or dicts more than {MAX_NESTING} levels deep")
        if isinstance(item, str):
            self._check_text(item)
        elif isinstance(item, Image.Image):
            self._check_pixels(*item.size)
        elif isinstance(item, (bytes, bytearray, memoryview)):
            if self.sampling_rate is not None:
                self._check_seconds(_file_seconds(bytes(item)), "the audio bytes")
        elif isinstance(item, (np.ndarray, torch.Tensor)):
            if self.sampling_rate is not None and item.ndim in (1, 2):
                self._check_seconds(item.shape[-1] / self.sampling_rate, "the audio array")
        elif isinstance(item, dict):
            self._check_audio_dict(item)
            for value in item.values():
                self._check(value, depth + 1)
        elif isinstance(item, (list, tuple)):
            for value in item:
                self._check(value, depth + 1)

    def _check_text(self, text: str) -> None:
        if len(text) > self.max_input_length:
            raise ValueError(
                f"a text of {len(text):,} characters is longer than max_input_length="
                f"{self.max_input_length:,}; cut it, or raise max_input_length in pipeline()"
            )
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as error:
                if not _is_file(text):  # file names may carry undecodable bytes as surrogates
                    raise ValueError(
                        f"the text holds a lone surrogate {text[error.start]!r} at character "
                        f"{error.start}, which is not valid Unicode; decode the source bytes "
                        "with errors='replace'"
                    ) from None
        if len(text) > _MAX_PATH or text.startswith(("http://", "https://")):
            return
        if self.reads_images:
            size = _image_file_size(text)
            if size is not None:
                self._check_pixels(*size)
        if self.sampling_rate is not None and _is_file(text):
            self._check_seconds(_file_seconds(text), repr(text))

    def _check_pixels(self, width: int, height: int) -> None:
        if width * height == 0:
            raise ValueError(f"the image is {width}x{height} pixels: there is nothing to look at")
        if width * height > self.max_image_pixels:
            raise ValueError(
                f"the image is {width}x{height} = {width * height:,} pixels, more than "
                f"max_image_pixels={self.max_image_pixels:,}; resize it, or raise "
                "max_image_pixels in pipeline()"
            )

    def _check_audio_dict(self, item: dict) -> None:
        if self.sampling_rate is None:
            return
        samples = item.get("raw", item.get("array"))
        rate = item.get("sampling_rate")
        valid_rate = isinstance(rate, Real) and not isinstance(rate, bool) and rate > 0
        if isinstance(samples, (np.ndarray, torch.Tensor)) and samples.ndim and valid_rate:
            self._check_seconds(samples.shape[-1] / float(rate), "the audio array")

    def _check_seconds(self, seconds: float | None, source: str) -> None:
        if seconds is not None and seconds > self.max_audio_seconds:
            raise ValueError(
                f"{source}: {seconds:,.1f} s long, more than max_audio_seconds="
                f"{self.max_audio_seconds:,g}; cut it, or raise max_audio_seconds in pipeline()"
            )


def _is_file(text: str) -> bool:
    try:
        return len(text) <= _MAX_PATH and os.path.isfile(text)
    except (OSError, ValueError):
        return False


def _image_file_size(text: str) -> tuple[int, int] | None:
    """The size an image file or base64 image declares in its header; None when it is
    neither (the task's loader then says what is wrong)."""
    if _is_file(text):
        source: Any = text
    else:
        data = text.split(",", 1)[1] if text.startswith("data:image/") else text
        try:
            source = io.BytesIO(base64.b64decode(data, validate=True))
        except (binascii.Error, ValueError):
            return None
    try:
        with Image.open(source) as image:
            return image.size
    except Image.DecompressionBombError as error:
        raise ValueError(f"the image file is too large to decode: {error}") from None
    except Exception:  # noqa: BLE001 - not an image: the loader raises its own clear error
        return None


def _file_seconds(source: str | bytes) -> float | None:
    """The duration an audio file declares in its header, without decoding it; None when
    no reader knows it (the decoder then reads the file, or says what is wrong)."""
    import soundfile

    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        info = soundfile.info(handle)
        return info.frames / info.samplerate if info.samplerate > 0 else None
    except Exception:  # noqa: BLE001 - soundfile reads few containers; PyAV reads the rest
        pass
    try:
        import av

        handle = io.BytesIO(source) if isinstance(source, bytes) else source
        with av.open(handle) as container:
            return container.duration / av.time_base if container.duration else None
    except Exception:  # noqa: BLE001 - unreadable: the decoder raises its own clear error
        return None
