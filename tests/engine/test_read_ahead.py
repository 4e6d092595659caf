"""Sort windows prepared one ahead on a worker thread: order, overlap, errors in their turn."""

import threading
import time

import pytest

from pipejit.engine.read_ahead import prepared_windows
from pipejit.engine.scheduler import windows
from tests.models import sentences
from tests.parity import assert_same

WORKER = "pipejit-prepare"


def indices_and_thread(window, first):
    return [first + i for i, _ in enumerate(window)], threading.current_thread().name


@pytest.mark.parametrize("ahead", [False, True])
def test_every_window_in_order_with_its_first_index(ahead):
    got = list(prepared_windows(windows(range(10), 4), indices_and_thread, ahead))
    assert [(first, window) for first, window, _ in got] == [
        (0, [0, 1, 2, 3]),
        (4, [4, 5, 6, 7]),
        (8, [8, 9]),
    ]
    assert [indices for _, _, (indices, _) in got] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    threads = {name for _, _, (_, name) in got}
    assert threads == ({WORKER + "_0"} if ahead else {threading.current_thread().name})


def test_the_next_window_is_prepared_while_the_caller_works_on_this_one():
    started = threading.Event()

    def prepare(window, first):
        if first == 3:
            started.set()
        return window

    stream = prepared_windows(windows(range(6), 3), prepare, ahead=True)
    first, window, _ = next(stream)
    # the caller is still on the first window: the second one's preparation has begun
    assert first == 0 and started.wait(timeout=10)
    assert [w for _, w, _ in stream] == [[3, 4, 5]]


def test_a_windows_error_is_raised_after_the_windows_before_it():
    def prepare(window, first):
        if first == 4:
            raise ValueError("input 5: bad")
        return window

    stream = prepared_windows(windows(range(12), 2), prepare, ahead=True)
    assert [w for _, w, _ in (next(stream), next(stream))] == [[0, 1], [2, 3]]
    with pytest.raises(ValueError, match="input 5: bad"):
        next(stream)


def test_the_iterators_own_error_waits_for_the_windows_before_it():
    def items():
        yield from range(4)
        raise RuntimeError("the source broke")

    stream = prepared_windows(windows(items(), 2), indices_and_thread, ahead=True)
    assert [next(stream)[1], next(stream)[1]] == [[0, 1], [2, 3]]
    with pytest.raises(RuntimeError, match="the source broke"):
        next(stream)


def test_a_stream_left_early_lets_its_worker_go():
    stream = prepared_windows(windows(range(100), 5), indices_and_thread, ahead=True)
    next(stream)
    stream.close()
    deadline = time.monotonic() + 10
    while any(t.name.startswith(WORKER) for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the worker thread outlived its stream"
        time.sleep(0.01)


def test_a_pipeline_preparing_ahead_answers_as_transformers(pipelines, monkeypatch):
    """The GPU's read-ahead forced on a CPU: texts tokenized on the worker, the same
    answers in the same order, and a bad input's error numbered in its window's turn."""
    ref, pj = pipelines("text-classification", sort_window=4)
    assert pj.task.prepares_ahead and not pj._prepares_ahead()
    monkeypatch.setattr(pj, "_prepares_ahead", lambda: True)
    threads = []
    preprocess_many = pj.task.preprocess_many

    def spy(items, params):
        threads.append(threading.current_thread().name)
        return preprocess_many(items, params)

    monkeypatch.setattr(pj.task, "preprocess_many", spy)
    texts = sentences(10, seed=4)
    assert_same(list(pj(iter(texts))), ref(texts))
    assert len(threads) == 3 and all(name.startswith(WORKER) for name in threads)
    stream = pj(iter([*texts[:9], 7]))
    assert len([next(stream) for _ in range(8)]) == 8
    with pytest.raises(ValueError, match="input 9: "):
        list(stream)
