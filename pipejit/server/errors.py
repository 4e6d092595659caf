"""Errors a route answers with: an HTTP status, a message that names the problem, a type.

Bodies follow text-embeddings-inference (``{"error": ..., "error_type": ...}``);
the OpenAI route wraps the same error as OpenAI does (``{"error": {"message": ...}}``).
``from_exception`` maps what the micro-batcher or the pipeline raised for one input.
"""

from __future__ import annotations

import asyncio

from pipejit.engine.serve import QueueFullError, ServerClosedError

# Seconds a client is told to wait before retrying an overloaded server.
RETRY_AFTER_S = 1


class ApiError(Exception):
    """A request that gets an error answer instead of a result."""

    def __init__(
        self, status: int, message: str, error_type: str, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.headers = headers or {}

    def tei_body(self) -> dict[str, str]:
        return {"error": self.message, "error_type": self.error_type}

    def openai_body(self) -> dict[str, dict]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": None,
                "code": self.status,
            }
        }


def invalid(message: str) -> ApiError:
    """A request whose fields have the wrong type or value (422, as TEI answers)."""
    return ApiError(422, message, "validation")


def too_large(message: str) -> ApiError:
    """Too many inputs, or an input too long (413, TEI's answer to both)."""
    return ApiError(413, message, "validation")


def empty(message: str) -> ApiError:
    return ApiError(400, message, "empty")


def overloaded(message: str) -> ApiError:
    return ApiError(503, message, "overloaded", {"Retry-After": str(RETRY_AFTER_S)})


def from_exception(error: BaseException, index: int | None = None) -> ApiError:
    """The answer for an input's own failure; ``index`` names the input of a list."""
    where = "" if index is None else f"input {index}: "
    if isinstance(error, ApiError):
        return error
    if isinstance(error, QueueFullError):
        return overloaded(f"the server is overloaded: {error}")
    if isinstance(error, ServerClosedError):
        return overloaded(f"the server is shutting down: {error}")
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return ApiError(504, f"{where}the request missed its deadline: {error}", "timeout")
    if isinstance(error, ValueError | TypeError):
        return invalid(f"{where}{error}")
    return ApiError(424, f"{where}inference failed: {type(error).__name__}: {error}", "backend")
