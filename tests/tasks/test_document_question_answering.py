"""document-question-answering at parity with transformers.pipeline on a tiny LayoutLM."""

import random

import pytest
import transformers
from PIL import Image
from transformers.utils import is_pytesseract_available

import pipejit
from tests.models import WORDS
from tests.parity import assert_same
from tests.qa_models import build_layoutlm_folder

IMAGE = Image.new("RGB", (200, 100), "white")
QUESTIONS = ["what is the price", "who is the director of the movie", "when"]


def word_boxes(count: int, seed: int) -> list:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        x, y = rng.randint(0, 900), rng.randint(0, 900)
        out.append((rng.choice(WORDS), [x, y, x + rng.randint(5, 90), y + rng.randint(5, 90)]))
    return out


SHORT, MEDIUM, LONG = word_boxes(6, 1), word_boxes(40, 2), word_boxes(300, 3)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = str(build_layoutlm_folder(tmp_path_factory.mktemp("layoutlm"), seed=1))
    reference = transformers.pipeline("document-question-answering", model=folder)
    return reference, pipejit.pipeline("document-question-answering", model=folder, compile=False)


def test_one_document_in_every_call_form(pair):
    ref, pj = pair
    expected = ref(image=IMAGE, question=QUESTIONS[0], word_boxes=MEDIUM)
    assert_same(pj(image=IMAGE, question=QUESTIONS[0], word_boxes=MEDIUM), expected)
    assert_same(pj(IMAGE, QUESTIONS[0], word_boxes=MEDIUM), expected)
    assert_same(pj({"image": IMAGE, "question": QUESTIONS[0], "word_boxes": MEDIUM}), expected)
    assert_same(pj(image=None, question=QUESTIONS[0], word_boxes=MEDIUM), expected)


@pytest.mark.parametrize("batch_size", [1, 3, None])
def test_a_batch_of_documents_with_long_ones_split_into_spans(pair, batch_size):
    ref, pj = pair
    inputs = [
        {"image": IMAGE, "question": q, "word_boxes": wb}
        for q, wb in zip(QUESTIONS * 2, [SHORT, LONG, MEDIUM, LONG, SHORT, MEDIUM])
    ]
    expected = ref([dict(i) for i in inputs], top_k=2)
    assert_same(pj(inputs, batch_size=batch_size, top_k=2), expected)


@pytest.mark.parametrize(
    "options",
    [
        {"top_k": 5},
        {"max_answer_len": 1, "top_k": 3},
        {"handle_impossible_answer": True, "top_k": 2},
        {"doc_stride": 16, "max_seq_len": 48, "top_k": 3},
        {"max_seq_len": 64},
        {"padding": "max_length", "top_k": 2},
    ],
)
def test_parameters(pair, options):
    ref, pj = pair
    for boxes in (SHORT, LONG):
        expected = ref(image=IMAGE, question=QUESTIONS[1], word_boxes=boxes, **options)
        assert_same(pj(image=IMAGE, question=QUESTIONS[1], word_boxes=boxes, **options), expected)


def test_long_document_gives_several_spans(pair):
    _, pj = pair
    params = pj.task.parse_params({"max_seq_len": 48, "doc_stride": 16})
    spans = pj.task.preprocess({"question": "when", "word_boxes": LONG}, params)
    assert len(spans) > 5 and all(span.length <= 48 for span in spans)


@pytest.mark.skipif(is_pytesseract_available(), reason="pytesseract is installed")
def test_an_image_without_word_boxes_names_the_missing_ocr_engine(pair):
    _, pj = pair
    with pytest.raises(ValueError, match="pytesseract, which is not installed"):
        pj(image=IMAGE, question=QUESTIONS[0])
    with pytest.raises(ValueError, match="input 1: .*pytesseract"):
        pj(
            [
                {"image": IMAGE, "question": "when", "word_boxes": SHORT},
                {"image": IMAGE, "question": "when"},
            ]
        )


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"image": IMAGE, "question": "", "word_boxes": SHORT}, "non-empty string"),
        ({"question": "when"}, "got neither"),
        ({"question": "when", "word_boxes": [("a", [1, 2, 3])]}, "4 coordinates"),
        ({"question": "when", "word_boxes": ["a"]}, "pairs"),
        ({"image": IMAGE}, "got a dict with the keys \\['image'\\]"),
    ],
)
def test_bad_inputs_get_clear_errors_and_the_pipeline_still_works(pair, item, message):
    ref, pj = pair
    with pytest.raises(ValueError, match=message):
        pj(item)
    good = {"image": IMAGE, "question": "when", "word_boxes": SHORT}
    assert_same(pj(good), ref(dict(good)))


def test_bad_parameters_are_named(pair):
    _, pj = pair
    with pytest.raises(ValueError, match="top_k"):
        pj(image=IMAGE, question="when", word_boxes=SHORT, top_k=0)
    with pytest.raises(TypeError, match="sequential"):
        pj(image=IMAGE, question="when", word_boxes=SHORT, sequential=True)
