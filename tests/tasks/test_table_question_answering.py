"""table-question-answering at parity with transformers.pipeline on tiny TAPAS models."""

import pandas as pd
import pytest
import transformers

import pipejit
from tests.parity import assert_same
from tests.qa_models import build_tapas_folder

TABLE = {
    "movie": ["the plot", "good film", "bad story", "new music"],
    "year": ["1999", "2001", "2005", "2010"],
    "score": ["5", "7", "3", "9"],
}
OTHER = {"city": ["paris", "london", "tokyo"], "people": ["2", "9", "14"]}
QUERIES = ["what is the score of the good film", "which movie", "how many people in tokyo city"]


# seeds whose random weights select several cells, and differently in sequential mode
@pytest.fixture(scope="module", params=[(True, 2), (False, 3)], ids=["aggregation", "cells-only"])
def pair(request, tmp_path_factory):
    aggregation, seed = request.param
    folder = str(build_tapas_folder(tmp_path_factory.mktemp("tapas"), aggregation, seed=seed))
    reference = transformers.pipeline("table-question-answering", model=folder)
    return reference, pipejit.pipeline("table-question-answering", model=folder, compile=False)


def test_one_table_one_query_in_every_call_form(pair):
    ref, pj = pair
    expected = ref(table=TABLE, query=QUERIES[0])
    assert_same(pj(table=TABLE, query=QUERIES[0]), expected)
    assert_same(pj(TABLE, QUERIES[0]), expected)
    assert_same(pj({"table": TABLE, "query": QUERIES[0]}), expected)
    assert_same(pj([{"table": TABLE, "query": QUERIES[0]}]), expected)
    assert_same(pj(TABLE, [QUERIES[0]]), expected)


def test_a_data_frame_table(pair):
    ref, pj = pair
    frame = pd.DataFrame(TABLE)
    assert_same(pj(table=frame, query=QUERIES[1]), ref(table=frame, query=QUERIES[1]))


@pytest.mark.parametrize("batch_size", [1, 4, None])
def test_many_queries_and_tables_batched(pair, batch_size):
    ref, pj = pair
    assert_same(
        pj(table=TABLE, query=QUERIES, batch_size=batch_size), ref(table=TABLE, query=QUERIES)
    )
    inputs = [
        {"table": TABLE, "query": QUERIES},
        {"table": OTHER, "query": QUERIES[2]},
        {"table": OTHER, "query": QUERIES[:2]},
    ]
    assert_same(pj(inputs, batch_size=batch_size), ref([dict(i) for i in inputs]))


def test_sequential_runs_each_query_after_the_previous_answer(pair):
    ref, pj = pair
    expected = ref(table=TABLE, query=QUERIES, sequential=True)
    assert any(answer["cells"] for answer in expected), "the tiny model should select cells"
    assert_same(pj(table=TABLE, query=QUERIES, sequential=True), expected)
    inputs = [{"table": TABLE, "query": QUERIES}, {"table": OTHER, "query": QUERIES[::-1]}]
    got = pj(inputs, sequential=True, batch_size=2)
    assert_same(got, ref([dict(i) for i in inputs], sequential=True))


def test_truncation_drops_rows_of_a_long_table(pair):
    ref, pj = pair
    long = {"movie": ["good film story"] * 60, "year": [str(1900 + i) for i in range(60)]}
    for options in ({}, {"truncation": True}, {"truncation": "drop_rows_to_fit"}):
        assert_same(
            pj(table=long, query=QUERIES[0], **options),
            ref(table=long, query=QUERIES[0], **options),
        )
    with pytest.raises(ValueError, match="maximum"):
        pj(table=long, query=QUERIES[0], truncation=False)


@pytest.mark.parametrize("padding", [True, "longest", "max_length", False])
def test_padding(pair, padding):
    ref, pj = pair
    expected = ref(table=TABLE, query=QUERIES[:1], padding=padding)
    assert_same(pj(table=TABLE, query=QUERIES[:1], padding=padding), expected)


@pytest.mark.parametrize(
    ("table", "query", "message"),
    [
        ({"a": ["1", "2"], "b": ["3"]}, "which", "differ in length"),
        ({"a": "12"}, "which", "column 'a'"),
        (["1", "2"], "which", "dict of columns"),
        ({"a": []}, "which", "table is empty"),
        (TABLE, "", "query is empty"),
        (TABLE, [], "non-empty list"),
    ],
)
def test_bad_tables_and_queries_get_clear_errors(pair, table, query, message):
    _, pj = pair
    with pytest.raises(ValueError, match=message):
        pj(table=table, query=query)


def test_a_bad_input_in_a_list_is_named_and_a_good_call_after_it_is_unaffected(pair):
    ref, pj = pair
    inputs = [{"table": TABLE, "query": QUERIES[0]}, {"table": TABLE, "query": ""}]
    with pytest.raises(ValueError, match="input 1: query is empty"):
        pj(inputs)
    with pytest.raises(ValueError, match="got a dict with the keys \\['table'\\]"):
        pj([{"table": TABLE}])
    assert_same(pj(inputs[:1]), ref([dict(inputs[0])]))


def test_unknown_parameter_is_named(pair):
    with pytest.raises(TypeError, match="top_k"):
        pair[1](table=TABLE, query=QUERIES[0], top_k=2)
