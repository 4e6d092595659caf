"""The engine's promises: order, padding only to the bucket, streaming, clear errors."""

import time
import warnings

import pytest
import torch
import transformers

import pipejit
from tests.models import MAX_LENGTH, sentences
from tests.parity import assert_same

TEXTS = sentences(40, seed=21)


@pytest.fixture(scope="module")
def pair(pipelines):
    return pipelines("text-classification", length_buckets=(8, 16, 32, 64, 128))


@pytest.fixture
def shapes(pair):
    """The (batch, length) of every forward the pipejit pipeline runs."""
    _, pj = pair
    seen = []
    forward = pj.modules.runner("model").model.forward

    def spy(**inputs):
        seen.append(tuple(inputs["input_ids"].shape))
        return forward(**inputs)

    pj.modules.runner("model").model.forward = spy
    yield seen
    pj.modules.runner("model").model.forward = forward


def test_order_restored_and_padding_only_to_the_bucket(pair, shapes):
    ref, pj = pair
    assert_same(pj(TEXTS, batch_size=8), ref(TEXTS))
    lengths = sorted((len(ref.tokenizer(t)["input_ids"]) for t in TEXTS), reverse=True)
    assert all(b <= 8 and n in (8, 16, 32, 64, 128) for b, n in shapes)
    # items run longest first, each batch padded to the bucket of its longest item
    start = 0
    for batch, length in shapes:
        assert length == min(s for s in (8, 16, 32, 64, 128) if s >= lengths[start])
        start += batch
    assert start == len(TEXTS)


def test_token_budget_bounds_padded_tokens(model_folder):
    folder = str(model_folder("text-classification"))
    pj = pipejit.pipeline("text-classification", model=folder, compile=False, token_budget=64)
    pj(TEXTS)
    stats = pj.stats()
    assert all(b * n <= 64 or b == 1 for b, n in stats["buckets"])
    assert stats["padding_ratio"] < 0.5


def test_streaming_from_a_generator_is_lazy_and_ordered(pair):
    ref, _ = pair
    folder = ref.model.name_or_path
    pj = pipejit.pipeline("text-classification", model=folder, compile=False, sort_window=8)
    pulled = []

    def source():
        for text in TEXTS:
            pulled.append(text)
            yield text

    stream = pj(source(), batch_size=4)
    first = next(stream)
    assert len(pulled) <= 9  # one sort window read, not the whole stream
    assert_same([first, *stream], ref(TEXTS))


def test_datasets_column_and_key_dataset(pair):
    import datasets
    from transformers.pipelines.pt_utils import KeyDataset

    ref, pj = pair
    data = datasets.Dataset.from_dict({"text": TEXTS[:10], "label": list(range(10))})
    expected = ref(TEXTS[:10])
    assert_same(list(pj(KeyDataset(data, "text"), batch_size=4)), expected)
    assert_same(list(pj(data["text"], batch_size=4)), expected)


def test_empty_list_gives_empty_list(pair):
    _, pj = pair
    assert pj([]) == []


def test_empty_string_behaves_like_transformers(pair):
    ref, pj = pair
    assert_same(pj(""), ref(""))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (None, "received None"),
        (42, "got int"),
        ({"txt": "hello"}, "keys \\['txt'\\]"),
        ([TEXTS[0], None], "input 1: text-classification takes a string"),
        ([TEXTS[0], ["a", "b"]], "input 1: .*text pair"),
    ],
)
def test_bad_inputs_are_named(pair, bad, message):
    _, pj = pair
    with pytest.raises(ValueError, match=message):
        pj(bad)


def test_text_over_the_model_maximum(pair):
    _, pj = pair
    long_text = " ".join(TEXTS)
    with pytest.raises(
        ValueError, match=f"more than the model's maximum of {MAX_LENGTH}; pass truncation=True"
    ):
        pj([TEXTS[0], long_text])


def test_bad_parameters_are_named(pair):
    _, pj = pair
    with pytest.raises(TypeError, match="unexpected parameter.*'topk'"):
        pj(TEXTS[0], topk=2)
    with pytest.raises(ValueError, match="batch_size"):
        pj(TEXTS, batch_size=0)
    with pytest.raises(ValueError, match="function_to_apply"):
        pj(TEXTS[0], function_to_apply="tanh")


def test_unsupported_task_lists_supported(model_folder):
    with pytest.raises(ValueError, match="unsupported task 'summarization'.*text-classification"):
        pipejit.pipeline("summarization", model=str(model_folder("text-classification")))


@pytest.mark.parametrize(
    ("kind", "task"),
    [
        ("text-classification", "text-classification"),
        ("token-classification", "token-classification"),
        ("fill-mask", "fill-mask"),
        ("feature-extraction", "feature-extraction"),
    ],
)
def test_task_inferred_from_config(model_folder, kind, task):
    assert pipejit.pipeline(model=str(model_folder(kind)), compile=False).task.name == task


def test_compile_failure_falls_back_to_eager_with_one_warning(pair):
    ref, _ = pair

    def broken_backend(graph_module, example_inputs):
        raise RuntimeError("this backend cannot compile anything")

    pj = pipejit.pipeline(
        "text-classification", model=ref.model.name_or_path, compile_backend=broken_backend
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = pj(TEXTS[:6], batch_size=2)
    assert_same(got, ref(TEXTS[:6]))
    assert len([w for w in caught if "running eager" in str(w.message)]) == 1
    assert "cannot compile" in pj.stats()["compile_failed"]


def test_progress_bar_counts_items(pair, capsys):
    _, pj = pair
    pj(TEXTS[:5], progress=True)
    assert "5/5" in capsys.readouterr().err


def test_float16_weights_through_dtype(model_folder):
    folder = str(model_folder("text-classification"))
    ref = transformers.pipeline("text-classification", model=folder, dtype="bfloat16")
    pj = pipejit.pipeline("text-classification", model=folder, dtype="bfloat16", compile=False)
    import torch

    assert pj.model.dtype == torch.bfloat16
    got = pj(TEXTS[:6], top_k=None)
    assert_same(got, ref(TEXTS[:6], top_k=None), dtype=torch.bfloat16)
    assert all(isinstance(d["score"], float) for row in got for d in row)


def test_errors_number_inputs_across_sort_windows(model_folder):
    folder = str(model_folder("text-classification"))
    pj = pipejit.pipeline("text-classification", model=folder, compile=False, sort_window=4)
    with pytest.raises(ValueError, match="input 9: "):
        list(pj(iter([*TEXTS[:9], 7])))


def test_warmup_compiles_the_asked_buckets_once(model_folder, counting_backend):
    folder = str(model_folder("text-classification"))
    pj = pipejit.pipeline(
        "text-classification", model=folder, shapes="static", compile_backend=counting_backend
    )
    pj.warmup(lengths=[16, 32], batch_sizes=[2])
    assert pj.stats()["buckets"] == [(2, 16), (2, 32)]
    assert counting_backend.graphs == 2
    pj.warmup(lengths=[16, 32], batch_sizes=[2])
    assert counting_backend.graphs == 2


def test_dynamic_shapes_pad_a_batch_to_its_longest_item_only(model_folder):
    folder = str(model_folder("text-classification"))
    pj = pipejit.pipeline("text-classification", model=folder, compile=False)
    ref = transformers.pipeline("text-classification", model=folder)
    seen = []
    model = pj.modules.runner("model").model
    forward = model.forward

    def spy(**inputs):
        # a single row comes without its mask, which would attend every position
        mask = inputs.get("attention_mask", torch.ones_like(inputs["input_ids"]))
        seen.append(mask.sum(dim=1).tolist())
        assert inputs["input_ids"].shape[1] == max(seen[-1])  # no column of padding only
        return forward(**inputs)

    model.forward = spy
    try:
        assert_same(pj(TEXTS, batch_size=8), ref(TEXTS, batch_size=1))
        assert_same(pj(TEXTS[3]), ref(TEXTS[3]))
    finally:
        model.forward = forward
    assert sum(len(rows) for rows in seen) == len(TEXTS) + 1
    assert pj.exact_lengths
    static = pipejit.pipeline("text-classification", model=folder, compile=False, shapes="static")
    assert not static.exact_lengths  # per-shape compiles keep to the ladder


def test_a_batch_is_read_after_the_next_one_is_launched(pair, monkeypatch):
    """The host launches batch k+1 before it waits for batch k's rows (on a GPU the two
    overlap), and every row still lands in its input's place."""
    from pipejit.engine import pipeline as engine_pipeline

    ref, pj = pair
    events = []
    execute = pj._execute

    class LoggedCopy(engine_pipeline.HostCopy):
        def wait(self):
            events.append("read")
            return super().wait()

    def logged_execute(*args):
        events.append("launch")
        return execute(*args)

    monkeypatch.setattr(pj, "_execute", logged_execute)
    monkeypatch.setattr(engine_pipeline, "HostCopy", LoggedCopy)
    assert_same(pj(TEXTS, batch_size=8), ref(TEXTS))
    batches = events.count("launch")
    assert batches >= len(TEXTS) // 8
    assert events == ["launch"] + ["launch", "read"] * (batches - 1) + ["read"]


def test_stage_seconds_say_where_the_time_went(pair, monkeypatch):
    _, pj = pair
    before = pj.stats()["stage_seconds"]
    postprocess = pj.task.postprocess

    def slow_postprocess(*args):
        time.sleep(0.02)
        return postprocess(*args)

    monkeypatch.setattr(pj.task, "postprocess", slow_postprocess)
    pj(TEXTS[:4], batch_size=2)
    after = pj.stats()["stage_seconds"]
    spent = {stage: after[stage] - before[stage] for stage in after}
    assert set(spent) == {"preprocess", "collate", "launch", "read", "postprocess"}
    assert all(seconds > 0 for seconds in spent.values()), spent
    assert spent["postprocess"] >= 4 * 0.02 > spent["preprocess"] + spent["collate"]
