"""A window of texts is tokenized in one call, to exactly what one call per text gives,
and falls back to one call per input where that could differ."""

import pytest
import torch
import transformers

import pipejit
from pipejit.tasks.base import encode, encode_texts
from tests.models import sentences
from tests.parity import assert_same

TEXTS = [*sentences(6, seed=3), "", "Ünïcödé, emoji 🙂 and   spaces", "word " * 300]


class CountingTokenizer:
    """A tokenizer that counts the calls made to it and delegates everything."""

    def __init__(self, tokenizer):
        self.wrapped, self.calls = tokenizer, []

    def __call__(self, *args, **kwargs):
        self.calls.append(args[0])
        return self.wrapped(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.wrapped, name)


@pytest.fixture(scope="module")
def tokenizer(model_folder):
    return transformers.AutoTokenizer.from_pretrained(model_folder("text-classification"))


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"truncation": True},
        {"truncation": True, "max_length": 12},
        {"add_special_tokens": False},
    ],
    ids=str,
)
def test_one_call_encodes_each_text_as_alone(tokenizer, options):
    together = encode_texts(tokenizer, TEXTS, **options)
    alone = [encode(tokenizer, text, **options) for text in TEXTS]
    assert len(together) == len(alone)
    for got, expected in zip(together, alone):
        assert got.keys() == expected.keys()
        for key in got:
            assert got[key].dtype == torch.long and torch.equal(got[key], expected[key])


@pytest.mark.parametrize(
    ("items", "options"),
    [
        ([], {}),
        (["a text", {"text": "a pair", "text_pair": "b"}], {}),
        (["short", "a longer text"], {"padding": True}),
        (["short", "a longer text"], {"return_tensors": "pt"}),
    ],
    ids=["empty", "not all strings", "padding", "tensors"],
)
def test_what_could_tie_texts_together_is_left_to_one_call_each(tokenizer, items, options):
    assert encode_texts(tokenizer, items, **options) is None


@pytest.mark.parametrize("task", ["text-classification", "feature-extraction"])
def test_a_window_of_texts_costs_one_tokenizer_call_and_matches_transformers(model_folder, task):
    folder = str(model_folder(task))
    pj = pipejit.pipeline(task, model=folder, compile=False)
    counting = pj.task.tokenizer = CountingTokenizer(pj.task.tokenizer)
    texts = TEXTS[:8]
    got = pj(texts, batch_size=3)
    assert counting.calls == [texts]
    assert_same(got, transformers.pipeline(task, model=folder)(texts))


def test_options_that_pad_tokenize_one_text_per_call(model_folder):
    folder = str(model_folder("feature-extraction"))
    pj = pipejit.pipeline("feature-extraction", model=folder, compile=False)
    counting = pj.task.tokenizer = CountingTokenizer(pj.task.tokenizer)
    options = {"tokenize_kwargs": {"padding": "max_length", "max_length": 24, "truncation": True}}
    texts = TEXTS[:3]
    got = pj(texts, **options)
    assert counting.calls == texts
    assert_same(got, transformers.pipeline("feature-extraction", model=folder)(texts, **options))
