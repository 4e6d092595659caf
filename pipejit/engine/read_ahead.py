"""A stream's sort windows, each prepared (preprocessed) before its turn, optionally one ahead.

On a GPU the host mostly waits while a window's batches run; preparing the next window on a
worker thread meanwhile (tokenizing: a fast tokenizer releases the interpreter lock while it
encodes) takes its time off the stream's. The caller's iterator is still read on the caller's
thread, one window ahead, and every error keeps its place: a window's preparation error, or
the iterator's own, is raised only after every earlier window has been handed out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
Prepared = TypeVar("Prepared")


def prepared_windows(
    windows: Iterator[list[T]],
    prepare: Callable[[list[T], int], Prepared],
    ahead: bool,
) -> Iterator[tuple[int, list[T], Prepared]]:
    """``(first_index, window, prepare(window, first_index))`` for each window in order.

    With ``ahead``, the next window is read and its ``prepare`` started on a worker thread
    before this one is handed out, so it runs while the caller works on this one.
    """
    if not ahead:
        first = 0
        for window in windows:
            yield first, window, prepare(window, first)
            first += len(window)
        return
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pipejit-prepare")
    try:
        yield from _one_ahead(windows, prepare, worker)
    finally:
        worker.shutdown(wait=False, cancel_futures=True)


def _one_ahead(
    windows: Iterator[list[T]], prepare: Callable[[list[T], int], Any], worker: ThreadPoolExecutor
) -> Iterator[tuple[int, list[T], Any]]:
    first = 0
    window, failure = _next(windows)
    pending: Future | None = worker.submit(prepare, window, first) if window else None
    while window is not None and pending is not None:
        upcoming, failure = _next(windows)
        prepared = pending.result()  # this window's own error raises here, in its turn
        following = first + len(window)
        pending = worker.submit(prepare, upcoming, following) if upcoming else None
        yield first, window, prepared
        first, window = following, upcoming
    if failure is not None:
        raise failure


def _next(windows: Iterator[list[T]]) -> tuple[list[T] | None, Exception | None]:
    """The next window, or None at the end; the iterator's error is kept for its turn."""
    try:
        return next(windows, None), None
    except Exception as error:  # noqa: BLE001 - the caller's iterator failed: raised in order
        return None, error
