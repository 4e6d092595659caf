"""Images, audio and video in ``/pipeline`` requests: base64 data or allowed local files.

A pipeline would open any path or fetch any URL it is given; a server must not let
a client read its disk or make it fetch from the network. So for media tasks every
string input is decoded here: ``file://`` URLs and absolute paths are read only
inside the directories the operator allowed (``--allowed-dir``), http(s) URLs are
refused, and anything else is base64 (a ``data:`` URI or plain) of the file's bytes.
"""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from PIL import Image, UnidentifiedImageError

from pipejit.server.errors import ApiError, invalid

IMAGE_TASKS = {
    "image-classification",
    "image-feature-extraction",
    "object-detection",
    "image-segmentation",
    "depth-estimation",
    "zero-shot-image-classification",
    "zero-shot-object-detection",
    "mask-generation",
    "document-question-answering",
    "image-text-to-text",
}
AUDIO_TASKS = {
    "audio-classification",
    "automatic-speech-recognition",
    "zero-shot-audio-classification",
}
VIDEO_TASKS = {"video-classification"}
# Keys of a dict input that hold the medium (document QA's {"image": ..., "question": ...}).
MEDIA_KEYS = ("image", "images", "audio", "video")


class MediaDecoder:
    """Turn a media task's string inputs into what its pipeline takes, safely."""

    def __init__(self, task: str, allowed_dirs: list[str]):
        self.kind = (
            "image"
            if task in IMAGE_TASKS
            else "audio"
            if task in AUDIO_TASKS
            else "video"
            if task in VIDEO_TASKS
            else None
        )
        self.allowed = [Path(d).resolve() for d in allowed_dirs]

    def decode(self, item: Any, where: str) -> Any:
        if self.kind is None:
            return item
        if isinstance(item, str):
            return self._one(item, where)
        if isinstance(item, dict):
            return {
                k: self._nested(v, f"{where}.{k}") if k in MEDIA_KEYS else v
                for k, v in item.items()
            }
        return item

    def _nested(self, value: Any, where: str) -> Any:
        if isinstance(value, list):
            return [self._nested(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return self._one(value, where) if isinstance(value, str) else value

    def _one(self, text: str, where: str) -> Any:
        if text.startswith(("http://", "https://")):
            raise invalid(
                f"{where}: the server does not fetch URLs; send the file as base64 or as a "
                "file:// URL inside a directory the operator allowed"
            )
        if text.startswith("file://") or text.startswith("/"):
            path = self._allowed_path(text, where)
            if self.kind == "video":
                return str(path)
            data = path.read_bytes()
        else:
            data = _base64(text, where)
            if self.kind == "video":
                raise invalid(f"{where}: video inputs are file:// URLs in an allowed directory")
        if self.kind == "audio":
            return data
        try:
            image = Image.open(io.BytesIO(data))
            image.load()
        except (UnidentifiedImageError, OSError) as error:
            raise invalid(f"{where}: not an image file PIL can read ({error})") from error
        return image

    def _allowed_path(self, text: str, where: str) -> Path:
        raw = unquote(urlparse(text).path) if text.startswith("file://") else text
        path = Path(raw).resolve()
        if not any(path.is_relative_to(d) for d in self.allowed):
            allowed = [str(d) for d in self.allowed] or "none (start with --allowed-dir)"
            raise ApiError(
                403, f"{where}: {raw} is outside the allowed directories: {allowed}", "forbidden"
            )
        if not path.is_file():
            raise invalid(f"{where}: no such file: {raw}")
        return path


def _base64(text: str, where: str) -> bytes:
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise invalid(
            f"{where}: not base64 data, a file:// URL or an absolute path ({error})"
        ) from error
