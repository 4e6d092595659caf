"""Images as transformers' pipelines take them (path, URL, base64, PIL), with clear errors.

Loading is transformers' own ``load_image`` (EXIF rotation, RGB conversion), so
pixels are the same; pipejit adds a default timeout for URLs, so that a machine
without network fails within seconds instead of hanging, and errors that say
which input was wrong and why.
"""

from __future__ import annotations

from typing import Any

from PIL import Image, UnidentifiedImageError
from transformers.image_utils import load_image as reference_load_image

# Seconds to wait for a URL when the caller gave no timeout.
DEFAULT_URL_TIMEOUT = 10.0


def load_image(item: Any, timeout: float | None = None) -> Image.Image:
    """One image input to an RGB PIL image; a bad input is a ValueError or TypeError."""
    try:
        return _load(item, timeout)
    except Image.DecompressionBombError as error:
        raise ValueError(f"the image is too large to decode: {error}") from None


def _load(item: Any, timeout: float | None) -> Image.Image:
    if isinstance(item, Image.Image):
        return reference_load_image(item)
    if not isinstance(item, str):
        raise TypeError(
            "an image input must be a file path, an http(s) URL, a base64 string or a "
            f"PIL image, got {type(item).__name__}"
        )
    if item.startswith(("http://", "https://")):
        try:
            return reference_load_image(item, timeout=timeout or DEFAULT_URL_TIMEOUT)
        except (OSError, UnidentifiedImageError) as error:
            raise ValueError(f"could not read an image from {item!r}: {error}") from error
        except Exception as error:  # noqa: BLE001 - httpx errors: no network, DNS, timeout
            raise ValueError(
                f"could not fetch {item!r} ({type(error).__name__}: {error}); "
                "is the network reachable? Pass the image as a local path or a PIL image."
            ) from error
    try:
        return reference_load_image(item)
    except UnidentifiedImageError as error:
        raise ValueError(f"{_describe(item)} is not an image PIL can read") from error
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{_describe(item)} is neither an existing image file, an http(s) URL nor "
            "base64 image data"
        ) from error


def _describe(item: str) -> str:
    return repr(item if len(item) <= 80 else item[:77] + "...")
