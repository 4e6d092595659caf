"""automatic-speech-recognition with CTC models at parity with transformers.pipeline."""

import numpy as np
import pytest

from pipejit.tasks.speech_recognition_ctc import SpeechRecognitionCTC
from tests.audio_models import SAMPLING_RATE, audio_pipelines, clips
from tests.parity import assert_same

TASK = "automatic-speech-recognition"
CLIPS = clips(5, seed=2, low=0.2, high=1.6)


@pytest.fixture(scope="module")
def get(tmp_path_factory):
    return audio_pipelines(tmp_path_factory)


@pytest.fixture(scope="module")
def pair(get):
    return get("ctc", TASK)


def test_one_clip(pair):
    ref, pj = pair
    out = pj(CLIPS[0])
    assert_same(out, ref(CLIPS[0]))
    assert len(set(out["text"])) > 3  # the tiny model emits varied tokens


@pytest.mark.parametrize("batch_size", [1, 4, None])
def test_mixed_durations_batched_keep_input_order(pair, batch_size):
    ref, pj = pair
    assert_same(pj(CLIPS, batch_size=batch_size), ref(CLIPS))


@pytest.mark.parametrize("kind", ["char", "word"])
def test_timestamps(pair, kind):
    ref, pj = pair
    got = pj(CLIPS[:3], return_timestamps=kind, batch_size=3)
    assert_same(got, ref(CLIPS[:3], return_timestamps=kind))
    assert got[0]["chunks"]


@pytest.mark.parametrize(
    "chunking",
    [
        {"chunk_length_s": 0.5},
        {"chunk_length_s": 0.4, "stride_length_s": 0.1},
        {"chunk_length_s": 0.6, "stride_length_s": (0.05, 0.15)},
        {"chunk_length_s": 0.5, "return_timestamps": "word"},
    ],
)
def test_chunked_audio_is_reassembled_in_order(pair, chunking):
    ref, pj = pair
    assert_same(pj(CLIPS, batch_size=8, **chunking), ref(CLIPS, **chunking))


def test_group_norm_model_chunked_batches_and_unchunked_matches(get):
    ref, pj = get("ctc-group", TASK)
    assert not pj.task.pads
    assert_same(pj(CLIPS, chunk_length_s=0.5, batch_size=8), ref(CLIPS, chunk_length_s=0.5))
    assert_same(pj(CLIPS[:3]), ref(CLIPS[:3]))


def test_dicts_with_extra_keys_and_stride(pair):
    ref, pj = pair
    item = {"raw": CLIPS[1], "sampling_rate": SAMPLING_RATE, "id": 7}
    assert_same(pj(dict(item)), ref(dict(item)))
    strided = {"array": CLIPS[1], "sampling_rate": SAMPLING_RATE, "stride": (1600, 3200)}
    assert_same(pj(dict(strided)), ref(dict(strided)))
    chunked = pj(dict(item), chunk_length_s=0.5)
    assert_same(chunked, ref(dict(item), chunk_length_s=0.5))
    assert len(chunked["id"]) > 1  # one per chunk, as transformers lists them


def test_two_channel_audio_is_averaged(pair):
    ref, pj = pair
    stereo = np.stack([CLIPS[0], CLIPS[0] * 0.5])
    assert_same(pj(stereo), ref(stereo))


def test_bad_inputs_and_parameters(pair):
    ref, pj = pair
    with pytest.raises(ValueError, match="input 1: the audio has zero samples"):
        pj([CLIPS[0], np.zeros(0, np.float32)])
    with pytest.raises(ValueError, match="'char' or 'word'"):
        pj(CLIPS[0], return_timestamps=True)
    with pytest.raises(ValueError, match="longer than the two strides"):
        pj(CLIPS[0], chunk_length_s=0.2, stride_length_s=0.2)
    with pytest.raises(ValueError, match="stride"):
        pj({"raw": CLIPS[0][:100], "sampling_rate": SAMPLING_RATE, "stride": (80, 80)})
    with pytest.raises(ValueError, match="at most 2 channels"):
        pj(np.zeros((3, 1000), np.float32))
    assert_same(pj(CLIPS[:2]), ref(CLIPS[:2]))


def test_serves_ctc_models_only_and_infers_the_task(pair, get):
    import pipejit

    ref, _ = pair
    assert SpeechRecognitionCTC.serves(ref.model)
    classifier, _ = get("audio-classification", "audio-classification")
    assert not SpeechRecognitionCTC.serves(classifier.model)
    pj = pipejit.pipeline(model=ref.model.name_or_path, compile=False)
    assert isinstance(pj.task, SpeechRecognitionCTC)


@pytest.mark.slow
def test_compiled_static_buckets_match_and_compile_once_per_bucket(get, counting_backend):
    ref, pj = get("ctc", TASK, compile=True, compile_backend=counting_backend, shapes="static")
    assert_same(pj(CLIPS, batch_size=4), ref(CLIPS))
    assert_same(pj(CLIPS, batch_size=4), ref(CLIPS))
    stats = pj.stats()
    assert stats["compiled"] and stats["compile_failed"] is None
    assert 0 < counting_backend.graphs <= len(stats["buckets"])
    # buckets are in samples, on the task's duration ladder
    assert all(length % (SAMPLING_RATE // 2) == 0 for _, length in stats["buckets"])


@pytest.mark.slow
def test_inductor_dynamic_compile_matches(get):
    ref, pj = get("ctc", TASK, compile=True, shapes="dynamic")
    assert_same(pj(CLIPS[:3], batch_size=2), ref(CLIPS[:3]))
    assert pj.stats()["compile_failed"] is None
