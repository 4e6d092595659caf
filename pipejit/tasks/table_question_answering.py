"""table-question-answering for TAPAS models: a table and one or more queries to cell answers.

Every query of every table is one model item, so the queries of many tables share
batches. In ``sequential`` mode (conversational SQA models) a query's input holds
the previous query's selected cells, so only the first query of each table runs
through the engine's batches; the later ones run one after another, each after the
answer of the one before, as transformers runs them.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch

from pipejit.contract import Features, ForwardTask, Params, Row
from pipejit.tasks.base import reject_unknown

PADDING = (True, False, "longest", "max_length", "do_not_pad")
TRUNCATION = (True, False, "drop_rows_to_fit", "do_not_truncate")
# token_type_ids columns of a TAPAS input
SEGMENT, COLUMN, ROW, PREV_LABELS = 0, 1, 2, 3


class TableQuestionAnswering(ForwardTask):
    name = "table-question-answering"

    @classmethod
    def serves(cls, model: torch.nn.Module) -> bool:
        return hasattr(model.config, "aggregation_labels")

    @property
    def aggregates(self) -> bool:
        return bool(
            getattr(self.config, "aggregation_labels", None)
            and getattr(self.config, "num_aggregation_labels", None)
        )

    def dummy_features(self, length: int) -> Features:
        return Features(
            {
                "input_ids": torch.full((length,), self.tokenizer.unk_token_id, dtype=torch.long),
                "attention_mask": torch.ones(length, dtype=torch.long),
                "token_type_ids": torch.zeros(
                    length, len(self.config.type_vocab_sizes), dtype=torch.long
                ),
            }
        )

    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        reject_unknown(self.name, kwargs, {"sequential", "padding", "truncation"})
        padding = kwargs.get("padding")
        if padding is not None and padding not in PADDING:
            raise ValueError(f"padding must be one of {PADDING}, got {padding!r}")
        truncation = kwargs.get("truncation")
        if truncation is not None and truncation not in TRUNCATION:
            raise ValueError(f"truncation must be one of {TRUNCATION}, got {truncation!r}")
        if truncation is None:
            truncation = "drop_rows_to_fit"
        # padding is accepted for compatibility: the engine pads every item to its bucket
        # under an attention mask, which leaves the answers as they are
        return Params(
            preprocess={"truncation": truncation, "sequential": bool(kwargs.get("sequential"))},
            postprocess={"sequential": bool(kwargs.get("sequential"))},
        )

    def normalize_call(self, inputs: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
        if len(args) > 1:
            raise TypeError(f"{self.name} takes at most two positional arguments: table and query")
        table = kwargs.pop("table", None)
        query = kwargs.pop("query", args[0] if args else None)
        if table is not None and inputs is not None:
            raise TypeError(f"{self.name} got the table both positionally and as table=")
        table = inputs if table is None else table
        if query is not None:
            if table is None:
                raise ValueError(f"{self.name} got a query but no table")
            return {"table": table, "query": query}
        return table

    def is_single(self, inputs: Any) -> bool:
        return isinstance(inputs, dict) or _is_frame(inputs)

    def format_list(self, outputs: list[Any], inputs: list, call_kwargs: dict[str, Any]) -> Any:
        return outputs[0] if len(outputs) == 1 else outputs

    def preprocess(self, item: Any, params: Params) -> list[Features]:
        if not isinstance(item, dict) or "table" not in item or "query" not in item:
            raise ValueError(
                f"{self.name} takes {{'table': table, 'query': query}} (or table=..., "
                f"query=...), got {_describe(item)}"
            )
        table = to_frame(item["table"])
        queries = item["query"]
        queries = [queries] if isinstance(queries, str) else queries
        if not isinstance(queries, (list, tuple)) or not queries:
            raise ValueError(
                f"query must be a string or a non-empty list of strings, got {queries!r}"
            )
        for query in queries:
            if not isinstance(query, str):
                raise ValueError(f"every query must be a string, got {type(query).__name__}")
            if not query:
                raise ValueError("query is empty")
        encoded = [self._encode(table, query, params) for query in queries]
        context = {"table": table}
        if params.preprocess["sequential"]:
            return [Features(encoded[0], {**context, "later": encoded[1:]})]
        return [Features(tensors, context) for tensors in encoded]

    def _encode(self, table: Any, query: str, params: Params) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer(
            table, query, truncation=params.preprocess["truncation"], return_tensors="pt"
        )
        return {k: v[0] for k, v in encoded.items()}

    def reduce(self, outputs: Any, inputs: dict[str, torch.Tensor], params: Params) -> dict:
        reduced = {"logits": outputs.logits.float()}
        if self.aggregates:
            reduced["aggregation"] = outputs.logits_aggregation.float()
        return reduced

    def postprocess(self, item: Any, features: list[Features], rows: list[Row], params: Params):
        table = features[0].context["table"]
        inputs = [f.tensors for f in features]
        logits = [
            (torch.from_numpy(r["logits"][: f.length].copy()), _aggregation(r))
            for f, r in zip(features, rows)
        ]
        if params.postprocess["sequential"]:
            later = features[0].context["later"]
            inputs, logits = self._run_sequence(inputs + later, logits[0])
        answers = [self._answer(table, i, cell, agg) for i, (cell, agg) in zip(inputs, logits)]
        return answers[0] if len(answers) == 1 else answers

    def _run_sequence(self, inputs: list[dict[str, torch.Tensor]], first: tuple) -> tuple:
        """Each later query's previous-answer labels from the query before, then its forward."""
        logits = [first]
        device = self.model.device
        for previous, current in zip(inputs, inputs[1:]):
            selected = _selected_cells(previous, logits[-1][0])
            types = current["token_type_ids"].clone()
            for position, (segment, column, row) in enumerate(
                types[:, [SEGMENT, COLUMN, ROW]].tolist()
            ):
                if segment == 1 and column > 0 and row > 0:
                    types[position, PREV_LABELS] = int(selected.get((column - 1, row - 1), False))
            current["token_type_ids"] = types
            with torch.inference_mode():
                out = self.model(**{k: v[None].to(device) for k, v in current.items()})
            aggregation = out.logits_aggregation[0].float().cpu() if self.aggregates else None
            logits.append((out.logits[0].float().cpu(), aggregation))
        return inputs, logits

    def _answer(self, table, inputs: dict, logits: torch.Tensor, aggregation) -> dict[str, Any]:
        data = {k: v[None] for k, v in inputs.items()}
        if aggregation is None:
            (coordinates,) = self.tokenizer.convert_logits_to_predictions(data, logits[None])
            aggregator = ""
            prefix = ""
        else:
            coordinates, (index,) = self.tokenizer.convert_logits_to_predictions(
                data, logits[None], aggregation[None]
            )
            aggregator = self.config.aggregation_labels[index]
            no_aggregation = self.config.no_aggregation_label_index
            prefix = "" if index == no_aggregation else aggregator + " > "
        coordinates = coordinates[0] if coordinates else []
        cells = [table.iat[c] for c in coordinates]
        answer = {"answer": prefix + ", ".join(cells), "coordinates": coordinates, "cells": cells}
        if aggregator:
            answer["aggregator"] = aggregator
        return answer


def to_frame(table: Any):
    """A table (a dict of equal-length columns, or a DataFrame) as a pandas DataFrame."""
    import pandas as pd

    if isinstance(table, pd.DataFrame):
        frame = table
    elif isinstance(table, dict):
        lengths = {}
        for name, column in table.items():
            if isinstance(column, (str, bytes)) or not hasattr(column, "__len__"):
                raise ValueError(
                    f"a table is a dict of columns (lists of cells); column {name!r} is "
                    f"a {type(column).__name__}"
                )
            lengths[name] = len(column)
        if len(set(lengths.values())) > 1:
            raise ValueError(f"the table's columns differ in length: {lengths}")
        frame = pd.DataFrame(table)
    else:
        raise ValueError(f"a table is a dict of columns or a DataFrame, got {_describe(table)}")
    if frame.empty:
        raise ValueError("table is empty")
    return frame


def _selected_cells(inputs: dict[str, torch.Tensor], logits: torch.Tensor) -> dict:
    """Which (column, row) cells a query's logits select: mean token probability above 0.5."""
    probabilities = torch.sigmoid(logits) * inputs["attention_mask"].float()
    types = inputs["token_type_ids"]
    cells = defaultdict(list)
    for p, (segment, column, row) in zip(
        probabilities.tolist(), types[:, [SEGMENT, COLUMN, ROW]].tolist()
    ):
        if segment == 1 and column > 0 and row > 0:
            cells[(column - 1, row - 1)].append(p)
    return {cell: np.mean(values) > 0.5 for cell, values in cells.items()}


def _aggregation(row: Row) -> torch.Tensor | None:
    return torch.from_numpy(row["aggregation"].copy()) if "aggregation" in row else None


def _is_frame(value: Any) -> bool:
    return type(value).__name__ == "DataFrame"


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return f"a dict with the keys {sorted(map(str, value))}"
    return f"a {type(value).__name__}"
