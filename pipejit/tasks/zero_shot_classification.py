"""zero-shot-classification: an NLI model scores each candidate label as a hypothesis.

Every (premise, hypothesis) pair is its own model item, so the engine batches
the pairs of many labels and many premises together.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from pipejit.contract import Features, ForwardTask, Params, Row
from pipejit.kernels.zero_shot import zero_shot_scores
from pipejit.tasks.base import encode, reject_unknown
from pipejit.tasks.first_token import first_position_only

DEFAULT_TEMPLATE = "This example is {}."


class ZeroShotClassification(ForwardTask):
    name = "zero-shot-classification"
    # "auto": Triton kernels on CUDA, their torch references elsewhere; "triton"/"torch" force one
    kernel_impl = "auto"

    first_position_only = False

    def __init__(self, reference):
        super().__init__(reference)
        self.entailment_id = next(
            (i for label, i in self.config.label2id.items() if label.lower().startswith("entail")),
            -1,
        )
        if self.entailment_id == -1:
            warnings.warn(
                "no label of the model's label2id starts with 'entail'; using the last label as "
                "entailment. Give the config a descriptive label2id for correct outputs.",
                stacklevel=2,
            )

    def prepare_model(self) -> None:
        # an NLI classifier reads the first position only (see pipejit.tasks.first_token)
        self.first_position_only = first_position_only(self.model)

    def normalize_call(self, inputs: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
        if len(args) == 1 and "candidate_labels" not in kwargs:
            kwargs["candidate_labels"] = args[0]
        elif args:
            raise TypeError(f"zero-shot-classification could not understand extra arguments {args}")
        return inputs

    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        reject_unknown(
            self.name, kwargs, {"candidate_labels", "hypothesis_template", "multi_label"}
        )
        labels = kwargs.get("candidate_labels")
        if isinstance(labels, str):
            labels = [label.strip() for label in labels.split(",") if label.strip()]
        template = kwargs.get("hypothesis_template", DEFAULT_TEMPLATE)
        if not isinstance(template, str):
            raise TypeError(f"hypothesis_template must be a string, got {template!r:.80}")
        if labels is not None:
            if not isinstance(labels, (list, tuple)) or not all(isinstance(x, str) for x in labels):
                raise TypeError(
                    f"candidate_labels must be a string or a list of strings, got {labels!r:.80}"
                )
            if not labels:
                raise ValueError("zero-shot-classification needs at least one candidate label")
            if template.format(labels[0]) == template:
                raise ValueError(
                    f'the hypothesis_template "{template}" has no {{}} where the label should go'
                )
        pre = {"labels": labels, "template": template}
        return Params(preprocess=pre, postprocess={"multi_label": bool(kwargs.get("multi_label"))})

    def preprocess(self, item: Any, params: Params) -> list[Features]:
        labels = params.preprocess["labels"]
        if labels is None:
            raise ValueError("zero-shot-classification needs candidate_labels")
        if not isinstance(item, str) or not item:
            raise ValueError(f"zero-shot-classification takes a non-empty string, got {item!r:.40}")
        template = params.preprocess["template"]
        return [
            Features(self._encode_pair(item, template.format(label)), {"label": label})
            for label in labels
        ]

    def _encode_pair(self, premise: str, hypothesis: str) -> dict[str, torch.Tensor]:
        try:
            return encode(self.tokenizer, premise, hypothesis, truncation="only_first")
        except Exception as error:  # the hypothesis alone can be too long to cut the premise
            if "too short" not in str(error):
                raise
            return encode(self.tokenizer, premise, hypothesis)

    def _label_indices(self) -> tuple[int, int]:
        """(entailment, contradiction) as the reference picks them: contradiction is the
        first label, or the last one when entailment is the first."""
        labels = self.config.num_labels
        entail = self.entailment_id % labels
        return entail, (labels - 1 if entail == 0 else 0)

    def reduce(self, outputs: Any, inputs: dict[str, torch.Tensor], params: Params) -> dict:
        """Two floats per pair: its entailment-vs-contradiction probability (multi_label)
        and its entailment logit. The softmax across a premise's labels runs at
        postprocess, as a premise's pairs may be spread over several batches."""
        logits = outputs.logits
        entail, contradiction = self._label_indices()
        pair = zero_shot_scores(
            logits, entailment=entail, contradiction=contradiction, impl=self.kernel_impl
        )
        return {"pair": pair, "entail": logits[:, entail].float()}

    def postprocess(self, item: Any, features: list[Features], rows: list[Row], params: Params):
        labels = [feature.context["label"] for feature in features]
        if params.postprocess["multi_label"] or len(labels) == 1:
            scores = np.array([row["pair"] for row in rows], dtype=np.float32)
        else:
            entail = torch.tensor(np.array([[row["entail"]] for row in rows]))
            across = torch.tensor([0, len(rows)])
            scores = zero_shot_scores(
                entail, entailment=0, contradiction=0, offsets=across, impl="torch"
            ).numpy()
        order = scores.argsort()[::-1]
        return {
            "sequence": item,
            "labels": [labels[i] for i in order],
            "scores": scores[order].tolist(),
        }
