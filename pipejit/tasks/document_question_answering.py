"""document-question-answering for LayoutLM (v1): a question over a document's words and boxes.

The words and boxes come with the input (``word_boxes``) or from the Tesseract OCR
engine (pytesseract) when it is installed. A long document is cut into overlapping
spans (``doc_stride``); every span of every input is one model item, and the spans
of one input are scored together afterwards, as transformers scores them.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.pipelines.document_question_answering import select_starts_ends
from transformers.utils import is_pytesseract_available

from pipejit.contract import Features, ForwardTask, Params, Row
from pipejit.tasks.base import reject_unknown
from pipejit.tasks.image_inputs import load_image

PREPROCESS = {"padding", "doc_stride", "max_seq_len", "lang", "tesseract_config", "timeout"}
POSTPROCESS = {"top_k", "max_answer_len", "handle_impossible_answer"}
# transformers lists max_question_len among its parameters but never applies it; it is
# accepted (and checked) here so that calls written for the reference keep working
ACCEPTED = {"max_question_len"}


class DocumentQuestionAnswering(ForwardTask):
    name = "document-question-answering"

    @classmethod
    def serves(cls, model: torch.nn.Module) -> bool:
        return model.config.model_type == "layoutlm"

    def dummy_features(self, length: int) -> Features:
        features = super().dummy_features(length)
        features.tensors["bbox"] = torch.zeros(length, 4, dtype=torch.long)
        return features

    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        reject_unknown(self.name, kwargs, PREPROCESS | POSTPROCESS | ACCEPTED)
        for name in ("top_k", "max_answer_len", "max_seq_len", "max_question_len"):
            value = kwargs.get(name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        doc_stride = kwargs.get("doc_stride")
        if doc_stride is not None and (not isinstance(doc_stride, int) or doc_stride < 0):
            raise ValueError(f"doc_stride must be a non-negative int, got {doc_stride!r}")
        max_seq_len = kwargs.get("max_seq_len") or self.tokenizer.model_max_length
        pre = {
            "padding": kwargs.get("padding") or "do_not_pad",
            "max_seq_len": max_seq_len,
            "doc_stride": min(max_seq_len // 2, 256) if doc_stride is None else doc_stride,
            "lang": kwargs.get("lang"),
            "tesseract_config": kwargs.get("tesseract_config") or "",
            "timeout": kwargs.get("timeout"),
        }
        post = {
            "top_k": kwargs.get("top_k") or 1,
            "max_answer_len": kwargs.get("max_answer_len") or 15,
            "handle_impossible_answer": bool(kwargs.get("handle_impossible_answer")),
        }
        return Params(preprocess=pre, postprocess=post)

    def normalize_call(self, inputs: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
        if len(args) > 2:
            raise TypeError(
                f"{self.name} takes at most image, question and word_boxes positionally"
            )
        image = kwargs.pop("image", None)
        if image is not None and inputs is not None:
            raise TypeError(f"{self.name} got the image both positionally and as image=")
        image = inputs if image is None else image
        question = kwargs.pop("question", args[0] if args else None)
        word_boxes = kwargs.pop("word_boxes", args[1] if len(args) > 1 else None)
        if not isinstance(question, str):
            if word_boxes is not None:
                raise ValueError(f"{self.name} got word_boxes but no question")
            return image
        item = {"question": question, "image": image}
        if word_boxes is not None:
            item["word_boxes"] = word_boxes
        return item

    def is_single(self, inputs: Any) -> bool:
        return isinstance(inputs, dict)

    def preprocess(self, item: Any, params: Params) -> list[Features]:
        if not isinstance(item, dict) or "question" not in item:
            raise ValueError(
                f"{self.name} takes {{'image': image, 'question': question, 'word_boxes': "
                f"[(word, box), ...]}} (or image=, question=, word_boxes=), got {_describe(item)}"
            )
        question = item["question"]
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"question must be a non-empty string, got {question!r}")
        words, boxes = self._words_and_boxes(item, params)
        pre = params.preprocess
        encoding = self.tokenizer(
            text=question.split(),
            text_pair=words,
            is_split_into_words=True,
            padding=pre["padding"],
            max_length=pre["max_seq_len"],
            stride=pre["doc_stride"],
            return_token_type_ids=True,
            truncation="only_second",
            return_overflowing_tokens=True,
        )
        spans = []
        for span in range(len(encoding["input_ids"])):
            ids = encoding["input_ids"][span]
            sequence_ids = encoding.sequence_ids(span)
            word_ids = encoding.word_ids(span)
            p_mask = [
                s != 1 and t != self.tokenizer.cls_token_id for s, t in zip(sequence_ids, ids)
            ]
            bbox = [
                boxes[w] if s == 1 else [1000] * 4 if t == self.tokenizer.sep_token_id else [0] * 4
                for t, s, w in zip(ids, sequence_ids, word_ids)
            ]
            tensors = {
                k: torch.tensor(encoding[k][span], dtype=torch.long)
                for k in ("input_ids", "attention_mask", "token_type_ids")
            }
            tensors["bbox"] = torch.tensor(bbox, dtype=torch.long).reshape(-1, 4)
            context = {"p_mask": p_mask, "word_ids": word_ids, "words": words}
            spans.append(Features(tensors, context))
        return spans

    def _words_and_boxes(self, item: dict, params: Params) -> tuple[list[str], list]:
        if item.get("word_boxes") is not None:
            if item.get("image") is not None:
                # unread beside word_boxes, but a bad one is an error, as in transformers
                load_image(item["image"], timeout=params.preprocess["timeout"])
            pairs = item["word_boxes"]
            if not isinstance(pairs, (list, tuple)) or not all(
                isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], str)
                for p in pairs
            ):
                raise ValueError("word_boxes must be a list of (word, [x0, y0, x1, y1]) pairs")
            for word, box in pairs:
                if len(box) != 4:
                    raise ValueError(f"the box of {word!r} must have 4 coordinates, got {box!r}")
            return [w for w, _ in pairs], [list(b) for _, b in pairs]
        if item.get("image") is None:
            raise ValueError(
                "document-question-answering needs word_boxes or an image to read them from "
                "with OCR; got neither"
            )
        image = load_image(item["image"], timeout=params.preprocess["timeout"])
        if not is_pytesseract_available():
            raise ValueError(
                "this input has an image but no word_boxes, and reading the words needs the "
                "Tesseract OCR engine through pytesseract, which is not installed; install "
                "pytesseract and tesseract, or pass word_boxes=[(word, [x0, y0, x1, y1]), ...] "
                "with boxes normalized to 0-1000"
            )
        from transformers.pipelines.document_question_answering import apply_tesseract

        pre = params.preprocess
        return apply_tesseract(image, lang=pre["lang"], tesseract_config=pre["tesseract_config"])

    def reduce(self, outputs: Any, inputs: dict[str, torch.Tensor], params: Params) -> dict:
        return {"start": outputs.start_logits.float(), "end": outputs.end_logits.float()}

    def postprocess(self, item: Any, features: list[Features], rows: list[Row], params: Params):
        post = params.postprocess
        min_null_score = 1000000.0
        answers = []
        for span, row in zip(features, rows):
            length = span.length
            starts, ends, scores, min_null_score = select_starts_ends(
                start=row["start"][None, :length],
                end=row["end"][None, :length],
                p_mask=span.context["p_mask"],
                attention_mask=span.tensors["attention_mask"].numpy()[None],
                min_null_score=min_null_score,
                top_k=post["top_k"],
                handle_impossible_answer=post["handle_impossible_answer"],
                max_answer_len=post["max_answer_len"],
            )
            word_ids, words = span.context["word_ids"], span.context["words"]
            for start, end, score in zip(starts, ends, scores):
                first, last = word_ids[start], word_ids[end]
                if first is not None and last is not None:
                    answers.append(
                        {
                            "score": float(score),
                            "answer": " ".join(words[first : last + 1]),
                            "start": first,
                            "end": last,
                        }
                    )
        if post["handle_impossible_answer"]:
            answers.append({"score": min_null_score, "answer": "", "start": 0, "end": 0})
        answers.sort(key=lambda answer: answer["score"], reverse=True)
        return answers[: post["top_k"]]


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return f"a dict with the keys {sorted(map(str, value))}"
    return f"a {type(value).__name__}"
