"""Image loading: the same pixels as transformers, and clear errors for bad inputs."""

import base64

import numpy as np
import pytest
from PIL import Image
from transformers.image_utils import load_image as reference_load_image

from pipejit.tasks.image_inputs import load_image


@pytest.fixture
def png(tmp_path):
    image = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3), mode="RGB")
    path = tmp_path / "small.png"
    image.save(path)
    return path


@pytest.mark.parametrize("mode", ["L", "RGBA", "RGB"])
def test_any_mode_becomes_the_same_rgb_as_transformers(mode, png):
    image = Image.open(png).convert(mode)
    ours = load_image(image)
    assert ours.mode == "RGB"
    assert np.array_equal(np.asarray(ours), np.asarray(reference_load_image(image)))


def test_path_and_base64(png):
    encoded = base64.b64encode(png.read_bytes()).decode()
    expected = np.asarray(reference_load_image(str(png)))
    assert np.array_equal(np.asarray(load_image(str(png))), expected)
    assert np.array_equal(np.asarray(load_image(encoded)), expected)


def test_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="neither an existing image file"):
        load_image(str(tmp_path / "missing.png"))
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match="not an image"):
        load_image(str(corrupt))
    with pytest.raises(TypeError, match="got int"):
        load_image(3)


def test_unreachable_url_fails_fast_with_a_clear_error():
    with pytest.raises(ValueError, match="could not fetch"):
        load_image("http://127.0.0.1:9/none.png", timeout=2)
