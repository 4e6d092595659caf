"""text-to-audio parity with transformers.pipeline on tiny VITS models built offline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

import pipejit
from pipejit.engine.shapes import frame_bucket
from tests.parity import TOLERANCE, pipeline_pairs
from tests.tts_models import build_vits_folder

# mixed lengths: several share a text bucket, so batches hold padded rows of
# different frame counts, and HiFi-GAN's tails would show any leak of padding
TEXTS = [
    "hello world",
    "a",
    "The quick brown fox jumps over the lazy dog!",
    "it's me",
    "zebra crossing at noon",
    "hi there",
    "one two three four five six seven",
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("tts")
    return {
        "vits": str(build_vits_folder(root / "vits")),
        "speakers": str(build_vits_folder(root / "speakers", speakers=3, seed=1)),
        "noisy": str(build_vits_folder(root / "noisy", speakers=3, seed=1, noise_scale=0.667)),
    }


@pytest.fixture(scope="module")
def pair(folders):
    return pipeline_pairs("text-to-audio", folders)


def assert_audio_same(actual, expected) -> None:
    """Same keys, same sampling rate, waveforms of the same shape and dtype, equal
    within fp32 tolerance."""
    rel, abs_ = TOLERANCE[torch.float32]
    assert list(actual) == list(expected)
    assert actual["sampling_rate"] == expected["sampling_rate"]
    assert type(actual["sampling_rate"]) is type(expected["sampling_rate"])
    assert isinstance(actual["audio"], np.ndarray)
    assert actual["audio"].dtype == expected["audio"].dtype
    assert actual["audio"].shape == expected["audio"].shape
    np.testing.assert_allclose(actual["audio"], expected["audio"], rtol=rel, atol=abs_)


def assert_all_same(actual, expected) -> None:
    assert isinstance(actual, list) and len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert_audio_same(a, e)


def test_single_text(pair):
    reference, fast = pair("vits")
    expected = reference(TEXTS[2])
    assert expected["audio"].ndim == 1 and expected["audio"].size > 100
    assert_audio_same(fast(TEXTS[2]), expected)


@pytest.mark.parametrize("batch_size", [1, 4, None])
def test_list_of_mixed_lengths(pair, batch_size):
    reference, fast = pair("vits")
    expected = [reference(text) for text in TEXTS]
    assert len({e["audio"].shape for e in expected}) >= 4
    assert_all_same(fast(TEXTS, batch_size=batch_size), expected)


def test_one_batch_of_rows_padded_to_different_lengths(pair):
    """Texts of one bucket whose audio lengths differ run as one batch, equal to batch 1."""
    reference, fast = pair("vits")
    texts = ["good morning", "see you later", "how are you ok", "what fine day"]
    expected = [reference(text) for text in texts]
    assert len({e["audio"].shape for e in expected}) >= 3
    before = fast.stats()["batches"]
    assert_all_same(fast(texts, batch_size=4), expected)
    stats = fast.stats()
    assert stats["batches"] - before == 1
    assert stats["padded_tokens"] > stats["real_tokens"]


def test_stream_keeps_input_order(pair):
    reference, fast = pair("vits")
    expected = [reference(text) for text in TEXTS]
    assert_all_same(list(fast(iter(TEXTS), batch_size=3)), expected)


@pytest.mark.parametrize(
    "forward_params",
    [
        {"speaker_id": 0},
        {"speaker_id": 2},
        {"speaker_id": 1, "speaking_rate": 2.0},
        {"speaking_rate": 0.5},
        {},
    ],
)
def test_forward_params(pair, forward_params):
    reference, fast = pair("speakers")
    expected = [reference(text, forward_params=forward_params) for text in TEXTS]
    actual = fast(TEXTS, batch_size=4, forward_params=forward_params)
    assert_all_same(actual, expected)


def test_speakers_and_rate_change_the_audio(pair):
    _, fast = pair("speakers")
    first = fast(TEXTS[0], forward_params={"speaker_id": 0})["audio"]
    other = fast(TEXTS[0], forward_params={"speaker_id": 2})["audio"]
    slow = fast(TEXTS[0], forward_params={"speaker_id": 0, "speaking_rate": 0.5})["audio"]
    assert first.shape != other.shape or not np.allclose(first, other)
    assert slow.size > first.size


def test_preprocess_params_reach_the_tokenizer(pair):
    reference, fast = pair("vits")
    options = {"preprocess_params": {"normalize": False}}
    expected = reference("Hello World", **options)
    assert expected["audio"].shape != reference("Hello World")["audio"].shape
    assert_audio_same(fast("Hello World", **options), expected)


def test_sampling_rate_and_task_inference(folders):
    reference = transformers.pipeline("text-to-speech", model=folders["vits"], sampling_rate=16000)
    inferred = pipejit.pipeline(model=folders["vits"], compile=False)
    assert inferred.task.name == "text-to-audio"
    assert inferred("a")["sampling_rate"] == 8000
    fast = pipejit.pipeline(
        "text-to-speech", model=folders["vits"], compile=False, sampling_rate=16000
    )
    assert_audio_same(fast(TEXTS[0]), reference(TEXTS[0]))
    assert fast(TEXTS[0])["sampling_rate"] == 16000


def test_compiled_per_bucket(folders, counting_backend):
    reference = transformers.pipeline("text-to-audio", model=folders["speakers"])
    fast = pipejit.pipeline(
        "text-to-audio",
        model=folders["speakers"],
        compile_backend=counting_backend,
        shapes="static",
    )
    params = {"forward_params": {"speaker_id": 1}}
    expected = [reference(text, **params) for text in TEXTS]
    assert_all_same(fast(TEXTS, batch_size=4, **params), expected)
    modules = fast.stats()["modules"]
    buckets = len(modules["text"]["buckets"]) + len(modules["synthesis"]["buckets"])
    assert counting_backend.graphs == buckets
    # the same texts again compile nothing
    assert_all_same(fast(TEXTS, batch_size=4, **params), expected)
    assert counting_backend.graphs == buckets


def test_noise_is_reproducible_and_distributed_as_the_reference(pair):
    """With noise, the draws differ from the reference's but follow its distribution:
    same lengths (durations are deterministic here), same spread over seeds, means
    that converge, and one seed gives one output."""
    reference, fast = pair("noisy")
    texts = ["hello world", "good morning"]
    ours, theirs = [], []
    for seed in range(16):
        torch.manual_seed(seed)
        theirs.append([reference(text)["audio"] for text in texts])
        torch.manual_seed(seed)
        ours.append([out["audio"] for out in fast(texts, batch_size=2)])
    torch.manual_seed(3)
    assert all(np.array_equal(a["audio"], b) for a, b in zip(fast(texts), ours[3]))
    for i in range(len(texts)):
        mine = np.stack([draws[i] for draws in ours])
        ref = np.stack([draws[i] for draws in theirs])
        assert mine.shape == ref.shape
        one_draw_apart = np.abs(ref[0] - ref[1]).mean()
        assert one_draw_apart > 0.1 and not np.allclose(mine[0], mine[1])
        assert np.abs(mine.mean(0) - ref.mean(0)).mean() < 0.5 * one_draw_apart
        assert mine.std(0).mean() == pytest.approx(ref.std(0).mean(), rel=0.15)


@pytest.mark.slow
def test_inductor_compiled(folders):
    """The default compile (inductor) on both modules, without falling back to eager."""
    reference = transformers.pipeline("text-to-audio", model=folders["speakers"])
    fast = pipejit.pipeline("text-to-audio", model=folders["speakers"])
    params = {"forward_params": {"speaker_id": 2}}
    texts = TEXTS[:4]
    expected = [reference(text, **params) for text in texts]
    assert_all_same(fast(texts, batch_size=4, **params), expected)
    assert fast.stats()["compile_failed"] is None
    assert fast.modules.runner("text").compiled and fast.modules.runner("synthesis").compiled


@pytest.mark.cuda
def test_cuda_runs_without_graphs(folders, monkeypatch):
    """On CUDA the engine leaves this task uncaptured (its run reads durations on the
    host) and the compiled modules still match the reference (convolutions in full
    fp32: TF32 would round the two sides' differently padded inputs differently)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    reference = transformers.pipeline("text-to-audio", model=folders["speakers"], device="cuda")
    fast = pipejit.pipeline("text-to-audio", model=folders["speakers"], device="cuda")
    assert fast.graphs is None
    params = {"forward_params": {"speaker_id": 1}}
    expected = [reference(text, **params) for text in TEXTS]
    assert_all_same(fast(TEXTS, batch_size=4, **params), expected)


@pytest.mark.parametrize(
    ("inputs", "kwargs", "error", "match"),
    [
        ("", {}, ValueError, "no character the tokenizer knows"),
        ("?!", {}, ValueError, "no character the tokenizer knows"),
        (123, {}, ValueError, "got int"),
        (["hello", 5], {}, TypeError, "input 1: .*takes a string"),
        ("hello", {"top_k": 2}, TypeError, "unexpected parameter"),
        ("hello", {"forward_params": {"noise": 1}}, TypeError, "unexpected forward_params"),
        ("hello", {"generate_kwargs": {"max_new_tokens": 5}}, ValueError, "generate_kwargs"),
        ("hello", {"forward_params": {"speaking_rate": 0}}, ValueError, "speaking_rate"),
        ("a" * 600, {}, ValueError, "more than the model's maximum of 1024; split it"),
    ],
)
def test_bad_input(pair, inputs, kwargs, error, match):
    _, fast = pair("vits")
    with pytest.raises(error, match=match):
        fast(inputs, **kwargs)


def test_bad_speaker(pair):
    _, fast = pair("speakers")
    with pytest.raises(ValueError, match="range 0-2"):
        fast("hello", forward_params={"speaker_id": 3})


def test_frame_bucket():
    assert [frame_bucket(n) for n in (1, 32, 33, 100, 257, 1000)] == [32, 32, 64, 128, 288, 1024]
    for n in range(1, 5000, 7):
        assert n <= frame_bucket(n) <= max(n + 31, n * 1.125) and frame_bucket(n) % 32 == 0
    with pytest.raises(ValueError):
        frame_bucket(0)
