"""Explicit tests for every bug the fuzz suite found, and for the input limits and errors=.

Each test names the hostile input that once got a bad answer (a generator, an
internal error, a decoded decompression bomb) and holds the fix.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import pipejit
from tests.fuzz.contract import reference_input
from tests.fuzz.hostile_files import wav_bytes
from tests.parity import assert_same


@pytest.fixture(scope="module")
def text(fuzz_pair):
    return fuzz_pair("text-classification")


@pytest.mark.parametrize(
    "inputs", [b"bytes", bytearray(b"bytes"), memoryview(b"bytes"), {"x"}, frozenset({"x"})]
)
def test_bytes_and_sets_are_refused_not_streamed(text, inputs):
    """clf(b"bytes") returned a generator over the bytes' ints instead of raising."""
    with pytest.raises(ValueError, match=f"got {type(inputs).__name__}"):
        text.ours(inputs)  # raises at the call: no generator is returned


def test_a_string_is_not_streamed_as_characters_by_a_task_that_takes_dicts(fuzz_pair):
    tables = fuzz_pair("table-question-answering").ours
    with pytest.raises(ValueError, match="got str"):
        tables("which movie")


def test_lone_surrogate_is_a_clear_value_error(text):
    """The tokenizer raised 'TextEncodeInput must be Union[...]' from inside Rust."""
    with pytest.raises(ValueError, match=r"lone surrogate '\\ud800' at character 3"):
        text.ours("abc\ud800")
    with pytest.raises(ValueError, match="^input 1: .*lone surrogate"):
        text.ours(["fine", "abc\ud800"])


@pytest.mark.parametrize("labels", [5, [None], ["a", 3]])
def test_zero_shot_labels_of_the_wrong_type_are_a_type_error(fuzz_pair, labels):
    """candidate_labels=5 raised "'int' object is not subscriptable"."""
    zero_shot = fuzz_pair("zero-shot-classification").ours
    with pytest.raises(TypeError, match="candidate_labels must be"):
        zero_shot("the movie was good", candidate_labels=labels)


def test_a_decompression_bomb_file_is_a_value_error(fuzz_pair, hostile_files):
    """PIL's DecompressionBombError escaped image loading as neither ValueError nor TypeError."""
    images = fuzz_pair("image-classification").ours
    with pytest.raises(ValueError, match="too large to decode"):
        images(hostile_files["huge_png"])
    with pytest.raises(ValueError, match="^input 0: .*too large"):
        images([hostile_files["huge_png"]])


@pytest.mark.parametrize("size", [(0, 0), (0, 7), (7, 0)])
def test_an_image_of_zero_pixels_is_a_value_error(fuzz_pair, size):
    images = fuzz_pair("image-classification").ours
    with pytest.raises(ValueError, match=f"{size[0]}x{size[1]} pixels"):
        images(Image.new("RGB", size))


def test_errors_return_puts_each_bad_inputs_error_in_its_place(text):
    good = ["the movie was good", "paris is a city"]
    results = text.ours([good[0], None, good[1], b"x"], errors="return")
    assert_same(results[0], text.ours([good[0], good[0]])[0])
    assert_same(results[2], text.ours([good[1], good[1]])[0])
    assert isinstance(results[1], ValueError) and str(results[1]).startswith("input 1: ")
    assert isinstance(results[3], ValueError) and str(results[3]).startswith("input 3: ")
    streamed = list(text.ours(iter([None, good[0]]), errors="return"))
    assert str(streamed[0]).startswith("input 0: ")
    assert_same(streamed[1], results[0])


def test_errors_takes_raise_or_return(text):
    with pytest.raises(ValueError, match="errors must be one of"):
        text.ours(["x"], errors="ignore")
    with pytest.raises(ValueError, match="^input 1: "):
        text.ours(["x", None], errors="raise")


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("max_input_length", 0, ValueError),
        ("max_input_length", "100", TypeError),
        ("max_input_length", True, TypeError),
        ("max_image_pixels", 2.5, TypeError),
        ("max_audio_seconds", -1, ValueError),
        ("max_audio_seconds", float("inf"), ValueError),
    ],
)
def test_limit_options_are_validated(text, option, value, error):
    with pytest.raises(error, match=option):
        pipejit.pipeline("text-classification", model=text.folder, compile=False, **{option: value})


def test_max_input_length_is_configurable(text):
    short = pipejit.pipeline(
        "text-classification", model=text.folder, max_input_length=10, compile=False
    )
    assert_same(short("0123456789"), text.ours("0123456789"))
    with pytest.raises(ValueError, match="^input 1: a text of 11 characters .*=10"):
        short(["ok", "0123456789x"])


def test_max_image_pixels_is_configurable(fuzz_pair):
    pair = fuzz_pair("image-classification")
    small = pipejit.pipeline(
        "image-classification", model=pair.folder, max_image_pixels=100, compile=False
    )
    assert_same(small(Image.new("RGB", (10, 10))), pair.ours(Image.new("RGB", (10, 10))))
    with pytest.raises(ValueError, match="11x10 = 110 pixels, more than max_image_pixels=100"):
        small(Image.new("RGB", (11, 10)))


def test_audio_longer_than_max_audio_seconds_is_refused_undecoded(fuzz_pair):
    pair = fuzz_pair("audio-classification")
    short = pipejit.pipeline(
        "audio-classification", model=pair.folder, max_audio_seconds=1, compile=False
    )
    second = np.zeros(16_000, np.float32) + 0.1
    assert_same(short(second), pair.ours(second))
    longer = np.zeros(16_001, np.float32)
    for item in [
        longer,
        {"raw": np.zeros(8_001, np.float32), "sampling_rate": 8000},
        wav_bytes(longer, 16_000),
    ]:
        with pytest.raises(ValueError, match="more than max_audio_seconds=1"):
            short(item)


def test_a_huge_lazily_opened_image_is_refused_before_decoding(fuzz_pair, hostile_files):
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        image = Image.open(hostile_files["huge_png"])
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    with pytest.raises(ValueError, match="20000x20000 = 400,000,000 pixels"):
        fuzz_pair("image-classification").ours(image)


def test_nesting_deeper_than_any_input_format_is_refused(text):
    deep: list = ["x"]
    for _ in range(40):
        deep = [deep]
    with pytest.raises(ValueError, match="^input 0: the input nests .* more than 16 levels"):
        text.ours(deep)


def test_bytes_stay_valid_where_transformers_takes_them(fuzz_pair):
    """transformers decodes audio bytes with an ffmpeg binary (absent here): it is given
    the same file's samples, as soundfile decodes them."""
    pair = fuzz_pair("audio-classification")
    clip = (0.3 * np.sin(np.arange(8000) / 7)).astype(np.float32)
    data = wav_bytes(clip, 16_000)
    assert_same(pair.ours(data), pair.reference(reference_input(pair.spec, data)))


@pytest.mark.parametrize("param", ["num_frames", "frame_sampling_rate"])
def test_video_frame_parameters_of_zero_are_errors_not_defaults(fuzz_pair, param):
    """num_frames=0 and frame_sampling_rate=0 were read as "not given" and answered with the
    defaults, where transformers crashes (IndexError, nothing to stack)."""
    pair = fuzz_pair("video-classification")
    with pytest.raises(ValueError, match=f"{param} must be a positive int, got 0"):
        pair.ours(pair.goods[0], **{param: 0})


def test_a_list_of_prompt_dicts_is_a_batch_not_a_chat(fuzz_pair):
    """[{"images", "text"}, ...] was misread as one chat: the error ("each dict must have a
    'role'") named no input, and a list of good prompts could not be run at all."""
    pair = fuzz_pair("image-text-to-text")
    kwargs = pair.spec.kwargs
    expected = [pair.spec.reference_call(pair.reference, item, **kwargs) for item in pair.goods]
    assert_same(pair.ours(pair.goods, **kwargs), expected)
    with pytest.raises(ValueError, match="^input 1: "):
        pair.ours([pair.goods[0], None], **kwargs)


def test_a_bad_document_image_is_an_error_even_beside_word_boxes(fuzz_pair):
    """With word_boxes the image was never read, so {"image": "0", ...} was answered where
    transformers (which loads it) refuses it."""
    pair = fuzz_pair("document-question-answering")
    with pytest.raises(ValueError, match="'0' is neither an existing image file"):
        pair.ours({**pair.goods[0], "image": "0"})


def test_a_list_of_image_paths_with_shared_labels_answers_each_path(fuzz_pair, hostile_files):
    """transformers crashes on [path] with candidate_labels ("string indices must be
    integers"); pipejit answers each path as transformers answers it alone."""
    pair = fuzz_pair("zero-shot-object-detection")
    path, kwargs = hostile_files["good_png"], pair.spec.kwargs
    assert_same(pair.ours([path, path], **kwargs), [pair.reference(path, **kwargs)] * 2)
