"""Hypothesis strategies: hostile inputs by modality, hostile parameters, and whole calls.

A drawn call is one hostile input alone, a list of good inputs with one hostile
input at a known index, or a good input with drawn parameters (good, wrong type,
out of range, unknown). Hostile values that are costly to make (files, the huge
image) are made once per session and drawn from a pool.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st
from PIL import Image

from tests.fuzz.hostile_files import png_bytes, wav_bytes
from tests.fuzz.specs import UNKNOWN, Spec

HOUR = 3600
RATE = 16_000


@dataclass
class Call:
    """One drawn call: ``inputs`` with ``params``; ``bad_index`` is the hostile item's
    place in a list (None for one input); ``bad_params`` when the params were drawn bad."""

    inputs: Any
    params: dict[str, Any]
    bad_index: int | None
    bad_params: bool

    def __repr__(self) -> str:  # short enough to read in a failure report
        return f"Call({_short(self.inputs)}, params={_short(self.params)}, bad={self.bad_index})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 300 else text[:297] + "..."


class Lazy:
    """A hostile value made on demand (a fresh image per draw, never shared state)."""

    def __init__(self, name: str, make):
        self.name, self.make = name, make

    def __repr__(self) -> str:
        return self.name


def _materialize(value: Any) -> Any:
    return value.make() if isinstance(value, Lazy) else value


def common_values() -> list[Any]:
    """What any task may be sent by mistake."""
    return [
        None,
        0,
        -1,
        3.5,
        math.nan,
        True,
        "",
        [],
        {},
        [[]],
        [None],
        {"extra": 1},
        Lazy("object()", object),
        Lazy("set()", set),
    ]


def text_values() -> st.SearchStrategy:
    weird = st.characters(categories=("Cc", "Cs", "Cf", "Mn", "Zs", "Zl", "Co"))
    rtl = st.sampled_from("\u05d0\u05d1\u05d2\u0627\u0644\u0639\u200f\u202e\u202b ")
    words = st.sampled_from(["the", "movie", "good", "paris", "[MASK]", "<image>", "zyx"])
    return st.one_of(
        st.sampled_from(
            [b"bytes", bytearray(b"text"), Lazy("memoryview", lambda: memoryview(b"a"))]
        ),
        st.text(weird, min_size=1, max_size=20),
        st.text(rtl, min_size=1, max_size=20),
        st.lists(words, min_size=1, max_size=6).map(" ".join),
        st.integers(130, 1500).map(lambda n: "word " * n),  # over the tiny models' 128 tokens
        st.recursive(st.text(max_size=4), lambda inner: st.lists(inner, max_size=3), max_leaves=5),
        st.dictionaries(
            st.sampled_from(["text", "text_pair", "image", "question", "extra"]),
            st.one_of(st.none(), st.text(max_size=5), st.integers()),
            max_size=3,
        ),
    )


def image_values(files: dict[str, str]) -> list[Any]:
    def mode(name: str, size=(30, 20)):
        return Lazy(f"Image({name}, {size})", lambda: Image.new(name, size))

    def huge_lazy():
        limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # a caller who opened it so; pipejit must not decode it
        try:
            return Image.open(files["huge_png"])
        finally:
            Image.MAX_IMAGE_PIXELS = limit

    return [
        mode("RGB", (0, 0)),
        mode("RGB", (0, 7)),
        mode("RGB", (1, 1)),
        mode("RGBA"),
        mode("LA"),
        mode("P"),
        mode("1"),
        mode("I;16"),
        mode("I"),
        mode("F"),
        mode("CMYK"),
        Lazy("huge lazy PIL image", huge_lazy),
        files["huge_png"],
        files["corrupt_image"],
        files["truncated_png"],
        files["empty_file"],
        files["missing"],
        files["directory"],
        files["good_png"],
        base64.b64encode(png_bytes()).decode(),
        "data:image/png;base64," + base64.b64encode(png_bytes((5, 3), "L")).decode(),
        png_bytes(),
        Lazy("uint8 array image", lambda: np.zeros((20, 20, 3), np.uint8)),
    ]


def audio_values(files: dict[str, str]) -> list[Any]:
    clip = (0.3 * np.sin(np.arange(8000) / 7)).astype(np.float32)

    def arr(name, make):
        return Lazy(name, make)

    return [
        arr("empty", lambda: np.zeros(0, np.float32)),
        arr("nan", lambda: np.full(4000, np.nan, np.float32)),
        arr("inf", lambda: np.concatenate([clip, [np.inf]]).astype(np.float32)),
        arr("float64", lambda: clip.astype(np.float64)),
        arr("int16", lambda: (clip * 3000).astype(np.int16)),
        arr("int64", lambda: (clip * 3000).astype(np.int64)),
        arr("bool", lambda: clip > 0),
        arr("complex", lambda: clip.astype(np.complex64)),
        arr("2-D (2, n)", lambda: np.stack([clip, clip])),
        arr("2-D (n, 2)", lambda: np.stack([clip, clip], axis=1)),
        arr("3-D", lambda: clip.reshape(2, 2, -1)),
        arr("0-D", lambda: np.float32(0.5)),
        arr("one hour", lambda: np.broadcast_to(np.float32(0), (HOUR * RATE,))),
        arr("tensor", lambda: torch.from_numpy(clip.copy())),
        arr("rate 0", lambda: {"raw": clip, "sampling_rate": 0}),
        arr("rate -1", lambda: {"raw": clip, "sampling_rate": -1}),
        arr("rate str", lambda: {"raw": clip, "sampling_rate": "16000"}),
        arr("rate 8000", lambda: {"raw": clip, "sampling_rate": 8000}),
        arr("rate 1", lambda: {"raw": clip, "sampling_rate": 1}),
        arr("rate fraction", lambda: {"raw": clip, "sampling_rate": 16000.5}),
        arr("no rate", lambda: {"raw": clip}),
        arr("extra key", lambda: {"array": clip, "sampling_rate": RATE, "path": "x", "z": 1}),
        arr("raw list", lambda: {"raw": clip.tolist(), "sampling_rate": RATE}),
        wav_bytes(clip, RATE),
        wav_bytes(clip, 8000),
        wav_bytes(np.zeros(0, np.float32), RATE),
        b"",
        b"\x00" * 64,
        files["corrupt_wav"],
        files["good_wav"],
        files["missing"],
        files["directory"],
    ]


def video_values(files: dict[str, str]) -> list[Any]:
    return [
        files["no_frames_video"],
        files["one_frame_video"],
        files["corrupt_video"],
        files["good_png"],
        files["missing"],
        files["directory"],
        Lazy("frames array", lambda: np.zeros((4, 32, 32, 3), np.uint8)),
        b"\x00\x00\x00\x18ftypmp42",
    ]


def _mutations(good: dict[str, Any], values: st.SearchStrategy) -> st.SearchStrategy:
    """A good dict input with a key dropped, an extra key, or a value made hostile."""
    keys = sorted(good)
    drop = st.sampled_from(keys).map(lambda k: {n: v for n, v in good.items() if n != k})
    extra = values.map(lambda v: {**good, "extra_key": v})
    replace = st.tuples(st.sampled_from(keys), values).map(lambda kv: {**good, kv[0]: kv[1]})
    return st.one_of(drop, extra, replace)


def hostile_inputs(spec: Spec, files: dict[str, str], goods: list[Any]) -> st.SearchStrategy:
    """Hostile single inputs for ``spec``'s modality (always with the common mistakes)."""
    common = st.sampled_from(common_values())
    images = st.sampled_from(image_values(files))
    texts = text_values()
    by_modality = {
        "text": texts,
        "image": st.one_of(images, texts),
        "audio": st.one_of(st.sampled_from(audio_values(files)), texts),
        "video": st.one_of(st.sampled_from(video_values(files)), texts),
    }
    if spec.modality in by_modality:
        values = by_modality[spec.modality]
    else:  # dict inputs: tables, documents, prompts
        inner = st.one_of(images, texts, common)
        values = st.one_of(_mutations(goods[0], inner), texts, images)
    return st.one_of(common, values)


def params_of(spec: Spec) -> st.SearchStrategy:
    """(params, bad): nothing, a good set, a bad one, or an unknown name."""
    options = [st.just(({}, False))]
    if spec.good_params:
        options.append(st.sampled_from(spec.good_params).map(lambda p: (p, False)))
    bad = [*spec.bad_params, UNKNOWN, {"batch_size": 0}, {"errors": "ignore"}]
    options.append(st.sampled_from(bad).map(lambda p: (p, True)))
    return st.one_of(*options)


@st.composite
def calls(draw, spec: Spec, files: dict[str, str], goods: list[Any]) -> Call:
    hostile = hostile_inputs(spec, files, goods)
    shape = draw(st.sampled_from(["one", "list", "params"]))
    if shape == "params":
        params, bad = draw(params_of(spec))
        return Call(draw(st.sampled_from(goods)), params, None, bad)
    params, bad = draw(st.one_of(st.just(({}, False)), params_of(spec)))
    item = _materialize(draw(hostile))
    if shape == "one":
        return Call(item, params, None, bad)
    others = draw(st.lists(st.sampled_from(range(len(goods))), max_size=3))
    index = draw(st.integers(0, len(others)))
    items = [goods[i] for i in others]
    items.insert(index, item)
    return Call(items, params, index, bad)
