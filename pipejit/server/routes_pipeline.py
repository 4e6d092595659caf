"""``POST /pipeline``: any task, ``{"inputs": ..., "parameters": {...}}`` as in the Hugging
Face inference API. One input answers what ``pipe(input, **parameters)`` returns; a list
of inputs answers the list of each input's answer. Media inputs go through ``media``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from pipejit.server.errors import invalid
from pipejit.server.fields import check_count
from pipejit.server.jsonable import to_json
from pipejit.server.service import Service


async def run_pipeline(service: Service, request: Request, body: dict[str, Any]) -> Any:
    if "inputs" not in body:
        raise invalid("the request has no 'inputs' field")
    inputs = body["inputs"]
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise invalid("parameters must be an object of the task's parameters")
    single = not isinstance(inputs, list) or service.pipe.task.is_single(inputs)
    items = [inputs] if single else inputs
    if not single:
        check_count("inputs", len(items), service.limits.max_inputs_per_request)
    items = [
        service.media.decode(item, "inputs" if single else f"inputs[{index}]")
        for index, item in enumerate(items)
    ]
    outputs = await service.run(request, items, parameters)
    return to_json(outputs[0] if single else outputs)
