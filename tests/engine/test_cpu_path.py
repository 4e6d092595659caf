"""The CPU path: its choice from injected measurements, its swaps' parity, its thread chooser."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
import transformers

import pipejit
from pipejit.engine import cpu_path
from pipejit.engine import pipeline as pipeline_module
from pipejit.engine.compile_cache import INDUCTOR_CACHE_ENV
from pipejit.engine.cpu_path import OneDnnLinear, ThreadChooser, choose, optimize_for_cpu
from tests.models import build_model_folder, sentences
from tests.parity import assert_same

needs_onednn = pytest.mark.skipif(
    not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN"
)


def test_one_rows_leave_onednn_only_where_torchs_gemm_ran_the_sentence_clearly_faster():
    def linears(sentence_gemm_ms):
        return cpu_path.CpuPathChoice(sentence_gemm_ms=sentence_gemm_ms).sentence_linears()

    assert linears({"aten": 10.0, "onednn": 9.0}) == "onednn"
    assert linears({"aten": 10.0, "onednn": 11.0}) == "aten"
    assert linears({"aten": 10.0, "onednn": 10.2}) == "onednn"  # within the noise
    assert linears({"aten": 10.0}) == "onednn"  # oneDNN untimed: inductor's own choice
    assert linears({}) == "onednn"
    # torch's GEMM on the weight layout it ran the sentence's linears faster on
    colmajor_faster = {"aten": 12.0, "aten_colmajor": 9.0, "onednn": 10.0}
    assert linears(colmajor_faster) == "aten_colmajor"
    assert linears({"aten": 8.0, "aten_colmajor": 9.0, "onednn": 10.0}) == "aten"
    assert linears({**colmajor_faster, "aten_colmajor": 9.9}) == "onednn"


def test_sentence_gemms_time_each_library_over_every_linear_and_change_nothing():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(16, 32),
        torch.nn.Linear(32, 8, bias=False),
        torch.nn.Linear(8, 16),
    ).eval()
    cpu_path.use_column_major_weights(model[:1])  # layouts as the batches may leave them
    if cpu_path._onednn_available():
        model[2] = OneDnnLinear(model[2])
    before = {name: t.clone() for name, t in model.state_dict().items()}
    timed = cpu_path.time_sentence_gemms(model, rows=4)
    onednn = {"onednn"} if cpu_path._onednn_available() else set()
    assert set(timed) == {"aten", "aten_colmajor"} | onednn
    assert all(0 < ms < float("inf") for ms in timed.values())
    for name, t in model.state_dict().items():
        assert torch.equal(t, before[name]), name
    assert model[0].weight.t().is_contiguous()


def test_choose_keeps_the_default_unless_clearly_ahead_somewhere_and_behind_nowhere():
    assert choose({"aten+sdpa": [10.0], "onednn+sdpa": [9.7]}, "aten+sdpa") == "aten+sdpa"
    assert choose({"aten+sdpa": [10.0], "onednn+sdpa": [9.5]}, "aten+sdpa") == "onednn+sdpa"
    assert choose({"aten+sdpa": [10.0], "aten+eager": [12.0]}, "aten+sdpa") == "aten+sdpa"
    # far ahead on the sentence and behind on the batch: one regime's gain pays for nothing
    one_regime = {"aten+sdpa": [80.0, 320.0], "onednn+sdpa": [60.0, 321.0]}
    assert choose(one_regime, "aten+sdpa") == "aten+sdpa"
    # ahead by the margin on one shape, behind on none: chosen
    assert choose({**one_regime, "onednn+sdpa": [60.0, 318.0]}, "aten+sdpa") == "onednn+sdpa"
    assert choose({**one_regime, "onednn+sdpa": [79.0, 310.0]}, "aten+sdpa") == "aten+sdpa"
    # of two candidates ahead at every shape, the faster over both
    both = {**one_regime, "onednn+sdpa": [70.0, 300.0], "aten+eager": [75.0, 280.0]}
    assert choose(both, "aten+sdpa") == "aten+eager"
    with pytest.raises(ValueError, match="default"):
        choose({"onednn+sdpa": [1.0]}, "aten+sdpa")


def _measured_fastest(monkeypatch, fastest: str, sentence: str | None = None) -> None:
    """Tiny models measured by the CPU path, the setup named ``fastest`` (or starting so)
    timed fastest by far; ``sentence``, where given, fastest on the sentence alone."""
    monkeypatch.setattr(cpu_path, "MIN_MEASURED_WEIGHTS", 0)

    def ms(name: str, shape: int) -> float:
        leader = sentence if sentence is not None and shape == 0 else fastest
        return 1.0 if name.startswith(leader) else 5.0

    monkeypatch.setattr(
        cpu_path,
        "time_forwards",
        lambda m, setups, autocast=None: {
            n: [ms(n, shape) for shape in range(len(cpu_path.EXAMPLE_SHAPES))] for n in setups
        },
    )
    libraries = ["aten", "aten_colmajor"] + (["onednn"] if cpu_path._onednn_available() else [])
    leader = (sentence or fastest).split("+")[0]
    monkeypatch.setattr(
        pipeline_module,
        "time_sentence_gemms",
        lambda model: {name: 1.0 if name == leader else 5.0 for name in libraries},
    )


def _classifier(model_folder):
    folder = model_folder("text-classification")
    return transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()


def _logits(model, texts, folder):
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return model(**batch).logits


@needs_onednn
def test_measured_winner_is_applied_and_keeps_fp32_outputs(model_folder):
    folder = model_folder("text-classification")
    texts = sentences(4)
    model = _classifier(model_folder)
    expected = _logits(model, texts, folder)
    seen = {}

    def onednn_fastest(measured_model, setups):
        seen.update(setups)
        return {name: [1.0 if name.startswith("onednn") else 5.0] for name in setups}

    same, choice = optimize_for_cpu(model, measure=onednn_fastest)
    assert same is model and choice.linears == "onednn" and choice.attention == "sdpa"
    assert {"aten+sdpa", "aten_colmajor+sdpa", "onednn+sdpa", "aten+eager"} == set(seen)
    assert any(isinstance(m, OneDnnLinear) for m in model.modules())
    assert not any(type(m) is torch.nn.Linear for m in model.modules())
    torch.testing.assert_close(_logits(model, texts, folder), expected, rtol=1e-4, atol=1e-5)


def test_attention_switch_and_failed_probe(model_folder):
    model = _classifier(model_folder)
    _, choice = optimize_for_cpu(
        model, measure=lambda m, setups: {n: [1.0 if "eager" in n else 9.0] for n in setups}
    )
    assert (choice.linears, choice.attention) == ("aten", "eager")
    assert model.config._attn_implementation == "eager"

    def broken(m, setups):
        raise RuntimeError("cannot run")

    other = _classifier(model_folder)
    _, kept = optimize_for_cpu(other, measure=broken)
    assert (kept.linears, kept.attention) == ("aten", "sdpa") and "cannot run" in kept.error


def test_kept_timings_are_used_only_when_they_time_every_setup_at_every_shape(model_folder):
    calls = []

    def measure(m, setups):
        calls.append(sorted(setups))
        return {n: [1.0] * len(cpu_path.EXAMPLE_SHAPES) for n in setups}

    first = optimize_for_cpu(_classifier(model_folder), measure=measure)[1]
    kept = first.measured_ms
    again = optimize_for_cpu(_classifier(model_folder), measure=measure, measured_before=kept)[1]
    assert len(calls) == 1 and again.recalled and again.measured_ms == kept
    # a setup left behind at the first shape (timed there alone) is kept as it was
    partial = {**kept, "aten+eager": [9.0]}
    model = _classifier(model_folder)
    assert optimize_for_cpu(model, measure=measure, measured_before=partial)[1].recalled
    # a total per setup (what an older process kept), no time, or a missing setup: measured anew
    for before in (
        {n: 1.0 for n in kept},
        {**kept, "aten+eager": []},
        dict(list(kept.items())[1:]),
    ):
        model = _classifier(model_folder)
        assert not optimize_for_cpu(model, measure=measure, measured_before=before)[1].recalled
    assert len(calls) == 4


def test_default_probe_times_copies_and_leaves_the_model(model_folder, monkeypatch):
    model = _classifier(model_folder)
    _, untimed = optimize_for_cpu(model)  # a tiny model: not worth timing
    assert untimed.measured_ms == {} and untimed.linears == "aten"
    shapes = []
    model.register_forward_pre_hook(
        lambda module, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)),
        with_kwargs=True,
    )
    # every candidate is timed on at every shape
    monkeypatch.setattr(cpu_path, "_behind_nowhere", lambda ms, baseline: True)
    timed = cpu_path.time_forwards(model, {"a": lambda m: None, "b": cpu_path.use_onednn_linears})
    # one time per shape for each setup
    assert set(timed) == {"a", "b"}
    assert all(len(ms) == len(cpu_path.EXAMPLE_SHAPES) and min(ms) > 0 for ms in timed.values())
    # the copies (which keep the model's hooks) are timed on a sentence and on a batch
    assert set(shapes) == set(cpu_path.EXAMPLE_SHAPES)
    assert not any(isinstance(m, OneDnnLinear) for m in model.modules())


def test_a_setup_behind_the_default_is_not_timed_at_the_next_shapes(model_folder, monkeypatch):
    model = _classifier(model_folder)
    monkeypatch.setattr(cpu_path, "MARGIN", 0.04)
    # "slow" sleeps through each of its forwards: behind the default at the first shape
    slow = lambda m: m.register_forward_pre_hook(lambda *a: time.sleep(0.05))  # noqa: E731
    timed = cpu_path.time_forwards(model, {"a": lambda m: None, "b": lambda m: None, "slow": slow})
    assert len(timed["slow"]) == 1 and timed["slow"][0] > 50
    # "b" (the same model) is timed on while it is behind the default nowhere, which a copy
    # of the default is by chance; either way the default is timed wherever another setup is
    assert len(timed["a"]) == max(len(timed["b"]), 1)
    assert choose(timed, "a") in {"a", "b"}
    # none left but the default: nothing more is timed
    alone = cpu_path.time_forwards(model, {"a": lambda m: None, "slow": slow})
    assert [len(ms) for ms in alone.values()] == [1, 1]


@needs_onednn
def test_onednn_linear_compiles_with_dynamic_shapes():
    torch.manual_seed(0)
    plain = torch.nn.Sequential(torch.nn.Linear(16, 24), torch.nn.GELU(), torch.nn.Linear(24, 8))
    swapped = torch.nn.Sequential(*(OneDnnLinear(m) if type(m) is torch.nn.Linear else m
                                    for m in plain))  # fmt: skip
    compiled = torch.compile(swapped, dynamic=True)
    with torch.inference_mode():
        for shape in ((3, 5, 16), (2, 9, 16)):
            x = torch.randn(shape)
            torch.testing.assert_close(compiled(x), plain(x), rtol=1e-5, atol=1e-6)
        with torch.autocast("cpu", torch.bfloat16):
            assert swapped(x).dtype == plain(x).dtype == torch.bfloat16


@needs_onednn
def test_pipeline_on_onednn_path_matches_transformers(model_folder, monkeypatch):
    _measured_fastest(monkeypatch, "onednn")
    folder = str(model_folder("text-classification"))
    texts = sentences(12, seed=3)
    ours = pipejit.pipeline("text-classification", model=folder, compile=False)
    reference = transformers.pipeline("text-classification", model=folder)
    assert_same(ours(texts, batch_size=4), reference(texts, batch_size=1))
    assert ours.stats()["cpu_path"]["linears"] == "onednn"
    plain = pipejit.pipeline("text-classification", model=folder, compile=False, cpu_path=False)
    assert plain.stats()["cpu_path"] is None


def test_thread_chooser_follows_the_cheaper_count_and_backs_off():
    chooser = ThreadChooser(counts=(2, 1), explore_every=4)
    cost = {2: 10.0, 1: 1.0}  # seconds per token: one thread is faster (a contended machine)
    picks = []
    for _ in range(60):
        n = chooser.pick(single_row=False)
        picks.append(n)
        # a busy machine: the two threads get half the CPU time they would alone
        chooser.record(False, n, cost[n] * 8, tokens=8, cpu_seconds=cost[n] * 8 * n / 2)
    assert picks[:5] == [2, 2, 2, 2, 1]  # fewer threads are tried once it looks busy thrice
    explorations = [i for i, n in enumerate(picks[5:], start=5) if n == 2]
    gaps = [b - a for a, b in zip(explorations, explorations[1:])]
    assert gaps == [4, 8, 16]  # exploring less often while the choice holds
    cost.update({2: 0.1})  # the machine frees up: all threads win again
    for _ in range(300):
        n = chooser.pick(single_row=False)
        chooser.record(False, n, cost[n] * 8, tokens=8)
    assert chooser.best(False) == 2
    assert chooser.best(True) == 2  # single rows are measured apart, none yet


def test_thread_chooser_tries_fewer_threads_only_once_the_machine_looks_busy():
    chooser = ThreadChooser(counts=(2, 1), explore_every=4)
    picks = []
    for _ in range(40):  # alone and steady: another count would cost a compile for nothing
        n = chooser.pick(single_row=False)
        picks.append(n)
        chooser.record(False, n, 1.0, tokens=1, cpu_seconds=2.0)
    assert set(picks) == {2}
    chooser.record(False, 2, 3.0, tokens=1, cpu_seconds=6.0)  # slower, with all its CPU
    assert chooser.pick(single_row=False) == 2  # a recompile, or a longer input: no contention
    brief = ThreadChooser(counts=(2, 1))
    for _ in range(5):  # forwards too short to judge: waking the threads dominates them
        brief.record(False, 2, 0.005, tokens=1, cpu_seconds=0.002)
    assert brief.pick(single_row=False) == 2
    shared = ThreadChooser(counts=(2, 1))
    shared.record(False, 2, 9.0, tokens=1, cpu_seconds=9.0)  # the first forward compiled
    for _ in range(2):
        shared.record(False, 2, 1.0, tokens=1, cpu_seconds=1.2)  # 60% of two threads' time
        assert shared.pick(single_row=False) == 2
    shared.record(False, 2, 1.0, tokens=1, cpu_seconds=1.2)
    assert shared.pick(single_row=False) == 1


def test_thread_chooser_wrap_restores_threads():
    chooser = ThreadChooser(counts=(1,))
    before = torch.get_num_threads()
    seen = []
    wrapped = chooser.wrap(lambda inputs: seen.append(torch.get_num_threads()))
    wrapped({"input_ids": torch.ones(2, 3, dtype=torch.long)})
    assert seen == [1] and torch.get_num_threads() == before
    assert "batch@1" in chooser.to_dict()


def test_autocast_freezes_weights_into_the_compiled_forward():
    from pipejit.engine.runner import Runner

    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(32, 16)

        def forward(self, x):
            return self.linear(x).float()

    def first_output(freeze: bool) -> tuple[torch.Tensor, torch.Tensor]:
        net = Net().eval()
        runner = Runner(
            net,
            compile=True,
            dynamic=True,
            dynamic_dims=(0,),
            autocast=torch.bfloat16,
            freeze=freeze,
        )
        x = torch.randn(3, 32)
        before = runner({"x": x})
        with torch.no_grad():
            net.linear.weight.zero_()  # a frozen forward holds its own (cast, packed) copy
        return before, runner({"x": x})

    before, after = first_output(freeze=True)
    torch.testing.assert_close(after, before)
    before, after = first_output(freeze=False)
    assert not torch.allclose(after, before)


def test_autocast_measures_attention_only(model_folder):
    model = _classifier(model_folder)
    seen = {}

    def measure(m, setups):
        seen.update(setups)
        return {n: [1.0] for n in setups}

    cpu_path.optimize_for_cpu(model, autocast=torch.bfloat16, measure=measure)
    assert seen and not any(n.startswith("onednn") for n in seen)


def test_compiled_bf16_opt_in_with_frozen_weights_agrees_with_transformers(model_folder):
    from pipejit.bench.parity import bf16_agreement

    folder = str(model_folder("feature-extraction"))
    texts = sentences(8, seed=4)
    ours = pipejit.pipeline("feature-extraction", model=folder, autocast="bfloat16")
    expected = transformers.pipeline("feature-extraction", model=folder)(texts, batch_size=1)
    got = ours(texts, batch_size=4)
    assert ours.stats()["compiles"] >= 1 and ours.modules.runner("model").freeze
    assert bf16_agreement(got, expected)["ok"]
    assert bf16_agreement([ours(texts[0])], expected[:1])["ok"]


@pytest.mark.parametrize("guard_modules", [True, False])
def test_unguarded_modules_skip_attribute_checks_but_not_the_thread_count(guard_modules):
    from pipejit.engine.runner import Runner

    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = 2.0

        def forward(self, x):
            return x * self.scale

    graphs = []

    def backend(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    module = Scaled()
    runner = Runner(
        module, compile=True, dynamic=True, backend=backend, guard_modules=guard_modules
    )
    x = torch.ones(3, 4)
    assert runner({"x": x})[0, 0] == 2.0
    module.scale = 3.0  # what the pipeline never does to its own models once compiled
    assert runner({"x": x})[0, 0] == (3.0 if guard_modules else 2.0)
    assert len(graphs) == (2 if guard_modules else 1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if threads > 1 else 2)
    try:
        runner({"x": x})  # the thread count is global state: still checked, compiled anew
    finally:
        torch.set_num_threads(threads)
    assert len(graphs) == (3 if guard_modules else 2)


def test_the_cpu_paths_own_models_go_unguarded_and_others_do_not(model_folder):
    folder = str(model_folder("text-classification"))
    texts = sentences(4, seed=9)
    reference = transformers.pipeline("text-classification", model=folder)
    ours = pipejit.pipeline("text-classification", model=folder)
    assert not ours.modules.guard_modules
    assert_same(ours(texts, batch_size=2), reference(texts, batch_size=1))
    assert pipejit.pipeline(
        "text-classification", model=folder, cpu_path=False
    ).modules.guard_modules
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder)
    handed_in = pipejit.pipeline("text-classification", model=model, tokenizer=reference.tokenizer)
    assert handed_in.modules.guard_modules  # the caller may change their own model


@pytest.mark.parametrize("prepacked", [True, False])
def test_one_row_graphs_compile_all_in_cpp_and_batches_do_not(prepacked):
    import torch._inductor.config as inductor_config
    from torch._inductor.fx_passes import freezing_patterns

    from pipejit.engine.runner import Runner

    seen = []

    def backend(graph_module, example_inputs):
        seen.append(
            (
                inductor_config.cpp_wrapper,
                inductor_config.freezing,
                inductor_config.max_autotune,
                inductor_config.max_autotune_gemm_backends,
                inductor_config.cpp.weight_prepack,
                # inductor's weight-packing pass there, which applies whatever the flag says
                bool(freezing_patterns.pass_patterns[1].patterns),
            )
        )
        return graph_module.forward

    runner = Runner(
        torch.nn.Linear(8, 4),
        compile=True,
        dynamic=True,
        backend=backend,
        one_row_cpp=True,
        one_row_prepacked=prepacked,
    )
    runner({"input": torch.randn(1, 5, 8)})
    runner({"input": torch.randn(3, 5, 8)})
    packs = torch.backends.mkldnn.is_available()  # inductor's patterns pack for oneDNN
    assert seen[0] == (True, True, True, "CPP,ATEN", prepacked, prepacked and packs)
    assert seen[1][:3] == (False, False, False)
    assert inductor_config.cpp.weight_prepack  # inductor's default again
    assert bool(freezing_patterns.pass_patterns[1].patterns) is packs  # the packing pass back
    assert not inductor_config.cpp_wrapper and not inductor_config.freezing  # set around compiles


@pytest.mark.parametrize("limit_of_its_own", [True, False])
def test_every_bucket_compiles_past_dynamos_default_limit(monkeypatch, limit_of_its_own):
    """Through torch.compile's own limit where this torch takes one, else through dynamo's
    global limit patched around each call."""
    from pipejit.engine import runner as runner_module

    if not limit_of_its_own:
        monkeypatch.setattr(runner_module, "compile_limit", lambda limit: ({}, limit))
    compiles = []

    def backend(graph_module, example_inputs):
        compiles.append(graph_module)
        return graph_module.forward

    linear = torch.nn.Linear(4, 2)
    runner = runner_module.Runner(
        linear, compile=True, dynamic=False, backend=backend, max_buckets=12
    )
    rows = range(1, 11)  # ten static shapes, past dynamo's default of 8 graphs
    for batch in rows:
        x = torch.randn(batch, 4)
        torch.testing.assert_close(runner({"input": x}), linear(x))
    assert len(compiles) == len(rows)  # no shape fell back to eager


@pytest.mark.parametrize("prepacked", [True, False])
def test_all_cpp_compiles_time_nothing_and_answer_alike(monkeypatch, tmp_path, prepacked):
    from torch._inductor import select_algorithm

    from pipejit.engine.all_cpp import all_cpp

    if not hasattr(select_algorithm, "add_preprocessing_fn"):
        pytest.skip("this torch has no hook on inductor's GEMM candidates: it times them all")

    class RowThenFirst(torch.nn.Module):
        """A GEMM of two rows, then one of the first row alone (a first-token head)."""

        def __init__(self):
            super().__init__()
            self.body, self.head = torch.nn.Linear(16, 32), torch.nn.Linear(32, 8)

        def forward(self, x):
            return self.head(torch.relu(self.body(x))[:1])

    timed = []  # the rows of every GEMM inductor timed

    def saver(timings, *rest):
        timed.append(int(next(iter(timings)).layout.size[0]))

    # an empty inductor cache: a cached timing would not be timed again
    monkeypatch.setenv(INDUCTOR_CACHE_ENV, str(tmp_path / "inductor"))
    model, x = RowThenFirst().eval(), torch.randn(2, 16)
    select_algorithm.add_feedback_saver(saver)
    try:
        with torch.inference_mode(), all_cpp(True, prepacked):
            out = torch.compile(model)(x)
    finally:
        select_algorithm.get_algorithm_selector_cache().feedback_saver_fns.remove(saver)
    with torch.inference_mode():
        torch.testing.assert_close(out, model(x))
    assert timed == []


@pytest.mark.parametrize("concatenated", [True, False])
def test_all_cpp_compiles_call_one_gemm_for_linears_of_one_input(monkeypatch, concatenated):
    from pipejit.engine import all_cpp
    from tests.engine.concat_linears import library_linear_calls

    if not all_cpp._concatenated_linears():
        pytest.skip("this torch cannot concatenate linears")
    if not concatenated:
        monkeypatch.setattr(all_cpp, "_concatenated_linears", dict)
    assert library_linear_calls() == (1 if concatenated else 3)


def test_all_cpp_gemm_candidates_are_the_library_for_rows_and_the_template_for_one():
    from types import SimpleNamespace

    from torch._inductor.select_algorithm import ExternKernelCaller

    from pipejit.engine.all_cpp import all_cpp, gemm_candidates

    def choices(*size):
        library = object.__new__(ExternKernelCaller)
        library.layout = SimpleNamespace(size=size)
        return [SimpleNamespace(layout=library.layout), library]

    rows, one_row = choices(48, 384), choices(1, 384)
    assert gemm_candidates(rows) == rows  # outside an all-C++ compile: as inductor has them
    with all_cpp(True):
        assert gemm_candidates(rows) == rows[1:]
        assert gemm_candidates(one_row) == one_row[:1]
        assert gemm_candidates(one_row[1:]) == one_row[1:]  # no template offered
        assert gemm_candidates([]) == []


def test_all_cpp_compiles_parse_each_inductor_template_once():
    import jinja2
    from torch._inductor.codegen.common import KernelTemplate

    from pipejit.engine.all_cpp import all_cpp

    source = "{% for r in rows %}{{ r | indent_except_first(1) }};{% endfor %}"
    with all_cpp(True):
        parsed = KernelTemplate._template_from_string(source)
        assert KernelTemplate._template_from_string(source) is parsed
    fresh = jinja2.Environment()
    fresh.filters["indent_except_first"] = KernelTemplate.indent_except_first
    rows = ["a\nb", "c"]
    assert parsed.render(rows=rows) == fresh.from_string(source).render(rows=rows)


def test_a_runner_compiles_one_rows_from_its_one_row_module():
    from pipejit.engine.runner import Runner

    def backend(graph_module, example_inputs):
        return graph_module.forward

    batches, one_row = torch.nn.Linear(8, 4), torch.nn.Linear(8, 4)
    runner = Runner(
        batches,
        compile=True,
        dynamic=True,
        backend=backend,
        one_row_cpp=True,
        one_row_module=one_row,
        guard_modules=False,
    )
    x = torch.randn(3, 5, 8)
    torch.testing.assert_close(runner({"input": x[:1]}), one_row(x[:1]))
    torch.testing.assert_close(runner({"input": x}), batches(x))


@needs_onednn
def test_with_torch_linears_shares_the_weights_and_answers_alike(model_folder):
    model = _classifier(model_folder)
    cpu_path.use_onednn_linears(model)
    plain = cpu_path.with_torch_linears(model)
    assert not any(isinstance(m, cpu_path.OneDnnLinear) for m in plain.modules())
    assert any(isinstance(m, cpu_path.OneDnnLinear) for m in model.modules())
    assert all(t.data_ptr() in _pointers(model) for t in plain.parameters())
    inputs = cpu_path.example_inputs(model, (2, 12))
    with torch.inference_mode():
        torch.testing.assert_close(plain(**inputs).logits, model(**inputs).logits)
    unswapped = _classifier(model_folder)
    assert cpu_path.with_torch_linears(unswapped) is unswapped


def test_a_column_major_copy_shares_all_but_the_linears_weights_and_answers_alike(model_folder):
    model = _classifier(model_folder)
    copied = cpu_path.with_column_major_weights(model)
    linears = [m for m in copied.modules() if type(m) is torch.nn.Linear]
    assert linears and all(m.weight.t().is_contiguous() for m in linears)
    assert all(m.weight.is_contiguous() for m in model.modules() if type(m) is torch.nn.Linear)
    weights = {id(m.weight) for m in linears}
    others = [t for t in copied.parameters() if id(t) not in weights]
    assert others and all(t.data_ptr() in _pointers(model) for t in others)
    inputs = cpu_path.example_inputs(model, (2, 12))
    with torch.inference_mode():
        torch.testing.assert_close(copied(**inputs).logits, model(**inputs).logits)
    assert cpu_path.with_column_major_weights(copied) is copied  # nothing left to lay out


def test_column_major_weights_keep_values_and_ties_and_answer_alike(model_folder):
    folder = model_folder("fill-mask")
    model = transformers.AutoModelForMaskedLM.from_pretrained(folder).eval()
    inputs = cpu_path.example_inputs(model, (2, 12))
    with torch.inference_mode():
        expected = model(**inputs).logits
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    linears = [m for m in model.modules() if type(m) is torch.nn.Linear]
    tied = model.get_output_embeddings()
    assert tied.weight is model.get_input_embeddings().weight
    laid_out = cpu_path.use_column_major_weights(model)
    assert laid_out == len(linears) - 1  # all but the decoder tied to the embeddings
    assert tied.weight is model.get_input_embeddings().weight and tied.weight.is_contiguous()
    for module in linears:
        if module is not tied:
            assert module.weight.t().is_contiguous() and not module.weight.is_contiguous()
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name
    with torch.inference_mode():
        torch.testing.assert_close(model(**inputs).logits, expected, rtol=1e-5, atol=1e-5)


def _pointers(model: torch.nn.Module) -> set[int]:
    return {t.data_ptr() for t in [*model.parameters(), *model.buffers()] if not t.is_mkldnn}


@pytest.mark.parametrize(
    ("fastest", "all_cpp"),
    [
        ("aten+sdpa", True),
        pytest.param("onednn+sdpa", True, marks=needs_onednn),
        (None, False),
    ],
)
def test_one_row_graphs_go_all_cpp_for_measured_models(
    model_folder, monkeypatch, tmp_path, fastest, all_cpp
):
    if fastest is not None:  # else the tiny model is not timed
        _measured_fastest(monkeypatch, fastest)
    folder = str(model_folder("text-classification"))
    ours = pipejit.pipeline("text-classification", model=folder)
    assert ours.modules.one_row_cpp is all_cpp
    # the library of one-row graphs: the one timed faster on the sentence, where both were
    onednn_timed = torch.backends.mkldnn.is_available() and fastest is not None
    sentence = "aten" if onednn_timed and fastest == "aten+sdpa" else "onednn"
    assert ours.modules.one_row_linears == sentence
    runner = ours.modules.runner("model")
    if fastest == "onednn+sdpa":  # one rows compile the same model on torch's linears
        assert runner._compiled_one_row is not None
    else:
        assert runner._compiled_one_row is None
    for half in ({"dtype": "bfloat16"}, {"autocast": "bfloat16"}):
        half_pipeline = pipejit.pipeline("text-classification", model=folder, compile=False, **half)
        assert not half_pipeline.modules.one_row_cpp
    # its frozen oneDNN weights keep the graph out of inductor's cache: not with a cache
    monkeypatch.setenv(INDUCTOR_CACHE_ENV, str(tmp_path / "inductor"))  # not the session's
    cached = pipejit.pipeline("text-classification", model=folder, compile_cache=tmp_path / "c")
    assert not cached.modules.one_row_cpp


@pytest.mark.parametrize(
    "fastest",
    [
        # batches on oneDNN's linears, so that the one-row module on torch's is tested
        pytest.param("onednn+sdpa", marks=needs_onednn),
        # torch's default GEMM faster on the sentence: one rows not prepacked for oneDNN
        pytest.param("aten+sdpa", marks=needs_onednn),
        # batches on column-major weights, one rows on torch's GEMM over them
        pytest.param("aten_colmajor+sdpa", marks=needs_onednn),
        # batches on the default layout, one rows on a column-major copy of the weights
        pytest.param("aten+sdpa/aten_colmajor+sdpa", marks=needs_onednn),
    ],
)
def test_one_row_graphs_all_in_cpp_answer_as_transformers(model_folder, monkeypatch, fastest):
    batches, _, sentence = fastest.partition("/")
    _measured_fastest(monkeypatch, batches, sentence or None)
    folder = str(model_folder("text-classification"))
    texts = sentences(3, seed=11)
    ours = pipejit.pipeline("text-classification", model=folder)
    reference = transformers.pipeline("text-classification", model=folder)
    runner = ours.modules.runner("model")
    assert runner.one_row_cpp and runner.one_row_prepacked is (fastest == "onednn+sdpa")
    one_row_module = runner.one_row_module
    assert (one_row_module is not None) is (runner._compiled_one_row is not None)
    own_module = fastest in ("onednn+sdpa", "aten+sdpa/aten_colmajor+sdpa")
    assert (one_row_module is not None) is own_module

    def column_major(module):
        linears = [m for m in module.modules() if type(m) is torch.nn.Linear]
        assert linears
        return all(m.weight.t().is_contiguous() for m in linears)

    if "aten_colmajor" in fastest:
        assert column_major(runner.model) is (batches == "aten_colmajor+sdpa")
        assert one_row_module is None or column_major(one_row_module)
    for text in texts:
        assert_same(ours(text), reference(text))
    assert_same(ours(texts, batch_size=3), reference(texts, batch_size=1))


def test_single_rows_attending_everywhere_run_without_their_mask(model_folder):
    """A batch of one pads nothing: the model gets no mask (it reads none as every position
    attended) and answers as transformers does; rows of a batch keep theirs."""
    folder = str(model_folder("text-classification"))
    texts = sentences(3, seed=13)
    reference = transformers.pipeline("text-classification", model=folder)
    ours = pipejit.pipeline("text-classification", model=folder, compile=False)
    runner = ours.modules.runner("model")
    model, seen = runner.model, []

    def recording(**inputs):
        seen.append((len(inputs["input_ids"]), "attention_mask" in inputs))
        return model(**inputs)

    runner.model = recording
    for text in texts:
        assert_same(ours(text, top_k=None), reference(text, top_k=None))
    assert seen == [(1, False)] * 3
    seen.clear()
    # one length: one batch (the scheduler splits rows whose padding would be large)
    pair = ["the river ran past the old mill", "the river ran past the new mill"]
    assert_same(ours(pair, batch_size=2), reference(pair, batch_size=1))
    assert seen == [(2, True)]
    assert not pipejit.pipeline(
        "text-classification", model=folder, cpu_path=False
    ).modules.unmasked_single_rows


def test_without_full_mask_drops_only_a_mask_that_attends_everywhere():
    from pipejit.engine.runner import without_full_mask

    ids = torch.tensor([[5, 6, 7]])
    full = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    assert list(without_full_mask(full)) == ["input_ids"]
    padded = {"input_ids": ids, "attention_mask": torch.tensor([[1, 1, 0]])}
    assert without_full_mask(padded) is padded
    assert without_full_mask({"input_ids": ids}) == {"input_ids": ids}


def test_two_models_of_one_class_never_share_a_graph(tmp_path, monkeypatch):
    """Unguarded, frozen graphs of one model class in one process: each pipeline answers
    with its own weights (a shared graph answered with the first model's) and its own
    depth (a shared graph ran the first model's layers)."""
    _measured_fastest(monkeypatch, "aten+sdpa")
    folders = [
        build_model_folder("text-classification", tmp_path / "a", seed=1),
        _deeper(build_model_folder("text-classification", tmp_path / "b", seed=2)),
    ]
    texts = sentences(3, seed=5)
    pipelines = [pipejit.pipeline("text-classification", model=str(f)) for f in folders]
    for folder, ours in zip(folders, pipelines):
        reference = transformers.pipeline("text-classification", model=str(folder))
        assert_same(ours(texts[0], top_k=None), reference(texts[0], top_k=None))
        assert_same(ours(texts, batch_size=3, top_k=None), reference(texts, top_k=None))


def _deeper(folder: Path) -> Path:
    """The model in ``folder`` with one more layer (same widths), saved over it."""
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder)
    config = model.config
    config.num_hidden_layers += 1
    torch.manual_seed(4)
    deeper = type(model)(config).eval()
    deeper.save_pretrained(folder)
    return folder


def test_runner_entries_share_code_only_between_models_of_one_architecture(model_folder):
    from pipejit.engine.runner import own_entry
    from pipejit.tasks.first_token import first_position_only

    folder = model_folder("text-classification")

    def load(**changes):
        return transformers.AutoModelForSequenceClassification.from_pretrained(
            folder, **changes
        ).eval()

    first, second = load(), load()
    assert own_entry(first, False).__code__ is own_entry(second, False).__code__
    assert own_entry(first, True).__code__ is not own_entry(second, True).__code__  # frozen
    deeper = load(num_hidden_layers=first.config.num_hidden_layers + 1)
    assert own_entry(deeper, False).__code__ is not own_entry(first, False).__code__
    other_epsilon = load(layer_norm_eps=1e-3)
    assert own_entry(other_epsilon, False).__code__ is not own_entry(first, False).__code__
    # the attention implementation stays out of the configuration's JSON
    other_attention = load(attn_implementation="eager")
    assert other_attention.config.to_json_string() == first.config.to_json_string()
    assert own_entry(other_attention, False).__code__ is not own_entry(first, False).__code__
    assert first_position_only(second)  # a forward bound to one instance, and hooks
    assert own_entry(second, False).__code__ is not own_entry(first, False).__code__
    x = {"input_ids": torch.tensor([[2, 5, 3]])}
    with torch.inference_mode():  # each entry calls its own module
        torch.testing.assert_close(own_entry(deeper, False)(**x).logits, deeper(**x).logits)
