"""Reading a JSON request body field by field, with errors that name the field.

Routes parse bodies here rather than through pydantic models, so that every bad
body gets the server's own error shape and a message a client can act on.
"""

from __future__ import annotations

import json
from typing import Any

from pipejit.server.errors import ApiError, empty, invalid, too_large

MISSING = object()


async def read_body(request: Any, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(f"the request body is {declared} bytes, more than the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(f"the request body is more than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object; malformed JSON is a 400, another JSON value a 422."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, f"the request body is not valid JSON: {error}", "validation") from error
    if not isinstance(body, dict):
        raise invalid(f"the request body must be a JSON object, got {_kind(body)}")
    return body


def get_bool(body: dict[str, Any], name: str, default: bool | None) -> bool | None:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid(f"{name} must be true or false, got {_kind(value)}")
    return value


def get_str(body: dict[str, Any], name: str, default: Any = MISSING) -> Any:
    value = body.get(name, default)
    if value is MISSING:
        raise invalid(f"the request has no {name!r} field")
    if value is not default and not isinstance(value, str):
        raise invalid(f"{name} must be a string, got {_kind(value)}")
    return value


def get_choice(body: dict[str, Any], name: str, choices: tuple[str, ...], default: str) -> str:
    """One of ``choices``, matched without regard to case (TEI writes "Right", docs "right")."""
    value = get_str(body, name, default)
    if value is None:
        return default
    for choice in choices:
        if value.lower() == choice.lower():
            return choice
    raise invalid(f"{name} must be one of {list(choices)}, got {value!r}")


def get_texts(body: dict[str, Any], name: str, max_inputs: int) -> tuple[list[str], bool]:
    """A string or a non-empty list of strings: (the texts, whether one string was sent)."""
    if name not in body:
        raise invalid(f"the request has no {name!r} field")
    value = body[name]
    if isinstance(value, str):
        return [value], True
    if not isinstance(value, list):
        raise invalid(f"{name} must be a string or a list of strings, got {_kind(value)}")
    check_count(name, len(value), max_inputs)
    for index, text in enumerate(value):
        if not isinstance(text, str):
            raise invalid(f"{name}[{index}] must be a string, got {_kind(text)}")
    return value, False


def check_count(name: str, count: int, max_inputs: int) -> None:
    if count == 0:
        raise empty(f"{name} cannot be empty")
    if count > max_inputs:
        raise too_large(f"batch size {count} > maximum allowed batch size {max_inputs}")


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)
