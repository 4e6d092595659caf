"""Classifiers that read the first position only run their last layer for it alone, no
other position projected, and still answer as transformers does."""

from __future__ import annotations

import copy

import pytest
import torch
import transformers

import pipejit
from pipejit.tasks.first_token import first_position_only
from tests.models import build_tokenizer, sentences
from tests.parity import assert_same


def _roberta_classifier(folder):
    tokenizer = build_tokenizer(folder)
    config = transformers.RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=160,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=3,
    )
    torch.manual_seed(0)
    transformers.RobertaForSequenceClassification(config).eval().save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def folders(model_folder, tmp_path_factory):
    return {
        "bert": str(model_folder("text-classification")),
        "roberta": _roberta_classifier(tmp_path_factory.mktemp("roberta")),
    }


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_first_position_only_answers_as_transformers(folders, family):
    texts = sentences(10, seed=5)
    ours = pipejit.pipeline("text-classification", model=folders[family], compile=False)
    reference = transformers.pipeline("text-classification", model=folders[family])
    assert ours.task.first_position_only
    expected = reference(texts, batch_size=1, top_k=None)
    assert_same(ours(texts, batch_size=4, top_k=None), expected)
    assert_same(ours(texts[0], top_k=None), expected[0])


def test_zero_shot_classification_reads_the_first_position_only(model_folder):
    folder = str(model_folder("zero-shot-classification"))
    ours = pipejit.pipeline("zero-shot-classification", model=folder, compile=False)
    reference = transformers.pipeline("zero-shot-classification", model=folder)
    assert ours.task.first_position_only
    texts, labels = sentences(4, seed=6), ["sports", "politics", "travel"]
    expected = [reference(t, candidate_labels=labels) for t in texts]
    assert_same(ours(texts, candidate_labels=labels), expected)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_the_last_layer_projects_the_first_position_only(folders, attention):
    model = _with_random_biases(
        transformers.AutoModelForSequenceClassification.from_pretrained(
            folders["bert"], attn_implementation=attention
        )
    )
    rows: dict[str, list[int]] = {}
    layers = model.bert.encoder.layer
    watched = {
        "first layer key": layers[0].attention.self.key,
        "query": layers[-1].attention.self.query,
        "key": layers[-1].attention.self.key,
        "value": layers[-1].attention.self.value,
        "output projection": layers[-1].attention.output.dense,
        "feed-forward": layers[-1].intermediate,
    }
    for name, module in watched.items():
        module.register_forward_hook(
            lambda module, args, output, name=name: rows.setdefault(name, []).append(
                args[0].shape[1] if args[0].dim() == 3 else 1
            )
        )
    ids = torch.tensor([[2, 40, 41, 42, 3, 0, 0], [2, 43, 44, 45, 46, 47, 3]])
    mask = (ids != 0).long()
    with torch.inference_mode():
        before = model(input_ids=ids, attention_mask=mask).logits
        rows.clear()
        assert first_position_only(model)
        after = model(input_ids=ids, attention_mask=mask).logits
    # the last layer's keys and values are folded into its query and context: never run
    assert rows == {
        "first layer key": [7],
        "query": [1],
        "output projection": [1],
        "feed-forward": [1],
    }
    torch.testing.assert_close(after, before)


def test_other_classifiers_are_left_alone():
    config = transformers.DistilBertConfig(
        vocab_size=50, dim=32, n_layers=1, n_heads=2, hidden_dim=64, num_labels=2
    )
    assert not first_position_only(transformers.DistilBertForSequenceClassification(config))


def test_a_model_object_handed_in_is_left_as_it_is(folders):
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folders["bert"])
    tokenizer = transformers.AutoTokenizer.from_pretrained(folders["bert"])
    ours = pipejit.pipeline("text-classification", model=model, tokenizer=tokenizer, compile=False)
    assert not ours.task.owns_model and not ours.task.first_position_only
    assert ours.stats()["cpu_path"] is None
    ids = torch.tensor([[2, 40, 41, 42, 3]])
    with torch.inference_mode():
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states[-1]
    assert hidden.shape[1] == 5  # the caller's own calls still see every position
    texts = sentences(6, seed=7)
    reference = transformers.pipeline("text-classification", model=folders["bert"])
    assert_same(ours(texts, batch_size=3), reference(texts, batch_size=1))


def test_a_deep_copy_computes_with_its_own_weights(folders):
    # the CPU path times deep copies of the model: each must run its own last layer
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folders["bert"])
    assert first_position_only(model)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin.bert.encoder.layer[-1].attention.self.query.weight.zero_()
    ids = torch.tensor([[2, 40, 41, 42, 3]])
    with torch.inference_mode():
        assert not torch.allclose(twin(input_ids=ids).logits, model(input_ids=ids).logits)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize(
    "family",
    [
        (transformers.BertConfig, transformers.BertForSequenceClassification),
        (transformers.RobertaConfig, transformers.RobertaForSequenceClassification),
        (transformers.XLMRobertaConfig, transformers.XLMRobertaForSequenceClassification),
        (transformers.ElectraConfig, transformers.ElectraForSequenceClassification),
    ],
    ids=lambda family: family[1].__name__,
)
def test_every_family_keeps_its_logits_on_padded_batches(family, attention):
    config_class, model_class = family
    config = config_class(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        num_labels=3,
        pad_token_id=1,
    )
    torch.manual_seed(0)
    model = _with_random_biases(model_class(config).eval())
    model.set_attn_implementation(attention)
    ids = torch.tensor([[2, 40, 41, 42, 3, 1, 1], [2, 43, 44, 45, 46, 47, 3]])
    mask = (ids != 1).long()
    with torch.inference_mode():
        before = model(input_ids=ids, attention_mask=mask).logits
        assert first_position_only(model)
        after = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)


def _with_random_biases(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with every bias drawn at random (initialised, they are all zero, and the
    folded key and value projections must carry theirs)."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
    return model
