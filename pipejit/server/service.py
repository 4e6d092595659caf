"""The state a server's routes share, and ``run``: submit inputs, await them, or give up.

Every input of a request is one ``asubmit`` to the micro-batcher, so inputs of many
requests share batches. ``run`` waits for them on the event loop (no thread per
request) while watching the connection: a client that disconnects has its inputs
cancelled, and those still queued never run.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipejit.engine.serve import QueueFullError
from pipejit.server.errors import ApiError, from_exception

if TYPE_CHECKING:
    from starlette.requests import Request

    from pipejit.engine.pipeline import Pipeline
    from pipejit.engine.serve import MicroBatcher
    from pipejit.server.media import MediaDecoder
    from pipejit.server.texts import TextLimits

log = logging.getLogger(__name__)


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


@dataclass
class Limits:
    max_inputs_per_request: int
    max_input_length: int
    max_batch_tokens: int | None
    max_queue: int
    max_wait_ms: float
    deadline_ms: float
    payload_limit: int


@dataclass
class Service:
    task: str
    model_id: str
    dtype: str
    device: str
    pipe: Pipeline
    batcher: MicroBatcher
    limits: Limits
    texts: TextLimits | None
    media: MediaDecoder
    pooling: str | None = None
    api_key: str | None = None

    async def run(self, request: Request, items: list[Any], params: dict[str, Any]) -> list[Any]:
        """Each item's output in order; the first failed item's error as an ``ApiError``."""
        deadline_s = self.limits.deadline_ms / 1000
        tasks = [
            asyncio.create_task(self.batcher.asubmit(item, deadline_s=deadline_s, **params))
            for item in items
        ]
        gathered = asyncio.gather(*tasks, return_exceptions=True)
        watcher = asyncio.create_task(_disconnected(request))
        try:
            await asyncio.wait({gathered, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
        if not gathered.done():
            for task in tasks:
                task.cancel()  # cancels the micro-batcher's future: a queued input never runs
            await gathered  # collects the cancellations (return_exceptions)
            raise ClientGone
        results = gathered.result()
        failed = [(i, r) for i, r in enumerate(results) if isinstance(r, BaseException)]
        if failed:
            # an input the full queue refused makes the whole request an overload (503)
            index, error = next(
                ((i, r) for i, r in failed if isinstance(r, QueueFullError)), failed[0]
            )
            raise from_exception(error, index if len(items) > 1 else None)
        return results

    def pipeline_stats(self) -> dict[str, Any]:
        """``Pipeline.stats()`` read while the worker thread may be updating it."""
        for _ in range(3):
            try:
                return self.pipe.stats()
            except RuntimeError:  # a set or dict changed size while it was read
                continue
        return self.pipe.stats()

    def require_task(self, *names: str) -> None:
        if self.task not in names:
            raise ApiError(
                424,
                f"this route needs a {' or '.join(names)} model; this server runs {self.task}",
                "backend",
            )


async def _disconnected(request: Request) -> None:
    """Return once the client has gone (the body has been read, so the next ASGI
    message is ``http.disconnect``, sent when the connection closes)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
