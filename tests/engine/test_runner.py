"""The compiled runner under dynamic shapes: a length some code specialises recompiles
instead of failing, the compile settings hold for every compile and cost the calls that
compile nothing nothing, and the compile options each kind of runner gets."""

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
        assert unguarded == {"guard_filter_fn": torch.compiler.skip_guard_on_all_nn_modules_unsafe}
    assert compile_options(False, True, "inductor")["shape_padding"] is False
