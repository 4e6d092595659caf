"""video-classification (VideoMAE) at parity with transformers.pipeline, files and frames."""

import numpy as np
import pytest
from PIL import Image

from tests.parity import assert_same
from tests.vision_zero_shot_models import VIDEO_LABELS, pipeline_pair, write_video

av = pytest.importorskip("av", reason="video decoding needs PyAV: pip install 'pipejit[video]'")
TASK = "video-classification"


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return pipeline_pair("videomae", TASK, tmp_path_factory.mktemp("videomae"))


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Four short videos of mixed lengths and frame sizes."""
    folder = tmp_path_factory.mktemp("videos")
    specs = [(12, (48, 40)), (20, (32, 32)), (9, (64, 48)), (16, (48, 40))]
    return [
        str(write_video(folder / f"v{i}.mp4", n, seed=i, size=size))
        for i, (n, size) in enumerate(specs)
    ]


def decoded(path: str) -> list[np.ndarray]:
    with av.open(path) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.mark.parametrize("batch_size", [1, 2, None])
def test_files_batched(pair, videos, batch_size):
    ref, pj = pair
    assert_same(pj(videos, batch_size=batch_size), ref(videos))


def test_single_file_and_each_parameter(pair, videos):
    ref, pj = pair
    assert_same(pj(videos[0]), ref(videos[0]))
    for kwargs in (
        {"top_k": 2},
        {"top_k": 50},
        {"frame_sampling_rate": 2},
        {"function_to_apply": "sigmoid"},
        {"function_to_apply": "none", "top_k": 3},
    ):
        assert_same(pj(videos[1:3], **kwargs), ref(videos[1:3], **kwargs))
    kwargs = {"num_frames": 4, "frame_sampling_rate": 3}
    assert_same(pj(videos[:2], **kwargs), ref(videos[:2], **kwargs))
    assert {d["label"] for d in pj(videos[0], top_k=50)} == set(VIDEO_LABELS)


def test_frames_as_arrays_match_the_file(pair, videos):
    ref, pj = pair
    frames = decoded(videos[1])
    expected = ref(videos[1], frame_sampling_rate=2)
    assert_same(pj(frames, frame_sampling_rate=2), expected)
    assert_same(pj(np.stack(frames), frame_sampling_rate=2), expected)
    pil = [Image.fromarray(f) for f in frames]
    assert_same(
        pj([pil, videos[0]], frame_sampling_rate=2),
        ref([videos[1], videos[0]], frame_sampling_rate=2),
    )


def test_bad_inputs(pair, videos, tmp_path):
    ref, pj = pair
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video" * 50)
    with pytest.raises(ValueError, match="input 1: could not decode"):
        pj([videos[0], str(corrupt)])
    with pytest.raises(ValueError, match="neither an existing video file"):
        pj(str(tmp_path / "missing.mp4"))
    with pytest.raises(ValueError, match="has 3 of the 4 frames"):
        pj(videos[2], frame_sampling_rate=3)
    with pytest.raises(TypeError, match="a video must be"):
        pj([3])
    with pytest.raises(ValueError, match="function_to_apply"):
        pj(videos[0], function_to_apply="relu")
    with pytest.raises(TypeError, match="unexpected parameter"):
        pj(videos[0], frames=4)
    assert_same(pj(videos[:2]), ref(videos[:2]))


@pytest.mark.slow
def test_compiled_matches(tmp_path_factory, videos):
    ref, pj = pipeline_pair("videomae", TASK, tmp_path_factory.mktemp("videomae_c"), compile=True)
    assert_same(pj(videos, batch_size=2), ref(videos))
    assert pj.modules.runner("model").compiled and pj.modules.runner("model").stats.compile_seconds


def test_task_inferred_from_the_architecture(pair):
    import pipejit

    ref, _ = pair
    inferred = pipejit.pipeline(model=ref.model.name_or_path, compile=False)
    assert inferred.task.name == TASK
