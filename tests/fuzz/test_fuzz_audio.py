"""Audio tasks (CTC and Whisper speech recognition), fuzzed against the contract (contract.py)."""

from __future__ import annotations

import pytest

from tests.fuzz.contract import hold_to_contract

TASKS = [
    "audio-classification",
    "automatic-speech-recognition",
    "whisper",
    "zero-shot-audio-classification",
]


@pytest.mark.parametrize("key", TASKS)
def test_hostile_calls_answer_like_transformers_or_fail_clearly(fuzz_pair, hostile_files, key):
    hold_to_contract(fuzz_pair(key), hostile_files)
