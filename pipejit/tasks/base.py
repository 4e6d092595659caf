"""The task contract: what a task declares and the engine runs.

A task turns one user input into model items (``Features``), reduces a batch of
model outputs on the device to the small tensors it needs, and formats one
input's rows exactly as ``transformers.pipeline`` would. It never pads, sorts,
compiles or moves batches: the engine does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from transformers import Pipeline as ReferencePipeline

if TYPE_CHECKING:
    from pipejit.engine.runner import Runner


@dataclass
class Features:
    """One model item: its unbatched tensors, and what the task keeps beside them.

    For a task that pads (text, audio), every tensor's first axis is the item's
    length, padded to the bucket in a batch. ``group`` keeps apart items that can
    never share a batch (images of different processed sizes); ``size`` states
    the item's cost in length units when its tensors have no length axis.
    """

    tensors: dict[str, torch.Tensor]
    context: dict[str, Any] = field(default_factory=dict)
    group: Hashable = None
    size: int | None = None

    @property
    def length(self) -> int:
        if self.size is not None:
            return self.size
        return int(next(iter(self.tensors.values())).shape[0])


@dataclass
class Params:
    """A call's task parameters, split by the step that reads them."""

    preprocess: dict[str, Any] = field(default_factory=dict)
    postprocess: dict[str, Any] = field(default_factory=dict)


Row = dict[str, np.ndarray]


class Task(ABC):
    """One pipeline task. ``reference`` is the transformers pipeline built on the
    same model and tokenizer: its public helpers are reused where they define the
    output (parameter parsing, word aggregation), never its batching or forward."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    truncation_hint: ClassVar[str] = "pass truncation=True to cut it to the model's maximum"
    # Whether items are right-padded along their first axis to a length bucket;
    # when False they are stacked as they are, batched only with their own group.
    pads: ClassVar[bool] = True
    # Which end padding goes to: "left" for decoder-only models that generate.
    padding_side: ClassVar[str] = "right"
    # How far (a share of the bucket length) an item may be padded to join a longer
    # batch: generation pads prompts freely, as decoding, not the prompt, costs.
    max_padding: ClassVar[float] = 0.125
    # What an item's length counts, for errors, and how many of them cost as much
    # as one token of the token budget (audio: samples per model frame).
    length_unit: ClassVar[str] = "tokens"
    units_per_token: ClassVar[int] = 1
    # Whether ``run`` keeps fixed shapes without reading the device on the host, so
    # that a CUDA graph may capture and replay it (False: the engine never tries).
    graph_safe: ClassVar[bool] = True

    @classmethod
    def serves(cls, model: torch.nn.Module) -> bool:
        """Whether this class runs ``model`` (when several classes share a task name)."""
        return True

    def __init__(self, reference: ReferencePipeline):
        self.reference = reference
        self.model = reference.model
        self.tokenizer = reference.tokenizer
        self.config = reference.model.config

    @property
    def max_length(self) -> int:
        """The longest item the model takes, in tokens."""
        limits = [
            getattr(self.config, "max_position_embeddings", None),
            getattr(self.tokenizer, "model_max_length", None),
        ]
        usable = [int(v) for v in limits if isinstance(v, int) and 0 < v < 1_000_000]
        return min(usable) if usable else 512

    @property
    def pad_values(self) -> dict[str, int]:
        pad_id = self.tokenizer.pad_token_id
        return {"input_ids": 0 if pad_id is None else int(pad_id)}

    def dummy_features(self, length: int) -> Features:
        """A model item of ``length`` tokens, for compiling a bucket ahead of traffic."""
        filler = self.tokenizer.unk_token_id or 0
        tensors = {"input_ids": torch.full((length,), filler, dtype=torch.long)}
        for name in self.tokenizer.model_input_names:
            if name != "input_ids":
                value = 1 if name == "attention_mask" else 0
                tensors[name] = torch.full((length,), value, dtype=torch.long)
        return Features(tensors)

    @property
    def length_ladder(self) -> tuple[int, ...] | None:
        """The task's own length buckets (audio counts samples), or None for the engine's."""
        return None

    @property
    def forward_module(self) -> torch.nn.Module:
        """The module the runner compiles and calls on each batch: the model, or the
        part of it that runs per batch (an image tower, when text is encoded once)."""
        return self.model

    def model_kwargs(self) -> dict[str, Any]:
        """Constant keyword arguments for every forward call."""
        return {}

    def run(
        self, runner: Runner, inputs: dict[str, torch.Tensor], params: Params
    ) -> dict[str, torch.Tensor]:
        """One padded batch to its reduced per-row tensors: one forward, then ``reduce``.
        Tasks that run more than one forward per batch (decoding loops) override it."""
        return self.reduce(runner(inputs), inputs, params)

    @abstractmethod
    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        """Validate the call's task parameters; unknown names are a TypeError."""

    @abstractmethod
    def preprocess(self, item: Any, params: Params) -> list[Features]:
        """One input to its model items (usually one; chunked tasks give several)."""

    @abstractmethod
    def reduce(
        self, outputs: Any, inputs: dict[str, torch.Tensor], params: Params
    ) -> dict[str, torch.Tensor]:
        """On the device, a batch of model outputs to small per-row tensors."""

    @abstractmethod
    def postprocess(
        self, item: Any, features: list[Features], rows: list[Row], params: Params
    ) -> Any:
        """One input's rows, on the host, to the transformers output."""

    def is_single(self, inputs: Any) -> bool:
        """Whether a call's input is one item (else a list, or a stream)."""
        return isinstance(inputs, str)

    def normalize_call(self, inputs: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
        """Fold positional arguments into ``kwargs`` where the task allows them."""
        if args:
            raise TypeError(
                f"{self.name} takes one positional argument (the inputs), got {1 + len(args)}"
            )
        return inputs

    def format_single(self, output: Any, inputs: Any, call_kwargs: dict[str, Any]) -> Any:
        """The return value for a single input."""
        return output

    def format_list(self, outputs: list[Any], inputs: list, call_kwargs: dict[str, Any]) -> Any:
        """The return value for a list input."""
        return outputs


def reject_unknown(task: str, kwargs: dict[str, Any], allowed: set[str]) -> None:
    """A TypeError naming the parameters ``task`` does not take, and those it does."""
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise TypeError(
            f"{task} got unexpected parameter(s) {unknown}; it accepts {sorted(allowed)}"
        )


def encode(tokenizer, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
    """Tokenize one text (or pair) to unpadded 1-D int64 tensors."""
    encoded = tokenizer(*args, **kwargs)
    return {k: torch.tensor(v, dtype=torch.long) for k, v in encoded.items()}
