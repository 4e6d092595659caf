"""The contract every drawn call is held to.

- pipejit answers as ``transformers.pipeline`` does at batch 1, or raises a
  ValueError/TypeError that says what is wrong, and for a bad item of a list,
  names its index (a parameter error is the call's, and names no index);
- with ``errors="return"``, each bad item's error takes its place and the good
  items get the answers they get alone;
- afterwards, the same pipeline answers a good input exactly as before.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from hypothesis import given, settings
from PIL import Image

from tests.fuzz.specs import Spec
from tests.fuzz.strategies import Call, calls
from tests.parity import assert_same

# Messages of torch and numpy internals: never what a user should have to read.
INTERNAL = (
    "size of tensor",
    "mat1 and mat2",
    "index out of range",
    "Expected input",
    "Kernel size",
    "padded input size",
    "shape '[",
    "not enough values to unpack",
    "object has no attribute",
    "is not subscriptable",
    "'NoneType' object",
    "unsupported operand",
)


@dataclass
class Pair:
    """A task's two pipelines, its good inputs, and pipejit's answer to the first of them."""

    spec: Spec
    folder: str
    reference: Any
    ours: Any
    goods: list[Any]
    baseline: Any


def reference_input(spec: Spec, item: Any) -> Any:
    """What transformers is given for ``item``: audio files and bytes decoded to samples
    (transformers runs an ffmpeg binary for them, which test machines may lack)."""
    if spec.modality != "audio" or not isinstance(item, (bytes, str)):
        return item
    import soundfile

    try:
        samples, rate = soundfile.read(io.BytesIO(item) if isinstance(item, bytes) else item)
    except Exception:  # noqa: BLE001 - unreadable: transformers gets it as it is
        return item
    samples = samples.mean(axis=1) if samples.ndim == 2 else samples
    return {"raw": samples.astype(np.float32), "sampling_rate": rate}


def reference_answer(pair: Pair, inputs: Any, params: dict[str, Any]) -> Any:
    kwargs = {**pair.spec.kwargs, **params}
    if isinstance(inputs, list):
        inputs = [reference_input(pair.spec, item) for item in inputs]
    else:
        inputs = reference_input(pair.spec, inputs)
    call = pair.spec.reference_call
    if call is None:
        return pair.reference(inputs, **kwargs)
    if isinstance(inputs, list):
        return [call(pair.reference, item, **kwargs) for item in inputs]
    return call(pair.reference, inputs, **kwargs)


def check(pair: Pair, call: Call) -> None:
    """Hold one drawn call to the contract."""
    kwargs = {**pair.spec.kwargs, **call.params}
    try:
        got = pair.ours(call.inputs, **kwargs)
        if isinstance(call.inputs, list):
            got = list(got) if not isinstance(got, list | dict) else got
    except (ValueError, TypeError) as error:
        assert_clear(error, call)
    else:
        if not (isinstance(call.inputs, list) and not call.inputs):  # [] answers [] at once
            assert_same(normalize(got), normalize(expected_answer(pair, call)))
    if isinstance(call.inputs, list) and call.inputs and not call.bad_params:
        check_errors_returned(pair, call)
    assert_identical(pair.ours(pair.goods[0], **pair.spec.kwargs), pair.baseline)


def expected_answer(pair: Pair, call: Call) -> Any:
    """transformers' answer at batch 1; for a list that transformers cannot take whole
    (zero-shot-object-detection reads a list's paths as dicts), each item's own answer."""
    try:
        return reference_answer(pair, call.inputs, call.params)
    except (ValueError, TypeError):
        if not isinstance(call.inputs, list):
            raise
        return [reference_answer(pair, item, call.params) for item in call.inputs]


def assert_clear(error: Exception, call: Call) -> None:
    message = str(error)
    assert len(message) >= 12, f"{type(error).__name__} says too little: {message!r}"
    internal = [m for m in INTERNAL if m in message]
    assert not internal, f"an internal error reached the user: {message!r}"
    if call.bad_index is not None and not call.bad_params:
        match = re.match(r"input (\d+): ", message)
        assert match, f"a list's error names no input: {message!r}"
        assert int(match.group(1)) == call.bad_index, f"wrong input named: {message!r}"


def check_errors_returned(pair: Pair, call: Call) -> None:
    """errors="return": the bad item's error in its place; good items answered as alone."""
    kwargs = {**pair.spec.kwargs, **call.params}
    results = pair.ours(call.inputs, errors="return", **kwargs)
    results = results if len(call.inputs) > 1 or isinstance(results, list) else [results]
    assert len(results) == len(call.inputs)
    for index, (item, result) in enumerate(zip(call.inputs, results)):
        if isinstance(result, Exception):
            if call.bad_index is not None:  # else the whole list was drawn hostile
                assert index == call.bad_index, f"good input {index} failed: {result!r}"
            assert isinstance(result, (ValueError, TypeError)), repr(result)
            assert str(result).startswith(f"input {index}: "), str(result)
            continue
        # a list of two, so that no task unwraps it, answers each item as in any list
        alone = pair.ours([item, item], **kwargs)[0]
        assert_same(normalize(result), normalize(alone))


def normalize(value: Any) -> Any:
    """PIL images and arrays as tensors, so that ``assert_same`` compares them."""
    if isinstance(value, Image.Image):
        return {
            "mode": value.mode,
            "size": list(value.size),
            "pixels": torch.from_numpy(np.asarray(value).copy()),
        }
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(normalize(v) for v in value)
    return value


def assert_identical(actual: Any, expected: Any, path: str = "output") -> None:
    """Equal to the last bit: nested structure, strings, numbers, tensors, images."""
    actual, expected = normalize(actual), normalize(expected)
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor) and torch.equal(actual, expected), path
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and list(actual) == list(expected), path
        for key in expected:
            assert_identical(actual[key], expected[key], f"{path}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert type(actual) is type(expected) and len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_identical(a, e, f"{path}[{i}]")
    else:
        assert type(actual) is type(expected) and actual == expected, (
            f"{path}: {actual!r} != {expected!r}"
        )


def hold_to_contract(pair: Pair, hostile_files: Any) -> None:
    """Every drawn call on ``pair`` (its task's hostile inputs and parameters, mixed with
    good ones) meets the contract, within the task's example budget."""
    from tests.fuzz.conftest import examples

    @settings(max_examples=examples(pair.spec))
    @given(call=calls(pair.spec, hostile_files, pair.goods))
    def check_one(call):
        check(pair, call)

    check_one()
