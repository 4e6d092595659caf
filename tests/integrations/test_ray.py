"""pipejit on Ray Data: every row answered once, as the single-process pipeline answers it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import pipejit
from tests.models import sentences
from tests.parity import assert_same

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'pipejit[ray]')")
pytest.importorskip("ray.data", reason="ray is installed without Ray Data: pip install 'ray[data]'")

from pipejit.integrations.ray import PipejitPredictor, map_pipeline  # noqa: E402

ROOT = str(Path(__file__).resolve().parents[2])
TEXTS = sentences(2000, seed=17)
BAD = {5: None, 700: "word " * 300, 1999: None}  # None: a missing value; a text too long


@pytest.fixture(scope="module")
def local_ray():
    """A 2-CPU local Ray, its workers importing this checkout's pipejit."""
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=256 * 1024**2,
        logging_level="ERROR",
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path, "TOKENIZERS_PARALLELISM": "false"}},
    )
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(model_folder):
    return str(model_folder("text-classification"))


@pytest.fixture(scope="module")
def expected(folder):
    """The single-process answers of the good rows, from one list call."""
    pipe = pipejit.pipeline("text-classification", model=folder, compile=False)
    return pipe(TEXTS, top_k=2)


def dataset(bad: dict[int, str | None]):
    rows = [{"id": i, "text": bad.get(i, text)} for i, text in enumerate(TEXTS)]
    return ray.data.from_items(rows, override_num_blocks=8)


def test_2000_rows_through_2_actors_with_an_error_column(local_ray, folder, expected):
    ds = dataset(BAD).map_batches(
        PipejitPredictor,
        fn_constructor_args=("text-classification", folder),
        fn_constructor_kwargs={
            "column": "text",
            "output_column": "labels",
            "on_error": "column",
            "params": {"top_k": 2},
            "compile": False,
            "num_threads": 1,
        },
        batch_size=256,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=2),
        num_cpus=1,
    )
    rows = ds.take_all()
    assert sorted(row["id"] for row in rows) == list(range(len(TEXTS))), "rows lost or repeated"
    for row in rows:
        index = row["id"]
        assert row["text"] == BAD.get(index, TEXTS[index]), "input column changed"
        if index in BAD:
            assert row["labels"] is None
            expected_error = "received None" if BAD[index] is None else "more than the model's"
            assert row["error"].startswith("ValueError: ") and expected_error in row["error"]
        else:
            assert row["error"] is None
            assert_same(row["labels"], expected[index], path=f"row {index}")


def test_map_pipeline_defaults_keep_order_and_raise_on_a_bad_row(local_ray, folder, expected):
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    try:
        ds = map_pipeline(
            dataset({}).limit(300),
            "text-classification",
            folder,
            params={"top_k": 2},
            num_actors=2,
            cpus_per_actor=1,
            batch_size=64,
            compile=False,
        )
        rows = ds.take_all()
    finally:
        context.execution_options.preserve_order = False
    assert [row["id"] for row in rows] == list(range(300))
    assert "error" not in rows[0]
    assert_same([row["output"] for row in rows], expected[:300])

    bad = map_pipeline(
        dataset({42: None}).limit(100),
        "text-classification",
        folder,
        num_actors=1,
        cpus_per_actor=1,
        compile=False,
    )
    with pytest.raises(Exception, match=r"row 42 of a batch of 100 \(None\).*received None"):
        bad.take_all()


@pytest.mark.parametrize(
    "task, params",
    [
        ("token-classification", {"aggregation_strategy": "simple"}),
        ("fill-mask", {"top_k": 3}),
        ("feature-extraction", {}),
        ("zero-shot-classification", {"candidate_labels": ["sports", "politics"]}),
    ],
)
def test_every_text_task_answers_a_batch_as_a_list_call(model_folder, task, params):
    """The actor's work on one numpy batch, without Ray: outputs as the list call's,
    in a column Arrow can store."""
    import pyarrow

    folder = str(model_folder(task))
    texts = sentences(12, seed=4)
    if task == "fill-mask":
        texts = [f"{text} [MASK]" for text in texts]
    batch = {"id": np.arange(len(texts)), "text": np.array(texts, dtype=object)}
    predictor = PipejitPredictor(task, folder, params=params, on_error="column", compile=False)
    out = predictor(batch)
    expected = pipejit.pipeline(task, model=folder, compile=False)(texts, **params)
    assert_same(out["output"], expected)
    assert out["error"] == [None] * len(texts)
    assert len(pyarrow.array(out["output"])) == len(texts)


def test_bad_options_are_named(folder):
    with pytest.raises(ValueError, match="on_error must be one of"):
        PipejitPredictor("text-classification", folder, on_error="skip", compile=False)
    predictor = PipejitPredictor("text-classification", folder, column="review", compile=False)
    with pytest.raises(KeyError, match="reads the column 'review'"):
        predictor({"text": ["a good film"]})
