"""Measure the peak memory of pipeline calls on huge inputs, in a fresh process.

``python -m tests.fuzz.peak_memory '[[TASK, FOLDER, CASE, EXTRA], ...]'`` loads each
``TASK`` on the model in ``FOLDER``, makes the input ``CASE`` (see ``CASES``; ``EXTRA``
is a file path some cases read), resets the kernel's peak-RSS mark
(``/proc/self/clear_refs``), calls the pipeline, and prints one JSON line per case:
the outcome, the input's own size, and the peak RSS above the RSS just before the
call, i.e. the memory the call itself took.
"""

from __future__ import annotations

import io
import json
import sys
import warnings
from pathlib import Path

import numpy as np

HOUR = 3600
RATE = 16_000


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _hour_wav() -> bytes:
    import soundfile

    buffer = io.BytesIO()
    with soundfile.SoundFile(buffer, "w", RATE, 1, format="WAV", subtype="PCM_16") as out:
        second = (0.1 * np.sin(np.arange(RATE) / 9)).astype(np.float32)
        for _ in range(HOUR):
            out.write(second)
    return buffer.getvalue()


def _huge_lazy_image(path: str):
    from PIL import Image

    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        return Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = limit


# case -> (make the input from the extra argument, call keywords)
CASES = {
    "text_10m": (lambda _: "word " * 2_000_000, {"truncation": True}),
    "text_100k": (lambda _: "word " * 20_000, {"truncation": True}),
    "image_file_20000": (lambda path: path, {}),
    "image_lazy_20000": (_huge_lazy_image, {}),
    "image_file_40m": (lambda path: path, {}),
    "audio_hour_array": (lambda _: np.zeros(HOUR * RATE, np.float32) + 0.1, {}),
    "audio_hour_wav": (lambda _: _hour_wav(), {}),
    "audio_10min_array": (lambda _: np.full(600 * RATE, 0.1, np.float32), {}),
}


def measure(task: str, folder: str, case: str, extra: str | None = None) -> dict:
    import pipejit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = pipejit.pipeline(task, model=folder, compile=False)
    make, kwargs = CASES[case]
    item = make(extra)
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS mark := current RSS
    before = _rss_kb("VmRSS")
    try:
        pipe(item, **kwargs)
        outcome = "answered"
    except (ValueError, TypeError) as error:
        outcome = f"{type(error).__name__}: {error}"
    peak = _rss_kb("VmHWM")
    size = getattr(item, "nbytes", None) or (len(item) if isinstance(item, (str, bytes)) else 0)
    return {
        "case": case,
        "outcome": outcome,
        "input_mb": size / 2**20,
        "extra_mb": (peak - before) / 1024,
    }


if __name__ == "__main__":
    for args in json.loads(sys.argv[1]):
        print(json.dumps(measure(*args)), flush=True)
