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
@given(data=st.data())
def test_hostile_calls_answer_like_transformers_or_fail_clearly(
    fuzz_pair, hostile_files, key, data
):
    pair = fuzz_pair(key)
    check(pair, data.draw(calls(pair.spec, hostile_files, pair.goods), label="call"))
