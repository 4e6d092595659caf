"""The shape policy: pure ladder functions, and the one place batch and length shapes come from."""

import pytest
import torch

from pipejit.engine.config import EngineConfig
from pipejit.engine.shapes import (
    DEFAULT_LENGTH_LADDER,
    ShapePolicy,
    cache_length,
    frame_bucket,
    length_ladder,
    make_ladder,
    power_of_two,
    round_down,
    round_up,
)


def test_make_ladder_sorts_dedupes_and_caps():
    assert make_ladder([64, 16, 16, 32], cap=48) == (16, 32, 48)
    assert make_ladder(DEFAULT_LENGTH_LADDER, cap=128)[-1] == 128
    assert make_ladder([8, 16], cap=None) == (8, 16)
    with pytest.raises(ValueError, match="positive step"):
        make_ladder([0, -1])


@pytest.mark.parametrize(("value", "expected"), [(1, 16), (16, 16), (17, 32), (64, 64), (65, 65)])
def test_round_up(value, expected):
    assert round_up(value, (16, 32, 64)) == expected


@pytest.mark.parametrize(("value", "expected"), [(1, 1), (3, 2), (7, 4), (8, 8), (100, 8)])
def test_round_down(value, expected):
    assert round_down(value, (1, 2, 4, 8)) == expected


def test_round_up_rejects_empty_sizes():
    with pytest.raises(ValueError, match="below 1"):
        round_up(0, (16,))


def test_round_down_never_returns_a_step_above_its_value():
    assert round_down(3, (2, 4)) == 2
    with pytest.raises(ValueError, match="below the smallest step 2"):
        round_down(1, (2, 4))


def test_default_length_ladder_coarsens_with_length():
    ladder = length_ladder(1024)
    assert ladder[:3] == (8, 16, 24) and ladder[-3:] == (896, 960, 1024)
    steps = {b - a for a, b in zip(ladder, ladder[1:])}
    assert steps == {8, 16, 32, 64}
    assert length_ladder(512) == DEFAULT_LENGTH_LADDER and DEFAULT_LENGTH_LADDER[-1] == 512


def policy(**options) -> ShapePolicy:
    return EngineConfig.build(torch.device("cpu"), **options).shape_policy(None, 512)


def test_batch_buckets_mean_the_batch_sizes_under_every_shapes_mode():
    # default: every size under one dynamic graph, powers of two under per-shape compiles
    assert policy().batch_steps(6) == (1, 2, 3, 4, 5, 6)
    assert policy(shapes="static").batch_steps(6) == (1, 2, 4, 6)
    assert policy(compile=False, shapes="static").batch_steps(3) == (1, 2, 3)
    # given: exactly those sizes (and 1), cut at the largest batch, whatever the shapes
    for shapes in ("dynamic", "static"):
        assert policy(shapes=shapes, batch_buckets=(4, 16)).batch_steps(32) == (1, 4, 16, 32)
        assert policy(shapes=shapes, batch_buckets=(4, 16)).batch_steps(8) == (1, 4, 8)


def test_batch_buckets_decide_the_batches_a_pipeline_runs(model_folder):
    import pipejit
    from tests.models import sentences

    pj = pipejit.pipeline(
        "text-classification",
        model=str(model_folder("text-classification")),
        compile=False,
        batch_buckets=(4,),
        length_buckets=(128,),
    )
    pj(sentences(7, seed=2), batch_size=8)
    assert sorted(shape[0] for shape in pj.stats()["buckets"]) == [1, 4]
    assert pj.stats()["batches"] == 4  # 4 + 1 + 1 + 1: no batch of 7 or 2


def test_shape_policy_buckets_mid_batch_lengths_only_for_static_compiles():
    assert policy(shapes="static").padded_length(100) == 128
    assert policy().padded_length(100) == 100
    assert policy(shapes="static").decode_rows(3) == 4
    assert policy(compile=False).decode_rows(3) == 3
    assert cache_length(10) == 64 and cache_length(65) == 128
    assert frame_bucket(33) == 64 and power_of_two(5) == 8


@pytest.mark.parametrize(
    "options, message",
    [
        ({"shapes": "wavy"}, "shapes must be one of"),
        ({"autocast": "int8"}, "autocast must be one of"),
        ({"batch_buckets": (0, 2)}, "batch_buckets must be a sequence of positive ints"),
        ({"length_buckets": "long"}, "length_buckets must be a sequence of positive ints"),
        ({"max_batch_size": 0}, "max_batch_size must be a positive int"),
        ({"sort_window": -1}, "sort_window must be a positive int"),
        ({"batch_size": 0}, "batch_size must be a positive int"),
        ({"cuda_graphs": "yes"}, "cuda_graphs must be one of"),
        ({"dtype": "int4"}, "dtype must be one of"),
        ({"dtype": "float16", "autocast": "bfloat16"}, "pass one of them"),
    ],
)
def test_engine_options_are_checked_in_one_place(options, message):
    with pytest.raises(ValueError, match=message):
        EngineConfig.build(torch.device("cpu"), **options)


def test_graphing_compile_modes_and_pipejit_graphs_exclude_each_other():
    cuda = torch.device("cuda")
    config = EngineConfig.build(cuda, compile_mode="reduce-overhead")
    assert not config.cuda_graphs  # "auto" leaves the graphs to the compile mode
    assert EngineConfig.build(cuda).cuda_graphs
    with pytest.raises(ValueError, match="records CUDA graphs of its own"):
        EngineConfig.build(cuda, compile_mode="reduce-overhead", cuda_graphs=True)
