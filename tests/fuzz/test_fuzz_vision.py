"""Image and video tasks, fuzzed with hostile inputs and parameters against contract.py."""

from __future__ import annotations

import pytest

from tests.fuzz.contract import hold_to_contract

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
    hold_to_contract(fuzz_pair(key), hostile_files)
