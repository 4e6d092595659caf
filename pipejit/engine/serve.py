"""``MicroBatcher``: concurrent one-input calls coalesced into the engine's batches.

Callers on many threads (or asyncio tasks) each submit one input and get a
future. One worker thread takes what is queued (waiting at most ``max_wait_ms``
after the oldest request for more to arrive), groups requests by their
parameters, preprocesses each input on its own, runs every group through the
pipeline's length-sorted, bucketed forward, and resolves each future with its
own output. An input that fails fails only its future (see ``isolation``):
preprocessing and postprocessing are per input, and a failed batched forward
(an out-of-memory error included) is retried on halves of the batch until the
failing input runs alone.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, deque
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from pipejit.engine.isolation import run_each
from pipejit.engine.pipeline import ENGINE_CALL_OPTIONS

if TYPE_CHECKING:
    from pipejit.contract import Params
    from pipejit.engine.pipeline import Pipeline

log = logging.getLogger(__name__)

ON_FULL = ("raise", "block")
# How many recent requests the wait and latency percentiles of ``stats()`` cover.
STATS_WINDOW = 10_000


class QueueFullError(RuntimeError):
    """The micro-batcher's queue is full (``on_full="raise"``, or the block timed out)."""


class ServerClosedError(RuntimeError):
    """The micro-batcher is closed (or its worker stopped) and takes no more requests."""


@dataclass
class _Request:
    item: Any
    kwargs: dict[str, Any]
    params: Params
    key: str
    future: Future
    submitted: float
    deadline: float | None


class MicroBatcher:
    """Serve ``pipe`` to concurrent callers, one input per request, in shared batches.

    ``max_batch_size``: most requests taken per batch (default: the pipeline's);
    the pipeline's token budget then cuts them into bucketed model batches.
    ``max_wait_ms``: how long the oldest queued request waits for others to join.
    ``max_queue``: most requests queued; when full, ``submit`` raises
    ``QueueFullError`` (``on_full="raise"``) or blocks up to ``block_timeout_s``
    (``on_full="block"``; None waits as long as it takes).
    ``deadline_s``: default per-request deadline, in seconds after submission; a
    request still queued at its deadline fails with ``TimeoutError`` and never
    runs (one already running completes). Bound your own wait with
    ``future.result(timeout)``.

    While it serves, the worker thread is the only one that should call ``pipe``.
    """

    def __init__(
        self,
        pipe: Pipeline,
        *,
        max_batch_size: int | None = None,
        max_wait_ms: float = 5.0,
        max_queue: int = 1024,
        on_full: str = "raise",
        block_timeout_s: float | None = None,
        deadline_s: float | None = None,
    ):
        max_batch_size = pipe.max_batch_size if max_batch_size is None else max_batch_size
        _check_positive("max_batch_size", max_batch_size, int)
        _check_positive("max_queue", max_queue, int)
        if not isinstance(max_wait_ms, (int, float)) or max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be a number >= 0, got {max_wait_ms!r}")
        if on_full not in ON_FULL:
            raise ValueError(f"on_full must be one of {ON_FULL}, got {on_full!r}")
        if block_timeout_s is not None:
            _check_positive("block_timeout_s", block_timeout_s, (int, float))
        if deadline_s is not None:
            _check_positive("deadline_s", deadline_s, (int, float))
        self.pipe = pipe
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000
        self.max_queue = max_queue
        self.on_full = on_full
        self.block_timeout_s = block_timeout_s
        self.deadline_s = deadline_s
        self._queue: deque[_Request] = deque()
        self._lock = threading.Condition()
        self._closed = False
        self._stopped: BaseException | None = None
        self._counts: Counter[str] = Counter()
        self._batch_sizes: Counter[int] = Counter()
        self._waits: deque[float] = deque(maxlen=STATS_WINDOW)
        self._latencies: deque[float] = deque(maxlen=STATS_WINDOW)
        self._worker = threading.Thread(target=self._work, name="pipejit-microbatcher", daemon=True)
        self._worker.start()

    # ---- callers -------------------------------------------------------------------------

    def submit(self, item: Any, *, deadline_s: float | None = None, **params: Any) -> Future:
        """Queue one input with its task parameters; the future resolves to what
        ``pipe(item, **params)`` returns, or fails with that input's own error.

        Invalid parameters raise here, as does a full queue or a closed server.
        """
        return self._enqueue(item, params, deadline_s, block=self.on_full == "block")

    async def asubmit(self, item: Any, *, deadline_s: float | None = None, **params: Any) -> Any:
        """``submit`` for asyncio: await the output. A full queue with
        ``on_full="block"`` waits in a helper thread, never on the event loop."""
        block = self.on_full == "block"
        try:
            future = self._enqueue(item, params, deadline_s, block=False, count_rejection=not block)
        except QueueFullError:
            if not block:
                raise
            future = await asyncio.to_thread(self._enqueue, item, params, deadline_s, True)
        return await asyncio.wrap_future(future)

    def close(self, drain: bool = True, timeout: float | None = None) -> None:
        """Take no more requests; with ``drain`` run every queued one first, else fail
        them with ``ServerClosedError``. Waits up to ``timeout`` for the worker."""
        with self._lock:
            self._closed = True
            dropped = [] if drain else list(self._queue)
            if not drain:
                self._queue.clear()
            self._lock.notify_all()
        for request in dropped:
            self._fail(request, ServerClosedError("the server was closed before this request ran"))
        self._worker.join(timeout)

    def __enter__(self) -> MicroBatcher:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @property
    def serving(self) -> bool:
        """Whether it takes requests: not closed, and its worker thread is running."""
        return not self._closed and self._stopped is None and self._worker.is_alive()

    def stats(self) -> dict[str, Any]:
        """Queue depth, request counts, batch sizes formed, and the wait (submit to
        batch start) and latency (submit to result) percentiles, in milliseconds,
        over the last ``STATS_WINDOW`` requests."""
        with self._lock:
            sizes = dict(sorted(self._batch_sizes.items()))
            batches = sum(sizes.values())
            return {
                "queue_depth": len(self._queue),
                "max_queue": self.max_queue,
                "closed": self._closed,
                **{k: self._counts[k] for k in _COUNTS},
                "batches": batches,
                "batch_size_mean": sum(s * n for s, n in sizes.items()) / batches if batches else 0,
                "batch_sizes": sizes,
                "wait_ms": _percentiles(self._waits),
                "latency_ms": _percentiles(self._latencies),
            }

    def _enqueue(
        self,
        item: Any,
        kwargs: dict[str, Any],
        deadline_s: float | None,
        block: bool,
        count_rejection: bool = True,
    ) -> Future:
        for name in sorted(ENGINE_CALL_OPTIONS):
            if name in kwargs:
                raise TypeError(
                    f"the micro-batcher forms batches itself and takes no {name!r}; "
                    "set max_batch_size when starting the server"
                )
        if deadline_s is not None:
            _check_positive("deadline_s", deadline_s, (int, float))
        task = self.pipe.task
        params = task.parse_params({**self.pipe.task_defaults, **kwargs})
        now = time.monotonic()
        deadline_s = self.deadline_s if deadline_s is None else deadline_s
        request = _Request(
            item=item,
            kwargs=kwargs,
            params=params,
            key=repr(sorted(kwargs.items())),
            future=Future(),
            submitted=now,
            deadline=None if deadline_s is None else now + deadline_s,
        )
        give_up = None if self.block_timeout_s is None else now + self.block_timeout_s
        with self._lock:
            while True:
                self._check_open()
                if len(self._queue) < self.max_queue:
                    break
                left = None if give_up is None else give_up - time.monotonic()
                if not block or (left is not None and left <= 0):
                    self._counts["rejected"] += count_rejection
                    waited = "" if not block else f" after waiting {self.block_timeout_s} s"
                    raise QueueFullError(
                        f"the micro-batcher's queue is full ({self.max_queue} requests){waited}; "
                        "retry later, raise max_queue, or start it with on_full='block'"
                    )
                self._lock.wait(left)
            self._queue.append(request)
            self._counts["submitted"] += 1
            self._lock.notify_all()
        return request.future

    def _check_open(self) -> None:
        if self._stopped is not None:
            raise ServerClosedError(
                f"the micro-batcher's worker stopped on {type(self._stopped).__name__}: "
                f"{self._stopped}"
            ) from self._stopped
        if self._closed:
            raise ServerClosedError("the micro-batcher is closed and takes no more requests")

    # ---- worker --------------------------------------------------------------------------

    def _work(self) -> None:
        requests: list[_Request] = []
        try:
            while (requests := self._next_batch()) is not None:
                try:
                    self._run(requests)
                except Exception as error:  # noqa: BLE001 - a bug here must not stop serving
                    log.exception("pipejit micro-batcher: a batch failed outside any one input")
                    for request in requests:
                        self._fail(request, error)
                requests = []
        except BaseException as error:
            # The worker is going away (KeyboardInterrupt, SystemExit, a bug): log it,
            # leave no future pending, and make every later submit raise with the cause.
            log.exception("pipejit micro-batcher: the worker stopped")
            with self._lock:
                self._stopped = error
                queued = list(self._queue)
                self._queue.clear()
                self._lock.notify_all()
            stopped = ServerClosedError(f"the micro-batcher's worker stopped: {error!r}")
            for request in requests + queued:
                self._fail(request, stopped)

    def _next_batch(self) -> list[_Request] | None:
        """Wait for requests; None once closed and drained."""
        with self._lock:
            while not self._queue:
                if self._closed:
                    return None
                self._lock.wait()
            until = self._queue[0].submitted + self.max_wait_s
            while len(self._queue) < self.max_batch_size and not self._closed:
                left = until - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            take = min(len(self._queue), self.max_batch_size)
            requests = [self._queue.popleft() for _ in range(take)]
            self._lock.notify_all()  # room in the queue for blocked submitters
            return requests

    def _run(self, requests: list[_Request]) -> None:
        now = time.monotonic()
        live = []
        for request in requests:
            if not request.future.set_running_or_notify_cancel():
                self._count("cancelled")
            elif request.deadline is not None and now > request.deadline:
                late_ms = (now - request.deadline) * 1000
                error = TimeoutError(f"the deadline passed {late_ms:.1f} ms before the request ran")
                self._fail(request, error, "timed_out")
            else:
                live.append(request)
        if live:
            with self._lock:
                self._batch_sizes[len(live)] += 1
                self._waits.extend(now - r.submitted for r in live)
        groups: dict[str, list[_Request]] = {}
        for request in live:
            groups.setdefault(request.key, []).append(request)
        for group in groups.values():
            self._run_group(group)

    def _run_group(self, group: list[_Request]) -> None:
        """Requests of the same parameters run together; each failure lands on its
        own request's future."""
        task = self.pipe.task
        items = [request.item for request in group]
        outputs = run_each(self.pipe, items, group[0].params, partial(self._count, "splits"))
        for request, output in zip(group, outputs):
            if isinstance(output, Exception):
                self._fail(request, output)
                continue
            try:
                output = task.format_single(output, request.item, request.kwargs)
            except Exception as error:  # noqa: BLE001 - the input's own error, for its caller
                self._fail(request, error)
                continue
            self._resolve(request, output)

    def _resolve(self, request: _Request, output: Any) -> None:
        request.future.set_result(output)
        self._finish(request, "completed")

    def _fail(self, request: _Request, error: BaseException, count: str = "failed") -> None:
        try:
            request.future.set_exception(error)
        except InvalidStateError:  # the caller cancelled it while it was queued
            return
        self._finish(request, count)

    def _finish(self, request: _Request, count: str) -> None:
        with self._lock:
            self._counts[count] += 1
            self._latencies.append(time.monotonic() - request.submitted)

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1


_COUNTS = ("submitted", "completed", "failed", "timed_out", "cancelled", "rejected", "splits")


def _percentiles(seconds: deque[float]) -> dict[str, float]:
    if not seconds:
        return {}
    ordered = sorted(seconds)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": at(1.0)}


def _check_positive(name: str, value: Any, kinds: type | tuple[type, ...]) -> None:
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
