"""Image and video tasks, fuzzed with hostile inputs and parameters against contract.py."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from tests.fuzz.conftest import examples
from tests.fuzz.contract import check
from tests.fuzz.strategies import calls

TASKS = [
    "image-classification",
    "image-feature-extraction",
    "object-detection",
    "image-segmentation",
    "depth-estimation",
    "zero-shot-image-classification",
    "zero-shot-object-detection",
    "mask-generation",
    "video-classification",
]


@pytest.mark.parametrize("key", TASKS)
def test_hostile_calls_answer_like_transformers_or_fail_clearly(fuzz_pair, hostile_files, key):
    pair = fuzz_pair(key)

    @settings(max_examples=examples(pair.spec))
    @given(call=calls(pair.spec, hostile_files, pair.goods))
    def hold_to_contract(call):
        check(pair, call)

    hold_to_contract()
