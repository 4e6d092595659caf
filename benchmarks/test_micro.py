"""pytest-benchmark micro-benchmarks, outside the default test run (testpaths is tests/).

Run: ``.venv/bin/python -m pytest benchmarks`` (add ``--benchmark-json=FILE`` to keep them).
"""

import pytest
import torch

import pipejit
from pipejit.bench.workloads import sentences
from pipejit.engine.collate import collate
from pipejit.engine.scheduler import plan_batches
from pipejit.engine.shapes import DEFAULT_LENGTH_LADDER, POWERS_OF_TWO
from tests.models import build_model_folder

LENGTHS = [len(text.split()) + 2 for text in sentences(4096)]


def test_scheduler_plans_4096_items(benchmark):
    batches = benchmark(
        plan_batches,
        LENGTHS,
        max_batch_size=256,
        token_budget=2048,
        length_ladder=DEFAULT_LENGTH_LADDER,
        batch_ladder=POWERS_OF_TWO,
    )
    assert sum(len(b.positions) for b in batches) == len(LENGTHS)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    folder = build_model_folder("text-classification", tmp_path_factory.mktemp("micro"))
    return pipejit.pipeline("text-classification", model=str(folder), compile=False)


@pytest.mark.parametrize("batch, length", [(1, 16), (8, 64), (32, 128)])
def test_one_forward_per_bucket(benchmark, classifier, batch, length):
    item = classifier.task.dummy_features(length)
    inputs = collate([item] * batch, length, classifier.task.pad_values, torch.device("cpu"))
    params = classifier.task.parse_params({})
    rows = benchmark(classifier._forward_step, inputs, {}, params)
    assert all(value.shape[0] == batch for value in rows.values())
