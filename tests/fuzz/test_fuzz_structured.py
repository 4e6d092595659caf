"""Tasks whose input is a dict (table, document, prompt), fuzzed against contract.py."""

from __future__ import annotations

import pytest

from tests.fuzz.contract import hold_to_contract

TASKS = ["table-question-answering", "document-question-answering", "image-text-to-text"]


@pytest.mark.parametrize("key", TASKS)
def test_hostile_calls_answer_like_transformers_or_fail_clearly(fuzz_pair, hostile_files, key):
    hold_to_contract(fuzz_pair(key), hostile_files)
