"""ONNX Runtime as a third engine: what a CPU user would pick instead of pipejit.

The same model is exported as a demanding ONNX Runtime user (or optimum's
``ORTOptimizer``) would run it: its attention written as plain matmuls and a softmax
(transformers' ``eager`` attention, the same arithmetic as SDPA's), traced by
``torch.onnx``'s TorchScript exporter, then rewritten by ONNX Runtime's transformer
optimizer into its fused operators (``Attention``, ``SkipLayerNormalization``,
``BiasGelu``, ``EmbedLayerNormalization``). Until 2026-12-06 the bench ran the
dynamo exporter's graph of the SDPA model, which the optimizer cannot fuse attention
in (neither can it in the dynamo exporter's graph of the eager model): on a 2-core
AMD EPYC Zen 4 the fused graph ran all-MiniLM-L6-v2's batches 7-15% faster and one
sentence 10% faster (``fused_operators`` counts what the rewrite fused). ONNX Runtime's
CPU provider runs it, with thread pools that sleep between calls (spinning threads
would steal the cores of the engines interleaved with it). Two ways to call it:
- ``batch_size=1``: the plain loop a user writes, one text per run;
- ``batch_size>1``: the batches a pipejit CPU pipeline runs on the same texts
  (``plan_batches`` as the engine calls it: texts sorted by token count, at most
  ``batch_size`` a batch, a batch cut where a text would be padded by more than the
  task's ``max_padding`` of its length, each padded to its longest text). Until
  2026-12-06 they were cut every ``batch_size`` texts and padded to the next step of the
  length ladder: at batch 32 ONNX Runtime then ran more padding than pipejit did.
Tokenizing and post-processing are transformers' own (the reference pipeline's
tokenizer and ``postprocess``), so outputs are comparable item by item and only
the forward differs. Text tasks whose outputs are per-item model outputs only.

``ExportJob`` exports in a child process, so a benchmark can compile pipejit's graph
for batches while the export runs (about 12 s a model on a 2-core CPU).
"""

from __future__ import annotations

import copy
import subprocess
import sys
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers.utils import ModelOutput

from pipejit.bench.ceiling import quiet_session_options
from pipejit.compat import sanitize_parameters
from pipejit.contract import Task
from pipejit.engine.scheduler import plan_batches

# task -> the model output the reference pipeline post-processes, and whether it has a
# row per token (sliced to the item's real tokens) or one row per item
TASK_OUTPUTS = {"text-classification": ("logits", False), "feature-extraction": ("features", True)}
MODEL_FILE = "model.onnx"
FUSED_OPERATORS = (
    "Attention",
    "SkipLayerNormalization",
    "BiasGelu",
    "EmbedLayerNormalization",
)


def available() -> bool:
    """Whether onnx and onnxruntime are installed (the ``bench`` extra)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class _FirstOutput(torch.nn.Module):
    """The model with named tensor inputs and its first output, for export."""

    def __init__(self, model: torch.nn.Module, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, tensors)), return_dict=True)[0]


class OnnxRuntimeEngine:
    """``engine(texts, batch_size=..., **call_kwargs)`` like a pipeline, run by ONNX Runtime."""

    def __init__(self, reference, folder: Path):
        import onnxruntime

        if reference.task not in TASK_OUTPUTS:
            raise ValueError(
                f"the ONNX Runtime engine runs {sorted(TASK_OUTPUTS)}, not {reference.task}"
            )
        self.reference = reference
        self.tokenizer = reference.tokenizer
        self.output, self.per_token = TASK_OUTPUTS[reference.task]
        self.names = input_names(reference)
        path = Path(folder) / MODEL_FILE
        if not path.exists():
            export(reference.model, self.names, path)
        self.session = onnxruntime.InferenceSession(
            str(path), quiet_session_options(), providers=["CPUExecutionProvider"]
        )

    def __call__(self, inputs: str | list[str], batch_size: int = 1, **kwargs: Any) -> Any:
        single = isinstance(inputs, str)
        texts = [inputs] if single else list(inputs)
        tokenize, _, post = sanitize_parameters(self.reference, **kwargs)
        if batch_size <= 1:
            outputs = [self._run_one(text, tokenize, post) for text in texts]
        else:
            outputs = self._run_bucketed(texts, batch_size, tokenize, post)
        return outputs[0] if single else outputs

    def _run_one(self, text: str, tokenize: dict, post: dict) -> Any:
        encoded = self.tokenizer(text, return_tensors="np", **tokenize)
        feed = {name: encoded[name].astype(np.int64) for name in self.names}
        (result,) = self.session.run(None, feed)
        return self._postprocess(result, post)

    def _run_bucketed(self, texts: list[str], batch_size: int, tokenize: dict, post: dict):
        encoded = self.tokenizer(texts, **tokenize)
        lengths = [len(ids) for ids in encoded["input_ids"]]
        pad = {"input_ids": self.tokenizer.pad_token_id or 0}
        outputs: list[Any] = [None] * len(texts)
        batches = plan_batches(
            lengths,
            max_batch_size=batch_size,
            token_budget=batch_size * max(lengths, default=1),
            length_ladder=sorted(set(lengths)),
            batch_ladder=range(1, batch_size + 1),
            max_padding=Task.max_padding,
        )
        for batch in batches:
            rows, width = batch.positions, batch.bucket_length
            feed = {}
            for name in self.names:
                column = np.full((len(rows), width), pad.get(name, 0), dtype=np.int64)
                for r, i in enumerate(rows):
                    column[r, : lengths[i]] = encoded[name][i]
                feed[name] = column
            (result,) = self.session.run(None, feed)
            for r, i in enumerate(rows):
                row = result[r : r + 1, : lengths[i]] if self.per_token else result[r : r + 1]
                outputs[i] = self._postprocess(row, post)
        return outputs

    def _postprocess(self, row: np.ndarray, post: dict) -> Any:
        return self.reference.postprocess(
            ModelOutput(**{self.output: torch.from_numpy(np.ascontiguousarray(row))}), **post
        )


def export(model: torch.nn.Module, names: list[str], path: Path) -> None:
    """``model``'s first output, with dynamic batch and length, as ONNX Runtime's fused
    transformer graph (see the module's docstring)."""
    from onnxruntime.transformers.optimizer import optimize_model

    path.parent.mkdir(parents=True, exist_ok=True)
    traced = path.with_name(f"traced-{path.name}")
    _trace(_with_eager_attention(model), names, traced)
    config = model.config
    fused = optimize_model(
        str(traced),
        model_type="bert",  # the rewrite optimum gives every BERT-like encoder
        num_heads=getattr(config, "num_attention_heads", 0),
        hidden_size=getattr(config, "hidden_size", 0),
    )
    fused.save_model_to_file(str(path))
    traced.unlink()


def _with_eager_attention(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` whose attention is transformers' matmul-and-softmax one."""
    eager = copy.deepcopy(model)
    if hasattr(eager, "set_attn_implementation"):
        eager.set_attn_implementation("eager")
    return eager


def _trace(model: torch.nn.Module, names: list[str], path: Path) -> None:
    example = tuple(torch.ones(2, 16, dtype=torch.long) for _ in names)
    dynamic = {name: {0: "batch", 1: "length"} for name in [*names, "output"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python branches it fixes
        torch.onnx.export(
            _FirstOutput(model, names).eval(),
            example,
            str(path),
            input_names=names,
            output_names=["output"],
            dynamic_axes=dynamic,
            dynamo=False,
        )


def fused_operators(path: Path) -> dict[str, int]:
    """How many of each of ONNX Runtime's fused transformer operators the graph holds."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return dict(Counter(node.op_type for node in graph.node if node.op_type in FUSED_OPERATORS))


def input_names(reference) -> list[str]:
    """The tokenizer's outputs the reference pipeline's model takes, in the tokenizer's order."""
    import inspect

    takes = inspect.signature(reference.model.forward).parameters
    return [name for name in reference.tokenizer.model_input_names if name in takes]


class ExportJob:
    """``task``'s model in the ``model`` folder exported to ``folder`` by a child process.

    ``wait()`` returns ``folder`` once the export is there (an ``OnnxRuntimeEngine`` on
    it loads the file rather than exporting again), or raises with the child's output;
    once the child is done it answers at once, as often as asked."""

    def __init__(self, task: str, model: str, folder: Path):
        self.folder = Path(folder)
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", __name__, task, str(model), str(self.folder / MODEL_FILE)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait(self) -> Path:
        code = self.process.wait()
        if code != 0:
            self.log.seek(0)
            output = self.log.read().decode(errors="replace")
            raise RuntimeError(f"the ONNX export failed (exit {code}):\n{output[-4000:]}")
        return self.folder


def _export_in_this_process(task: str, model: str, path: str) -> None:
    import transformers

    torch.set_num_threads(1)  # the other core is the parent's, compiling
    reference = transformers.pipeline(task, model=model)
    export(reference.model, input_names(reference), Path(path))


if __name__ == "__main__":
    _export_in_this_process(*sys.argv[1:4])
