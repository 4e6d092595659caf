"""Hostile files written once per session: corrupt, truncated and huge images, audio, video.

The huge PNG (20000 x 20000 grey pixels) is written row by row through zlib, so
writing it costs a few MB of memory although decoding it would take 400 MB.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

HUGE_SIDE = 20_000


def write_huge_png(path: Path, width: int = HUGE_SIDE, height: int = HUGE_SIDE) -> Path:
    """An 8-bit greyscale PNG of ``width`` x ``height`` black pixels, streamed."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    compressor = zlib.compressobj(1)
    row = b"\x00" * (width + 1)  # filter byte, then the pixels
    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        out.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)))
        data = bytearray()
        for _ in range(height):
            data += compressor.compress(row)
        data += compressor.flush()
        out.write(chunk(b"IDAT", bytes(data)))
        out.write(chunk(b"IEND", b""))
    return path


def png_bytes(size: tuple[int, int] = (24, 16), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, "red" if mode == "RGB" else 128).save(buffer, format="PNG")
    return buffer.getvalue()


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


class Files(dict):
    """Hostile file paths by name; shown by name only in failure reports."""

    def __repr__(self) -> str:
        return "hostile_files"


def write_files(folder: Path) -> dict[str, str]:
    """Every hostile file, by name: path strings as a caller would pass them."""
    from tests.vision_zero_shot_models import write_video

    folder.mkdir(parents=True, exist_ok=True)
    good_png = png_bytes()
    files = {
        "huge_png": write_huge_png(folder / "huge.png"),
        "corrupt_image": folder / "corrupt.png",
        "truncated_png": folder / "truncated.png",
        "empty_file": folder / "empty.png",
        "good_png": folder / "good.png",
        "no_frames_video": folder / "no_frames.mp4",
        "one_frame_video": write_video(folder / "one_frame.mp4", 1, seed=3),
        "corrupt_video": folder / "corrupt.mp4",
        "corrupt_wav": folder / "corrupt.wav",
        "good_wav": folder / "good.wav",
    }
    rng = np.random.default_rng(0)
    files["corrupt_image"].write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(200))
    files["truncated_png"].write_bytes(png_bytes((64, 64))[:120])
    files["empty_file"].write_bytes(b"")
    files["good_png"].write_bytes(good_png)
    write_video(files["no_frames_video"], 0)
    files["corrupt_video"].write_bytes(rng.bytes(500))
    files["corrupt_wav"].write_bytes(b"RIFF" + rng.bytes(300))
    clip = (0.3 * np.sin(np.arange(8000) / 5)).astype(np.float32)
    files["good_wav"].write_bytes(wav_bytes(clip, 16000))
    files["missing"] = folder / "does_not_exist.png"
    files["directory"] = folder
    return Files({name: str(path) for name, path in files.items()})
