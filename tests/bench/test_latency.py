"""Batch-1 latency in the benchmark: each engine back to back, blocks taking turns."""

import time

from pipejit.bench.measure import Case, _latency


class _Engine:
    """Answers in 1 ms, or in 30 ms right after another engine ran (its caches cold)."""

    def __init__(self, name: str, log: list):
        self.name, self.log = name, log

    def __call__(self, item, **kwargs):
        switched = bool(self.log) and self.log[-1][0] != self.name
        self.log.append((self.name, item))
        time.sleep(0.03 if switched else 0.001)


def test_each_engine_answers_back_to_back_and_a_blocks_first_call_is_not_timed():
    log: list = []
    engines = {"a": _Engine("a", log), "b": _Engine("b", log)}
    case = Case(name="c", task="t", model="m", inputs=["x", "y", "z"])
    latency = _latency(case, engines, calls=4, device="cpu", rounds=2)
    assert set(latency) == {"a", "b"}
    assert all(latency[name]["p99"] < 25 for name in engines)  # no timed call after a switch
    blocks = [log[2 + i * 5 : 2 + (i + 1) * 5] for i in range(4)]  # after the two warm calls
    assert [{name for name, _ in block} for block in blocks] == [{"a"}, {"b"}, {"a"}, {"b"}]
    assert [item for _, item in blocks[0]][1:] == ["x", "y", "z", "x"]
    assert len(log) == 2 + 4 * 5
