"""The bucket ladders are pure functions."""

import pytest

from pipejit.engine.shapes import DEFAULT_LENGTH_LADDER, make_ladder, round_down, round_up


def test_make_ladder_sorts_dedupes_and_caps():
    assert make_ladder([64, 16, 16, 32], cap=48) == (16, 32, 48)
    assert make_ladder(DEFAULT_LENGTH_LADDER, cap=128)[-1] == 128
    assert make_ladder([8, 16], cap=None) == (8, 16)
    with pytest.raises(ValueError, match="positive step"):
        make_ladder([0, -1])


@pytest.mark.parametrize(("value", "expected"), [(1, 16), (16, 16), (17, 32), (64, 64), (65, 65)])
def test_round_up(value, expected):
    assert round_up(value, (16, 32, 64)) == expected


@pytest.mark.parametrize(("value", "expected"), [(1, 1), (3, 2), (7, 4), (8, 8), (100, 8)])
def test_round_down(value, expected):
    assert round_down(value, (1, 2, 4, 8)) == expected


def test_round_up_rejects_empty_sizes():
    with pytest.raises(ValueError, match="below 1"):
        round_up(0, (16,))
