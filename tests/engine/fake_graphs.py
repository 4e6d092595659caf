"""A CPU stand-in for CUDA graph capture, and pipelines whose graph runner uses it.

``ReplayCapture`` keeps a graph's contract: the same static input and output
tensors for every replay, refilled by re-running the step on the static inputs.
"""

import torch

import pipejit
from pipejit.engine.graphs import GraphRunner


class ReplayCapture:
    """A CPU stand-in for CUDA graph capture, with the same buffer semantics."""

    def __init__(self, fail=None):
        self.warmups = 0
        self.recorded: list[tuple[int, ...]] = []
        self.fail = fail  # fail(first output's shape) -> an error to raise while recording

    def warmup(self, step):
        self.warmups += 1
        step()

    def record(self, step):
        outputs = step()
        shape = tuple(next(iter(outputs.values())).shape)
        if self.fail is not None and (error := self.fail(shape)) is not None:
            raise error
        outputs = {k: v.clone() for k, v in outputs.items()}
        self.recorded.append(shape)

        def replay():
            with torch.inference_mode():  # the outputs are inference tensors, as captured
                for name, value in step().items():
                    outputs[name].copy_(value)

        return replay, outputs


def graphed(reference, capture=None, **options):
    """An eager pipejit pipeline whose graph runner records with ``capture``."""
    engine = {k: options.pop(k) for k in ("length_buckets", "token_budget") if k in options}
    pj = pipejit.pipeline(
        "text-classification", model=reference.model.name_or_path, compile=False, **engine
    )
    pj.graphs = GraphRunner(pj.runner, pj.task, capture=capture or ReplayCapture(), **options)
    return pj
