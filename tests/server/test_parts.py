"""The server's pure parts, in process and without a server: left truncation, the
sentence-transformers config, body fields, media decoding, JSON conversion, the CLI's
clear error when the serve extra is missing."""

from __future__ import annotations

import base64
import io
import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from pipejit.server.errors import ApiError
from pipejit.server.fields import get_choice, get_texts, parse_body
from pipejit.server.jsonable import to_json
from pipejit.server.media import MediaDecoder
from pipejit.server.model_card import max_seq_length, pooling_mode
from pipejit.server.texts import TextLimits
from tests.server.conftest import minilm


@pytest.fixture(scope="module")
def limits(model_folder):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_folder("text-classification"))
    return TextLimits(tokenizer, 8)


def test_left_truncation_keeps_the_last_whole_words(limits):
    # 6 special-free tokens fit beside [CLS] and [SEP]; "zyx" splits into pieces
    (text,), (count,) = limits.prepare(["movie film zyx story good bad sad"], True, "Left")
    assert text == "zyx story good bad sad" or text == "story good bad sad"
    assert count == 8
    assert len(limits.encode(text).ids) <= 8


def test_too_long_without_truncate_names_the_input(limits):
    with pytest.raises(ApiError) as error:
        limits.prepare(["ok", "movie " * 20], False, name="inputs")
    assert error.value.status == 413
    assert "inputs[1] must have at most 8 tokens, given 22" in error.value.message


def test_minilm_sentence_transformers_config():
    assert pooling_mode(minilm()) == "mean"
    assert max_seq_length(minilm()) == 256


def test_ambiguous_pooling_config_is_refused(tmp_path):
    (tmp_path / "1_Pooling").mkdir()
    flags = {"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": True}
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(flags))
    with pytest.raises(ValueError, match="--pooling"):
        pooling_mode(str(tmp_path))
    assert pooling_mode(str(tmp_path / "missing")) is None


def test_fields():
    assert get_texts({"inputs": "a"}, "inputs", 4) == (["a"], True)
    assert get_choice({"d": "LEFT"}, "d", ("Right", "Left"), "Right") == "Left"
    with pytest.raises(ApiError, match="not valid JSON"):
        parse_body(b"{")
    with pytest.raises(ApiError, match="cannot be empty"):
        get_texts({"inputs": []}, "inputs", 4)


def test_media_decoder_reads_allowed_files_and_base64(tmp_path):
    image = Image.new("RGB", (5, 4), (10, 20, 30))
    path = tmp_path / "a.png"
    image.save(path)
    decoder = MediaDecoder("image-classification", [str(tmp_path)])
    assert decoder.decode(str(path), "inputs").size == (5, 4)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    got = decoder.decode({"image": encoded, "question": "q"}, "inputs")
    assert got["image"].getpixel((0, 0)) == (10, 20, 30) and got["question"] == "q"
    with pytest.raises(ApiError) as error:
        decoder.decode(str(tmp_path / ".." / "elsewhere.png"), "inputs")
    assert error.value.status == 403
    audio = MediaDecoder("audio-classification", [])
    assert audio.decode(base64.b64encode(b"RIFF").decode(), "inputs") == b"RIFF"
    assert MediaDecoder("text-classification", []).decode("/etc/passwd", "x") == "/etc/passwd"


def test_to_json():
    value = {
        "a": np.float32(0.5),
        "b": torch.tensor([1.0, 2.0]),
        "c": np.array([[1, 2]]),
        "d": float("nan"),
        "e": Image.new("L", (2, 2)),
    }
    out = to_json(value)
    assert out["a"] == 0.5 and out["b"] == [1.0, 2.0] and out["c"] == [[1, 2]]
    assert out["d"] is None
    assert Image.open(io.BytesIO(base64.b64decode(out["e"]))).size == (2, 2)
    json.dumps(out)


def test_missing_serve_extra_says_what_to_install(monkeypatch):
    from pipejit.server.cli import require_extra

    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi now raises ImportError
    with pytest.raises(SystemExit, match=r"pip install 'pipejit\[serve\]'"):
        require_extra()
