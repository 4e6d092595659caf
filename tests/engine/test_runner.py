"""The compiled runner under dynamic shapes: a length some code specialises recompiles
instead of failing, the compile settings hold for every compile and cost the calls that
compile nothing nothing, the compile options each kind of runner gets, and the guards a runner
without module guards keeps."""

import pytest
import torch

from pipejit.engine import runner as runner_module
from pipejit.engine.runner import Runner, compile_options


class SpecialisesLength(torch.nn.Module):
    """Branches on one exact length, as inductor's matmul padding did on an H200: a graph
    compiled at that length holds it as a constant."""

    def forward(self, input_ids, attention_mask):
        x = input_ids.float() * attention_mask
        if x.shape[1] == 32:
            x = x * 2
        return x.sum(-1)


def test_a_length_specialised_by_the_model_recompiles_rather_than_running_eager():
    torch.compiler.reset()
    runner = Runner(SpecialisesLength(), compile=True, dynamic=True, backend="eager")
    for length in (16, 24, 32, 64):
        ids = torch.arange(2 * length).reshape(2, length)
        got = runner({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
        expected = ids.float().sum(-1) * (2 if length == 32 else 1)
        torch.testing.assert_close(got, expected)
    assert runner.stats.compile_failed is None and runner.compiled


def test_compile_settings_wrap_each_compile_and_no_other_call(monkeypatch):
    torch.compiler.reset()
    frozen_at_compile = []

    def backend(graph, example_inputs):
        frozen_at_compile.append(torch._inductor.config.freezing)
        return graph.forward

    real_frozen, settings_entered = runner_module.frozen, []

    def counted_frozen(enabled):
        settings_entered.append(enabled)
        return real_frozen(enabled)

    monkeypatch.setattr(runner_module, "frozen", counted_frozen)
    runner = Runner(SpecialisesLength(), compile=True, dynamic=True, backend=backend, freeze=True)
    for length in (16, 24, 24, 32, 64):
        ids = torch.arange(2 * length).reshape(2, length)
        got = runner({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
        torch.testing.assert_close(got, ids.float().sum(-1) * (2 if length == 32 else 1))
    # the first call compiled, and 32, a later call, recompiled: both frozen; the other
    # calls ran the graph as it was, without entering the settings
    assert frozen_at_compile == [True, True]
    assert settings_entered == [True, True]
    assert runner.stats.compile_failed is None and sorted(runner.stats.compile_seconds) == [
        (2, 16),
        (2, 32),
    ]
    assert not torch._inductor.config.freezing


def test_dynamic_inductor_runners_compile_without_matmul_padding():
    assert compile_options(guard_modules=True, dynamic=False, backend="inductor") is None
    assert compile_options(True, True, "inductor") == {"shape_padding": False}
    assert compile_options(True, True, "eager") is None  # inductor's options are its own
    unguarded = compile_options(guard_modules=False, dynamic=False, backend="inductor")
    if hasattr(torch.compiler, "skip_guard_on_all_nn_modules_unsafe"):
        assert set(unguarded) == {"guard_filter_fn"}
    assert compile_options(False, True, "inductor")["shape_padding"] is False


SCALE = 2.0  # a module-level name a model's code reads


class ReadsAModuleLevelName(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)

    def forward(self, x):
        return self.linear(x) * SCALE


def test_unguarded_runners_check_their_inputs_and_global_state_only(monkeypatch):
    if not hasattr(torch.compiler, "skip_guard_on_all_nn_modules_unsafe"):
        pytest.skip("this torch filters no guards")
    torch.compiler.reset()
    real, decided = runner_module._inputs_and_global_state_guards, []

    def recorded(entries):
        kept = real(entries)
        for entry, keep in zip(entries, kept):
            decided.append((entry.guard_type, entry.is_global, keep))
        return kept

    monkeypatch.setattr(runner_module, "_inputs_and_global_state_guards", recorded)
    model = ReadsAModuleLevelName()
    runner = Runner(model, compile=True, dynamic=False, backend="eager", guard_modules=False)
    x = torch.randn(3, 4)
    torch.testing.assert_close(runner({"x": x}), model(x))
    kept = {(kind, is_global) for kind, is_global, keep in decided if keep}
    dropped = {(kind, is_global) for kind, is_global, keep in decided if not keep}
    assert ("TENSOR_MATCH", False) in kept  # the input
    assert ("GLOBAL_STATE", False) in kept  # grad mode, autocast, threads
    assert not any(is_global for _, is_global in kept)
    assert any(is_global for _, is_global in dropped)  # SCALE, torch's functions
    # the input's guard still tells shapes apart: another batch compiles its own graph
    more = torch.randn(5, 4)
    torch.testing.assert_close(runner({"x": more}), model(more))
    assert sorted(runner.stats.compile_seconds) == [(3, 4), (5, 4)]
