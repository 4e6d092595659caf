"""The one comparison of outputs: the tests' strict one and the bench's by value."""

from __future__ import annotations

import numpy as np
import torch

from pipejit.bench.parity import TOLERANCE, first_difference, outputs_match
from tests.parity import assert_same


def test_floats_within_tolerance_agree_and_the_difference_is_located():
    expected = [{"label": "POSITIVE", "score": 0.5}, {"label": "NEGATIVE", "score": 0.25}]
    rel, _ = TOLERANCE["float32"]
    close = [{"label": "POSITIVE", "score": 0.5 * (1 + rel / 2)}, dict(expected[1])]
    assert first_difference(close, expected) is None
    far = [dict(expected[0]), {"label": "NEGATIVE", "score": 0.26}]
    assert first_difference(far, expected) == "output[1]['score']: 0.26 != 0.25"
    relabelled = [dict(expected[0]), {"label": "POSITIVE", "score": 0.25}]
    assert "output[1]['label']" in first_difference(relabelled, expected)


def test_strict_holds_types_and_by_value_does_not():
    # what crossed JSON or Arrow: tuples became lists, arrays nested lists, floats numpy's
    pairs = [
        ([1, 2], (1, 2)),
        ([[0.5, 1.5]], np.array([[0.5, 1.5]])),
        (np.float32(0.5), 0.5),
        (True, 1),
    ]
    for crossed, original in pairs:
        assert first_difference(crossed, original, strict=True) is not None
    for crossed, original in pairs[:3]:
        assert outputs_match(crossed, original)
    assert not outputs_match([[0.5, 1.6]], np.array([[0.5, 1.5]]))


def test_tensors_compare_by_shape_and_value_whatever_their_dtype():
    assert first_difference(torch.tensor([True, False]), torch.tensor([True, False])) is None
    assert "shape" in first_difference(torch.zeros(2, 3), torch.zeros(3, 2))
    assert "differ by up to 1" in first_difference(torch.tensor([1.0]), torch.tensor([2.0]))
    half = torch.tensor([1.0, 2.0], dtype=torch.float16)
    assert first_difference(half + 1e-3, half, *TOLERANCE["float16"]) is None


def test_assert_same_fails_with_the_place():
    try:
        assert_same({"generated_text": "a b"}, {"generated_text": "a c"})
    except AssertionError as error:
        assert "output['generated_text']" in str(error)
    else:
        raise AssertionError("assert_same let a different string through")
