"""Audio inputs as transformers' audio pipelines take them, decoded and resampled here.

Accepted: a file path, the bytes of an audio file, a 1-D numpy array or torch
tensor at the model's rate, and a dict ``{"raw" | "array": samples,
"sampling_rate": rate}`` at any rate. transformers decodes files and bytes by
running an ``ffmpeg`` binary and resamples with torchaudio, and raises where
either is missing; pipejit decodes with soundfile (WAV, FLAC, OGG, ...) and falls
back to PyAV for other containers (MP3, M4A, ...), mixes channels down to mono
and resamples with a polyphase windowed-sinc filter (``scipy.signal.resample_poly``),
so it needs neither. Bad audio (empty, NaN or infinite samples, a bad rate, a
missing file) is a ValueError or TypeError that names the problem.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from fractions import Fraction
from numbers import Real
from typing import Any

import numpy as np
import torch

# The number of channels an array may have along its first axis, as transformers'
# speech recognition reads ``(channels, samples)`` arrays; more is ambiguous.
MAX_CHANNELS = 2


@dataclass
class Audio:
    """One input's mono samples at the model's rate, and the dict keys beside them."""

    samples: np.ndarray
    extra: dict[str, Any]
    # the input rate over the model rate (for a dict's ``stride``, given in input samples)
    ratio: float = 1.0


def load_audio(item: Any, sampling_rate: int, *, channels_first: bool = False) -> Audio:
    """One audio input to float mono samples at ``sampling_rate``.

    ``channels_first`` accepts ``(channels, samples)`` arrays of up to two channels
    and averages them, as transformers' speech recognition does; otherwise an
    array must be 1-D, as its audio classification requires.
    """
    extra: dict[str, Any] = {}
    ratio = 1.0
    if isinstance(item, str):
        samples = decode_audio(_read_file(item), sampling_rate, source=repr(item))
    elif isinstance(item, (bytes, bytearray)):
        samples = decode_audio(bytes(item), sampling_rate, source="the audio bytes")
    elif isinstance(item, dict):
        samples, rate, extra = _unpack_dict(item)
        samples = _to_mono(_as_array(samples), channels_first)
        if rate != sampling_rate:
            samples = resample(samples, rate, sampling_rate)
            ratio = sampling_rate / rate
    elif isinstance(item, (np.ndarray, torch.Tensor)):
        samples = _to_mono(_as_array(item), channels_first)
    else:
        raise TypeError(
            "an audio input must be a file path, the bytes of an audio file, a numpy array, "
            "a torch tensor or a dict {'raw' or 'array': samples, 'sampling_rate': int}, "
            f"got {type(item).__name__}"
        )
    check_samples(samples)
    return Audio(samples, extra, ratio)


def is_single_audio(inputs: Any) -> bool:
    """Whether a call's input is one clip: lists, generators and datasets hold several."""
    if isinstance(inputs, (str, bytes, bytearray, dict, np.ndarray, torch.Tensor)):
        return True
    return not (hasattr(inputs, "__iter__") or hasattr(inputs, "__getitem__"))


def check_samples(samples: np.ndarray) -> None:
    """A ValueError for audio the model cannot take: empty, NaN or infinite samples."""
    if samples.shape[0] == 0:
        raise ValueError("the audio has zero samples; nothing to run the model on")
    if np.issubdtype(samples.dtype, np.floating) and not np.isfinite(samples).all():
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        raise ValueError(f"the audio has {bad} NaN or infinite sample(s) of {samples.shape[0]}")


def resample(samples: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """``samples`` from ``orig_rate`` to ``new_rate`` Hz by polyphase windowed-sinc filtering."""
    from scipy.signal import resample_poly

    ratio = Fraction(int(new_rate), int(orig_rate))
    out = resample_poly(samples.astype(np.float64), ratio.numerator, ratio.denominator)
    return out.astype(np.float32)


def decode_audio(data: bytes, sampling_rate: int, source: str) -> np.ndarray:
    """The bytes of an audio file to float32 mono samples at ``sampling_rate``."""
    if not data:
        raise ValueError(f"{source} is empty: no audio to decode")
    try:
        samples, rate = _decode_soundfile(data)
    except Exception:  # noqa: BLE001 - soundfile reads few containers; PyAV reads the rest
        try:
            samples, rate = _decode_av(data)
        except Exception as error:  # noqa: BLE001 - any decoder failure means unreadable audio
            raise ValueError(
                f"could not decode {source} as audio ({type(error).__name__}: {error})"
            ) from error
    if rate != sampling_rate and samples.shape[0]:
        samples = resample(samples, rate, sampling_rate)
    return samples


def _decode_soundfile(data: bytes) -> tuple[np.ndarray, int]:
    import soundfile

    samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return samples.mean(axis=1, dtype=np.float32), int(rate)


def _decode_av(data: bytes) -> tuple[np.ndarray, int]:
    import av

    with av.open(io.BytesIO(data)) as container:
        if not container.streams.audio:
            raise ValueError("the file has no audio stream")
        stream = container.streams.audio[0]
        # one packed float layout for every codec: frames of (1, samples * channels)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=stream.rate)
        pieces = [
            out.to_ndarray().reshape(-1)
            for frame in container.decode(stream)
            for out in resampler.resample(frame)
        ]
        pieces += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
        rate = int(stream.rate)
    samples = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    return samples.astype(np.float32, copy=False), rate


def _read_file(path: str) -> bytes:
    if path.startswith(("http://", "https://")):
        raise ValueError(
            f"{path!r} is a URL; pipejit reads audio from local files, bytes or arrays only "
            "(download it first)"
        )
    if not os.path.isfile(path):
        raise ValueError(f"{path!r} is not an existing audio file")
    with open(path, "rb") as handle:
        return handle.read()


def _unpack_dict(item: dict) -> tuple[Any, int, dict[str, Any]]:
    item = dict(item)
    if "sampling_rate" not in item or not ("raw" in item or "array" in item):
        raise ValueError(
            "an audio dict needs a 'raw' (or 'array') key holding the samples and a "
            f"'sampling_rate' key, got the keys {sorted(item)}"
        )
    samples = item.pop("raw", None)
    if samples is None:
        item.pop("path", None)
        samples = item.pop("array", None)
    rate = item.pop("sampling_rate")
    if isinstance(rate, bool) or not isinstance(rate, Real) or rate <= 0 or rate != int(rate):
        raise ValueError(f"the audio's sampling_rate must be a positive int (Hz), got {rate!r}")
    return samples, int(rate), item


def _as_array(samples: Any) -> np.ndarray:
    if isinstance(samples, torch.Tensor):
        return samples.detach().cpu().numpy()
    if not isinstance(samples, np.ndarray):
        raise TypeError(f"audio samples must be a numpy array or torch tensor, got {type(samples)}")
    return samples


def _to_mono(samples: np.ndarray, channels_first: bool) -> np.ndarray:
    if samples.ndim == 1:
        return samples
    if not channels_first:
        raise ValueError(f"the audio must be one channel, a 1-D array; got shape {samples.shape}")
    if samples.ndim != 2 or samples.shape[0] > MAX_CHANNELS:
        raise ValueError(
            "audio arrays are read as (samples,) or (channels, samples) with at most "
            f"{MAX_CHANNELS} channels; got shape {samples.shape} (transpose channels-last "
            "arrays, downmix more channels yourself)"
        )
    return samples.mean(axis=0)
