"""automatic-speech-recognition with a Whisper-like encoder-decoder, at parity with transformers."""

import pytest
import torch
import transformers
from torch._dynamo.utils import counters

import pipejit
from pipejit.tasks import speech_recognition_seq2seq
from pipejit.tasks.speech_recognition_seq2seq import SpeechRecognitionSeq2Seq
from tests.parity import assert_same
from tests.whisper_models import SAMPLING_RATE, build_whisper_folder, clip

TASK = "automatic-speech-recognition"
# shorter than, about and longer than the tiny model's 10-second window
CLIPS = [clip(seconds, seed) for seed, seconds in enumerate([3, 7.5, 1.5, 9])]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return {
        "multilingual": build_whisper_folder(tmp_path_factory.mktemp("whisper")),
        "english": build_whisper_folder(tmp_path_factory.mktemp("whisper_en"), multilingual=False),
    }


@pytest.fixture(scope="module")
def pair(folders):
    folder = str(folders["multilingual"])
    return transformers.pipeline(TASK, model=folder), pipejit.pipeline(model=folder, compile=False)


def expected(reference, clips, **kwargs):
    """transformers' output for each clip on its own (its default batch size)."""
    return [reference(c, **kwargs) for c in clips]


def test_whisper_is_served_by_the_seq2seq_class(pair):
    _, pj = pair
    assert isinstance(pj.task, SpeechRecognitionSeq2Seq)
    assert not pj.task.capturable


@pytest.mark.parametrize("batch_size", [1, 3, None])
def test_mixed_durations_batched_keep_input_order(pair, batch_size):
    ref, pj = pair
    got = pj(CLIPS, batch_size=batch_size)
    assert_same(got, expected(ref, CLIPS))
    assert len({out["text"] for out in got}) > 1  # the tiny model's transcripts vary


def test_single_clip_and_dict_input(pair):
    ref, pj = pair
    assert_same(pj(CLIPS[0]), ref(CLIPS[0]))
    item = {"raw": CLIPS[1], "sampling_rate": SAMPLING_RATE, "id": 7}
    assert_same(pj(dict(item)), ref(dict(item)))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"return_timestamps": True},
        {"return_timestamps": "word"},
        {"generate_kwargs": {"language": "fr", "task": "translate"}},
        {"generate_kwargs": {"language": "de"}, "return_timestamps": True},
        {"return_language": True},
        {"generate_kwargs": {"num_beams": 2}},
        {"max_new_tokens": 6},
    ],
)
def test_generation_options(pair, kwargs):
    ref, pj = pair
    got = pj(CLIPS[:4], batch_size=4, **kwargs)
    assert_same(got, expected(ref, CLIPS[:4], **kwargs))
    if "return_timestamps" in kwargs:
        assert all("chunks" in out for out in got)


@pytest.mark.parametrize(
    "chunking",
    [
        {"chunk_length_s": 4},
        {"chunk_length_s": 4, "stride_length_s": (0.5, 1.0), "return_timestamps": True},
    ],
)
def test_chunks_of_all_inputs_batched_together(pair, chunking):
    ref, pj = pair
    long = [clip(14, 11), CLIPS[1]]
    got = pj(long, batch_size=8, **chunking)
    assert_same(got, expected(ref, long, **chunking))
    assert pj.task.preprocess(long[0], pj.task.parse_params(chunking)).__len__() > 2


def test_long_audio_without_chunking_runs_whisper_long_form(pair):
    ref, pj = pair
    long = [clip(23, 12), clip(23, 13), CLIPS[0]]
    assert_same(pj(long, batch_size=3), expected(ref, long))


def test_english_only_model_has_no_language_token(folders):
    folder = str(folders["english"])
    ref = transformers.pipeline(TASK, model=folder)
    pj = pipejit.pipeline(model=folder, compile=False)
    assert_same(pj(CLIPS, batch_size=4), expected(ref, CLIPS))


@pytest.fixture
def compile_on_cpu(monkeypatch):
    """Compiled decoding, which pipejit keeps to CUDA by default, on this CPU."""
    monkeypatch.setattr(speech_recognition_seq2seq, "COMPILE_DEVICES", ("cuda", "cpu"))


def test_cpu_decodes_eager_by_default(folders):
    pj = pipejit.pipeline(model=str(folders["multilingual"]), compile=True)
    counters.clear()
    pj(CLIPS[:2], batch_size=2)
    assert counters["stats"]["unique_graphs"] == 0
    stats = pj.stats()
    # the engine ran and counted generate(): encoder batches and decode steps, no compile
    assert stats["batches"] >= 1 and stats["decode_steps"] > 0 and stats["compiles"] == 0


def test_compiled_decoding_matches_and_compiles_per_batch_bucket(folders, compile_on_cpu):
    folder = str(folders["multilingual"])
    ref = transformers.pipeline(TASK, model=folder)
    pj = pipejit.pipeline(model=folder, compile=True)
    counters.clear()
    pj.warmup(batch_sizes=[4])  # one window of silence, the batch filled to 4
    graphs = counters["stats"]["unique_graphs"]
    # the encoder (language detection calls it once more) and the one-token step
    assert 2 <= graphs <= 4
    assert_same(pj(CLIPS, batch_size=4), expected(ref, CLIPS))
    stats = pj.stats()
    assert stats["compile_failed"] is None
    # compiles are counted per decode batch size: the warmup's 4 rows
    assert stats["modules"]["whisper"]["compiled_shapes"] == [("step", 4)]
    assert stats["decode_steps"] > 0
    assert counters["stats"]["unique_graphs"] == graphs
    # other durations and batch sizes that fill to the same sizes: no new graph
    others = [clip(seconds, 20 + seed) for seed, seconds in enumerate([2, 6, 8])]
    assert_same(pj(others, batch_size=3), expected(ref, others))
    assert counters["stats"]["unique_graphs"] == graphs


def test_compile_failure_falls_back_to_eager(folders, compile_on_cpu):
    folder = str(folders["multilingual"])

    def broken(graph_module, example_inputs):
        raise RuntimeError("no compiler here")

    pj = pipejit.pipeline(model=folder, compile=True, compile_backend=broken)
    ref = transformers.pipeline(TASK, model=folder)
    with pytest.warns(RuntimeWarning, match="decoding eager"):
        got = pj(CLIPS[:2], batch_size=2)
    assert_same(got, expected(ref, CLIPS[:2]))
    assert "no compiler here" in pj.stats()["compile_failed"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"return_timestamps": "char"}, "char"),
        ({"chunk_length_s": -1}, "chunk_length_s must be a positive number"),
        ({"stride_length_s": "wide", "chunk_length_s": 4}, "stride_length_s"),
        ({"foo": 1}, "foo"),
        ({"generate_kwargs": {"language": "xx"}}, "Unsupported language"),
    ],
)
def test_bad_parameters_are_named(pair, kwargs, message):
    _, pj = pair
    with pytest.raises(ValueError, match=message):
        pj(CLIPS[0], **kwargs)


def test_bad_inputs_are_numbered(pair):
    _, pj = pair
    with pytest.raises(ValueError, match="input 1: 'missing.wav' is not an existing audio file"):
        pj([CLIPS[0], "missing.wav"])
    with pytest.raises(TypeError, match="an audio input must be"):
        pj([CLIPS[0], 3.5])
    with pytest.raises(ValueError, match="empty|zero"):
        pj(torch.zeros(0).numpy())
