"""The contract between the engine and the tasks: the one module both of them import.

A task says what runs; the engine decides how. Two kinds of task:

- ``ForwardTask``: one forward of ``forward_module`` per batch, then ``reduce``, a
  tensor-only step on the device (no host sync, no Python state). Tensors that a
  call needs besides its items (label embeddings, fill-mask targets) come from
  ``call_tensors`` and reach ``reduce`` as explicit inputs, which the engine holds
  for as long as a captured CUDA graph may read them.
- ``StepTask``: several forwards per batch, or a decoding loop. The task declares
  its modules (``modules()``) and drives them through the ``Steps`` the engine
  hands to ``run``: the engine compiles, buckets, fills, counts and loops them.

The engine imports no task and no task imports the engine; ``pipejit.factory``
and ``pipejit.registry`` sit above both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import torch
from transformers import Pipeline as ReferencePipeline

Tensors = dict[str, torch.Tensor]
# One model item's reduced values on the host: numpy arrays from tensors, or (from a
# step task that finishes its rows on the host) any Python objects.
Row = dict[str, Any]
# next tokens from (float32 logits [rows, vocab], tokens so far [rows, n], -1 = none)
ChooseToken = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# which rows must stop, from the tokens so far [rows, n] (pad ids where none)
StopCheck = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Features:
    """One model item: its unbatched tensors, and what the task keeps beside them.

    For a task that pads (text, audio), every tensor's first axis is the item's
    length, padded to the bucket in a batch. ``group`` keeps apart items that can
    never share a batch (images of different processed sizes); ``size`` states
    the item's cost in length units when its tensors have no length axis.
    ``whole`` names the tensors of a padded item that have no length axis (a
    prompt's image beside its tokens): they are stacked as they are, never padded.
    """

    tensors: dict[str, torch.Tensor]
    context: dict[str, Any] = field(default_factory=dict)
    group: Hashable = None
    size: int | None = None
    whole: frozenset[str] = frozenset()

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


@dataclass(frozen=True)
class Module:
    """A module a task declares for the engine to run.

    ``dynamic_dims``: the input axes whose size varies between batches (batch and
    length for padded text). ``compile_devices``: where ``compile=True`` compiles it
    (a module whose compiled form gains nothing, or changes results, on one device
    type runs eager there). ``compile=False``: always eager (shapes that vary too
    much to compile, such as a prompt decoder fed a varying number of points).
    """

    module: torch.nn.Module
    dynamic_dims: tuple[int, ...] = (0, 1)
    compile_devices: tuple[str, ...] = ("cpu", "cuda")
    compile: bool = True


@dataclass
class Decoded:
    """New tokens per row ([rows, steps], pad after a row finished) and how many each made."""

    tokens: torch.Tensor
    counts: torch.Tensor


class Steps(Protocol):
    """What the engine offers a ``StepTask``'s ``run``: its declared modules, run."""

    def forward(self, name: str, inputs: Mapping[str, torch.Tensor]) -> Any:
        """Module ``name`` on a batch: compiled or eager, counted, under the precision."""

    def padded_length(self, name: str, length: int) -> int:
        """The length a batch of module ``name`` whose longest row has ``length``
        positions is padded to: a bucket when it compiles per shape, else ``length``."""

    def decode(
        self,
        name: str,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        *,
        max_new_tokens: int,
        choose: ChooseToken,
        eos_ids: torch.Tensor,
        pad_id: int,
        stop: StopCheck | None = None,
        budgets: torch.Tensor | None = None,
        prefill_kwargs: Mapping[str, torch.Tensor] | None = None,
    ) -> Decoded:
        """Greedy or sampled decoding of causal LM ``name`` on a left-padded batch:
        a prefill, then the engine's static-cache one-token step."""

    def generate(
        self,
        name: str,
        inputs: Mapping[str, torch.Tensor],
        options: dict[str, Any],
        *,
        static: bool,
    ) -> Any:
        """``generate()`` of encoder-decoder ``name`` (Whisper), whose rules it keeps.
        ``static``: the call may use the engine's compiled static-cache step; its
        batch may then be filled with extra rows, which the caller drops."""


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
    # Whether a batch's step can be recorded in a CUDA graph (tensor work only).
    capturable: ClassVar[bool] = False
    # Whether the engine may preprocess a stream's next inputs on a worker thread while
    # earlier ones run and are post-processed: preprocessing shares nothing with those
    # (a fast tokenizer must not be called from two threads at once).
    prepares_ahead: ClassVar[bool] = False

    @classmethod
    def serves(cls, model: torch.nn.Module) -> bool:
        """Whether this class runs ``model`` (when several classes share a task name)."""
        return True

    def __init__(self, reference: ReferencePipeline):
        self.reference = reference
        self.model = reference.model
        self.tokenizer = reference.tokenizer
        self.config = reference.model.config
        # False when the caller handed in the model object (set by the factory)
        self.owns_model = True

    def prepare_model(self) -> None:  # noqa: B027 - a hook: nothing unless a task overrides it
        """Change the model for speed before its first forward, every answer kept the
        same; called only where the pipeline loaded the model itself (``owns_model``), so a
        caller's own model object keeps what its own calls see. By default, nothing."""

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

    @abstractmethod
    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        """Validate the call's task parameters; unknown names are a TypeError."""

    @abstractmethod
    def preprocess(self, item: Any, params: Params) -> list[Features]:
        """One input to its model items (usually one; chunked tasks give several)."""

    def preprocess_many(
        self, items: list[Any], params: Params
    ) -> list[list[Features] | ValueError | TypeError]:
        """``preprocess`` of a window's inputs, in order, up to the first bad one, whose
        ValueError or TypeError ends the list (the engine names the input). Tasks that
        prepare many inputs faster at once (one tokenizer call for many texts) override it.
        """
        prepared: list[list[Features] | ValueError | TypeError] = []
        for item in items:
            try:
                prepared.append(self.preprocess(item, params))
            except (ValueError, TypeError) as error:
                prepared.append(error)
                break
        return prepared

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


class ForwardTask(Task):
    """A task whose batch is one forward of ``forward_module`` and a tensor-only ``reduce``."""

    capturable: ClassVar[bool] = True

    @property
    def forward_module(self) -> torch.nn.Module:
        """The module the engine compiles and calls on each batch: the model, or the
        part of it that runs per batch (an image tower, when text is encoded once)."""
        return self.model

    def model_kwargs(self) -> dict[str, Any]:
        """Constant keyword arguments for every forward call."""
        return {}

    def call_tensors(self, params: Params) -> Tensors:
        """Tensors one call needs besides its items (label embeddings, target ids), on
        the model's device; the engine computes them once per call, under its precision."""
        return {}

    def forward_inputs(self, batch: Tensors, call: Tensors) -> Tensors:
        """What the forward module takes, from the batch and the call tensors."""
        return batch

    @abstractmethod
    def reduce(self, outputs: Any, inputs: Tensors, params: Params) -> Tensors:
        """On the device, a batch of model outputs to small per-row tensors. ``inputs``
        holds the batch and the call tensors. Tensor work only: no host sync, no
        Python state, no tensor read from anywhere but ``outputs``, ``inputs`` and
        the model's own parameters."""


class StepTask(Task):
    """A task that drives several forwards per batch, or a decoding loop, through ``Steps``."""

    @abstractmethod
    def modules(self) -> dict[str, Module]:
        """The modules ``run`` calls by name; the engine builds one runner for each. The
        first is the one each batch enters: the engine counts batches and tokens on it."""

    @abstractmethod
    def run(self, steps: Steps, inputs: Tensors, params: Params) -> Tensors | list[Row]:
        """One batch to its per-row tensors (rows on the first axis), or to one host
        row per item where the results are not tensors (run-length encoded masks)."""
