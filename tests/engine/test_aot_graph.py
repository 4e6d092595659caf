"""Ahead-of-time packages in the compile cache: what a CPU pipeline's next start runs."""

import warnings

import pytest
import torch
import transformers

import pipejit
from pipejit.engine.aot_graph import PACKAGE_DIR, AotGraph
from pipejit.engine.compile_cache import INDUCTOR_CACHE_ENV
from tests.models import build_model_folder, sentences
from tests.parity import assert_same

TEXTS = sentences(6, seed=21)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One compile cache for the module: its package is built once (about 20 s)."""
    return tmp_path_factory.mktemp("aot-cache")


@pytest.fixture(autouse=True)
def own_inductor_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(INDUCTOR_CACHE_ENV, str(tmp_path / "inductor"))


def _runner(pipeline):
    return pipeline.modules.runner("model")


def _answers(pipeline):
    return [pipeline(text) for text in TEXTS[:2]], pipeline(TEXTS, batch_size=len(TEXTS))


@pytest.mark.slow
def test_a_cache_runs_batches_from_a_package_the_next_start_loads(model_folder, cache):
    folder = str(model_folder("text-classification"))
    reference = transformers.pipeline("text-classification", model=folder)
    expected = [reference(text) for text in TEXTS[:2]], reference(TEXTS, batch_size=1)
    first = pipejit.pipeline("text-classification", model=folder, compile_cache=cache)
    assert_same(_answers(first), expected)
    assert _runner(first).aot_graph.built
    assert len(list((cache / PACKAGE_DIR).glob("*.pt2"))) == 1
    assert _runner(first)._graph_keys == {(1,)}  # single rows: dynamo's graph; batches not

    second = pipejit.pipeline("text-classification", model=folder, compile_cache=cache)
    assert_same(_answers(second), expected)
    batches = _runner(second).aot_graph
    assert batches.loaded is not None and not batches.built
    assert _runner(second)._graph_keys == {(1,)}
    assert len(list((cache / PACKAGE_DIR).glob("*.pt2"))) == 1


@pytest.mark.slow
def test_a_package_answers_with_the_weights_of_the_model_it_is_loaded_for(
    model_folder, cache, tmp_path
):
    """Two models of one architecture share a package: each answers with its own weights."""
    first_folder = str(model_folder("text-classification"))
    other_folder = str(build_model_folder("text-classification", tmp_path / "other", seed=7))
    first = pipejit.pipeline("text-classification", model=first_folder, compile_cache=cache)
    other = pipejit.pipeline("text-classification", model=other_folder, compile_cache=cache)
    reference = transformers.pipeline("text-classification", model=other_folder)
    answers = _answers(other)
    assert_same(answers, ([reference(t) for t in TEXTS[:2]], reference(TEXTS, batch_size=1)))
    assert answers != _answers(first)  # the weights differ, so do the scores
    assert _runner(other).aot_graph.loaded is not None and not _runner(other).aot_graph.built


def test_a_package_serves_only_the_rows_lengths_and_inputs_it_was_built_for():
    batches = AotGraph(torch.nn.Linear(2, 2), "unused", max_length=64)
    ids = lambda rows, length: torch.ones(rows, length, dtype=torch.long)  # noqa: E731
    assert batches.accepts({"input_ids": ids(3, 10), "attention_mask": ids(3, 10)})
    assert not batches.accepts({"input_ids": ids(1, 10)})
    assert not batches.accepts({"input_ids": ids(3, 1)})  # a length of 1 is specialised
    assert not batches.accepts({"input_ids": ids(3, 65)})  # past the model's maximum
    assert not batches.accepts({"input_ids": ids(3, 10), "attention_mask": ids(3, 9)})
    assert not batches.accepts({"pixel_values": torch.ones(3, 3, 8, 8)})
    batches.names = ["input_ids", "attention_mask"]
    assert not batches.accepts({"input_ids": ids(3, 10)})  # not the inputs it was built for
    batches.failed = "RuntimeError: no"
    assert not batches.accepts({"input_ids": ids(3, 10), "attention_mask": ids(3, 10)})


def test_a_model_export_cannot_take_runs_the_compiled_graph_with_one_warning(
    model_folder, tmp_path, monkeypatch
):
    def refuse(*args, **kwargs):
        raise RuntimeError("data-dependent control flow")

    monkeypatch.setattr(torch.export, "export", refuse)
    folder = str(model_folder("text-classification"))
    ours = pipejit.pipeline(
        "text-classification", model=folder, compile_cache=tmp_path / "c", compile_backend="eager"
    )
    reference = transformers.pipeline("text-classification", model=folder)
    expected = reference(TEXTS, batch_size=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert_same(ours(TEXTS, batch_size=3), expected)
        assert_same(ours(TEXTS, batch_size=3), expected)
    refusals = [w for w in caught if "no ahead-of-time package" in str(w.message)]
    assert len(refusals) == 1 and "data-dependent control flow" in str(refusals[0].message)
    batches = _runner(ours).aot_graph
    assert batches.failed is not None and batches.loaded is None
    assert _runner(ours)._graph_keys  # the compiled path answered
    assert not (tmp_path / "c" / PACKAGE_DIR).exists()


def test_no_packages_without_a_cache_or_under_autocast_or_static_shapes(model_folder, tmp_path):
    folder = str(model_folder("text-classification"))
    plain = pipejit.pipeline("text-classification", model=folder)
    assert _runner(plain).aot_graph is None
    for options in ({"autocast": "bfloat16"}, {"shapes": "static"}, {"compile": False}):
        ours = pipejit.pipeline(
            "text-classification", model=folder, compile_cache=tmp_path / "c", **options
        )
        assert _runner(ours).aot_graph is None, options


def test_a_package_key_follows_the_code_it_traced_not_the_weights(monkeypatch):
    inputs = {"input_ids": torch.ones(2, 4, dtype=torch.long)}
    torch.manual_seed(0)
    key = AotGraph(torch.nn.Linear(4, 4), "unused").key(inputs)
    assert AotGraph(torch.nn.Linear(4, 4), "unused").key(inputs) == key  # other weights
    assert AotGraph(torch.nn.Linear(4, 5), "unused").key(inputs) != key
    assert AotGraph(torch.nn.Linear(4, 4), "unused", max_length=8).key(inputs) != key
    extra = AotGraph(torch.nn.Linear(4, 4), "unused", model_kwargs={"return_dict": False})
    assert extra.key(inputs) != key
    assert AotGraph(torch.nn.Linear(4, 4), "unused").key({"ids": inputs["input_ids"]}) != key
    monkeypatch.setattr(transformers, "__version__", "0.0.1")
    assert AotGraph(torch.nn.Linear(4, 4), "unused").key(inputs) != key
