"""Each transformers internal behind ``pipejit.compat``: it works on the installed
transformers, and a transformers without it fails with a message naming it."""

import pytest
import torch
import transformers
from transformers import CompileConfig, GenerationConfig

from pipejit import compat
from tests.audio_models import build_ctc
from tests.generation_models import build_generation_folder


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    folder = build_generation_folder("gpt2", tmp_path_factory.mktemp("gpt2"))
    return transformers.pipeline("text-generation", model=str(folder))


def test_sanitize_parameters_splits_by_step(generator):
    pre, forward, post = compat.sanitize_parameters(
        generator, max_new_tokens=3, return_full_text=False
    )
    assert forward.get("max_new_tokens") == 3
    assert post.get("return_type") is not None
    assert isinstance(pre, dict)


def test_generation_set_up(generator):
    generate = compat.prepare_generate_kwargs(generator, {"max_new_tokens": 4})
    config, unused = compat.prepare_generation_config(generator.model, None, **generate)
    assert isinstance(config, GenerationConfig) and config.max_new_tokens == 4
    assert unused == {}


def test_compile_everywhere():
    config = compat.compile_everywhere(CompileConfig(fullgraph=True))
    assert config._compile_all_devices is True


def test_feature_lengths(tmp_path):
    model = transformers.AutoModelForCTC.from_pretrained(build_ctc(tmp_path))
    lengths = compat.feature_lengths(model, torch.tensor([16000]))
    assert int(lengths[0]) > 0


class Bare:
    """An object without any of the internals."""


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: compat.sanitize_parameters(Bare()), "Bare._sanitize_parameters"),
        (
            lambda: compat.prepare_generation_config(Bare(), None),
            "Bare._prepare_generation_config",
        ),
        (lambda: compat.compile_everywhere(Bare()), "Bare._compile_all_devices"),
        (lambda: compat.feature_lengths(Bare(), None), "Bare._get_feat_extract_output_lengths"),
    ],
)
def test_a_missing_internal_is_named(call, name):
    with pytest.raises(RuntimeError, match=rf"has no {name}.*install transformers>=5\.17,<6"):
        call()


def test_generate_kwargs_without_the_internal_use_the_pipelines_config():
    """transformers 5.17's pipelines keep their generation defaults in generation_config."""

    class Older:
        generation_config = GenerationConfig(max_new_tokens=7)

    prepared = compat.prepare_generate_kwargs(Older(), {"max_new_tokens": 4})
    assert prepared == {"generation_config": Older.generation_config, "max_new_tokens": 4}
    assert compat.prepare_generate_kwargs(Bare(), {"top_k": 3}) == {"top_k": 3}
