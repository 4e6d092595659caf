"""zero-shot-audio-classification (CLAP-like) at parity with transformers.pipeline."""

import pytest

from tests.audio_models import SAMPLING_RATE, audio_pipelines, clips
from tests.parity import assert_same

TASK = "zero-shot-audio-classification"
# under the feature extractor's 2 s: longer clips are cropped at random (rand_trunc)
CLIPS = clips(5, seed=3, low=0.3, high=1.9)
LABELS = ["dog", "cat", "rain", "car"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return audio_pipelines(tmp_path_factory)("clap", TASK)


def test_one_clip(pair):
    ref, pj = pair
    assert_same(pj(CLIPS[0], candidate_labels=LABELS), ref(CLIPS[0], candidate_labels=LABELS))


@pytest.mark.parametrize("batch_size", [1, 3, None])
def test_batched_clips_keep_input_order(pair, batch_size):
    ref, pj = pair
    got = pj(CLIPS, candidate_labels=LABELS, batch_size=batch_size)
    assert_same(got, [ref(c, candidate_labels=LABELS) for c in CLIPS])


def test_hypothesis_template_and_label_count(pair):
    ref, pj = pair
    options = {"candidate_labels": ["dog", "rain"], "hypothesis_template": "the {} sound"}
    assert_same(pj(CLIPS[:2], **options), [ref(c, **options) for c in CLIPS[:2]])


def test_raw_dict_at_the_model_rate(pair):
    ref, pj = pair
    item = {"raw": CLIPS[1], "sampling_rate": SAMPLING_RATE}
    assert_same(pj(item, candidate_labels=LABELS), ref(CLIPS[1], candidate_labels=LABELS))


def test_bad_inputs_and_parameters(pair):
    import numpy as np

    ref, pj = pair
    with pytest.raises(ValueError, match="candidate_labels"):
        pj(CLIPS[0])
    with pytest.raises(ValueError, match="candidate_labels"):
        pj(CLIPS[0], candidate_labels="dog,cat")
    with pytest.raises(ValueError, match="input 1: the audio has zero samples"):
        pj([CLIPS[0], np.zeros(0, np.float32)], candidate_labels=LABELS)
    assert_same(pj(CLIPS[0], candidate_labels=LABELS), ref(CLIPS[0], candidate_labels=LABELS))
