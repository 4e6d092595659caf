"""fill-mask's gather-before-head: the base model and head found through public attributes
give the full model's logits, and models of another layout are left whole."""

import pytest
import torch
from transformers import (
    AlbertConfig,
    AlbertForMaskedLM,
    BertConfig,
    BertForMaskedLM,
    DistilBertConfig,
    DistilBertForMaskedLM,
    ElectraConfig,
    ElectraForMaskedLM,
    RobertaConfig,
    RobertaForMaskedLM,
)

from pipejit.tasks.fill_mask import lm_head_split

SMALL = dict(
    vocab_size=99,
    hidden_size=16,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=32,
    max_position_embeddings=64,
)
MODELS = {
    "bert": lambda: BertForMaskedLM(BertConfig(**SMALL)),
    "roberta": lambda: RobertaForMaskedLM(RobertaConfig(**SMALL)),
    "albert": lambda: AlbertForMaskedLM(AlbertConfig(**SMALL, embedding_size=8)),
    "electra": lambda: ElectraForMaskedLM(ElectraConfig(**SMALL, embedding_size=8)),
    "distilbert": lambda: DistilBertForMaskedLM(
        DistilBertConfig(vocab_size=99, dim=16, n_layers=1, n_heads=2, hidden_dim=32)
    ),
}


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_split_gives_the_full_logits(kind):
    torch.manual_seed(0)
    model = MODELS[kind]().eval()
    split = lm_head_split(model)
    assert split is not None
    base, head = split
    ids = torch.randint(5, 99, (2, 7))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask).logits
        rows, positions = torch.tensor([0, 1, 1]), torch.tensor([3, 0, 4])
        hidden = base(input_ids=ids, attention_mask=mask)[0]
        torch.testing.assert_close(head(hidden[rows, positions]), full[rows, positions])


def test_a_model_with_other_weights_is_left_whole():
    model = BertForMaskedLM(BertConfig(**SMALL)).eval()
    model.extra = torch.nn.Linear(2, 2)  # something the split would skip
    assert lm_head_split(model) is None
    assert lm_head_split(torch.nn.Linear(2, 2)) is None
