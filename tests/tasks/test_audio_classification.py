"""audio-classification at parity with transformers.pipeline."""

import numpy as np
import pytest

from pipejit.tasks.audio_classification import AudioClassification
from tests.audio_models import AUDIO_LABELS, SAMPLING_RATE, audio_pipelines, clips
from tests.parity import assert_same

CLIPS = clips(8, seed=1)


@pytest.fixture(scope="module")
def get(tmp_path_factory):
    return audio_pipelines(tmp_path_factory)


@pytest.fixture(scope="module")
def pair(get):
    return get("audio-classification", "audio-classification")


def test_one_clip(pair):
    ref, pj = pair
    assert_same(pj(CLIPS[0]), ref(CLIPS[0]))


@pytest.mark.parametrize("batch_size", [1, 3, None])
def test_mixed_durations_batched_keep_input_order(pair, batch_size):
    ref, pj = pair
    assert_same(pj(CLIPS, batch_size=batch_size), ref(CLIPS))
    assert pj.task.pads  # layer-norm wav2vec2: padded with an attention mask


@pytest.mark.parametrize("top_k", [None, 1, 3, 100])
def test_top_k(pair, top_k):
    ref, pj = pair
    assert_same(pj(CLIPS[:3], top_k=top_k), ref(CLIPS[:3], top_k=top_k))


@pytest.mark.parametrize("function", ["softmax", "sigmoid", "none"])
def test_function_to_apply(pair, function):
    ref, pj = pair
    got = pj(CLIPS[:3], function_to_apply=function, top_k=2)
    assert_same(got, ref(CLIPS[:3], function_to_apply=function, top_k=2))


def test_raw_dicts_tensors_and_a_generator(pair):
    import torch

    ref, pj = pair
    dicts = [
        {"raw": CLIPS[0], "sampling_rate": SAMPLING_RATE},
        {"array": CLIPS[1], "sampling_rate": SAMPLING_RATE},
    ]
    assert_same(pj(dicts), ref(dicts))
    assert_same(pj(torch.from_numpy(CLIPS[2])), ref(CLIPS[2]))
    assert_same(list(pj(iter(CLIPS[:3]), batch_size=2)), ref(CLIPS[:3]))


def test_group_norm_model_batches_only_equal_lengths(get):
    """wav2vec2-base-like models normalise over time, so padding would change them."""
    ref, pj = get("audio-classification-group", "audio-classification")
    assert not pj.task.pads
    batch = CLIPS[:4] + [CLIPS[0], CLIPS[1]]
    assert_same(pj(batch, batch_size=4), ref(batch))


def test_bad_inputs_name_the_input_and_spare_the_rest(pair):
    ref, pj = pair
    bad = [CLIPS[0], np.zeros(0, np.float32), CLIPS[1]]
    with pytest.raises(ValueError, match="input 1: the audio has zero samples"):
        pj(bad)
    nan = CLIPS[2].copy()
    nan[5] = np.nan
    with pytest.raises(ValueError, match="input 2: the audio has 1 NaN"):
        pj([CLIPS[0], CLIPS[1], nan])
    with pytest.raises(ValueError, match="sampling_rate must be a positive int"):
        pj({"raw": CLIPS[0], "sampling_rate": "16k"})
    with pytest.raises(ValueError, match="not an existing audio file"):
        pj("/no/such/clip.wav")
    with pytest.raises(ValueError, match="one channel"):
        pj(np.stack([CLIPS[0], CLIPS[0]]))
    assert_same(pj([CLIPS[0], CLIPS[1]]), ref([CLIPS[0], CLIPS[1]]))


def test_parameter_errors(pair):
    _, pj = pair
    with pytest.raises(ValueError, match="function_to_apply"):
        pj(CLIPS[0], function_to_apply="tanh")
    with pytest.raises(ValueError, match="top_k"):
        pj(CLIPS[0], top_k=0)
    with pytest.raises(TypeError, match="unexpected parameter"):
        pj(CLIPS[0], chunk_length_s=1)


def test_task_inferred_from_the_architecture(pair):
    import pipejit

    ref, _ = pair
    pj = pipejit.pipeline(model=ref.model.name_or_path, compile=False)
    assert isinstance(pj.task, AudioClassification)
    assert_same(pj(CLIPS[0], top_k=2), ref(CLIPS[0], top_k=2))
    assert pj.task.config.id2label[0] == AUDIO_LABELS[0]
