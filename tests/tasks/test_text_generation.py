"""text-generation parity with transformers.pipeline on tiny GPT-2-like and Llama-like models."""

from __future__ import annotations

import pytest
import torch
import transformers
from transformers import RepetitionPenaltyLogitsProcessor

import pipejit
from pipejit.tasks.token_choice import penalize_repeats
from tests.generation_models import build_generation_folder
from tests.parity import pipeline_pairs

# prompts of close lengths share a length bucket, so batches hold left-padded rows
PROMPTS = [
    "the",
    "the movie was good and the music was great",
    "john went to the bank and said hello to mary",
    "paris london berlin tokyo new york city river",
    "the food was bad",
    "a",
    "the team won the match",
]
CHAT = [
    {"role": "system", "content": "you are funny"},
    {"role": "user", "content": "tell me about the movie"},
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("generation")
    return {
        "gpt2": str(build_generation_folder("gpt2", root / "gpt2")),
        "llama": str(build_generation_folder("llama", root / "llama")),
        "defaults": str(
            build_generation_folder(
                "llama", root / "defaults", generation={"max_new_tokens": 7, "do_sample": False}
            )
        ),
    }


@pytest.fixture(scope="module")
def pair(folders):
    return pipeline_pairs("text-generation", folders)


def expected(reference, inputs, **kwargs):
    return [reference(item, **kwargs) for item in inputs]


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_greedy_batched_matches_batch_one_reference(pair, kind):
    reference, ours = pair(kind)
    kwargs = dict(do_sample=False, max_new_tokens=16)
    assert ours(PROMPTS, batch_size=4, **kwargs) == expected(reference, PROMPTS, **kwargs)
    assert ours(PROMPTS[0], **kwargs) == reference(PROMPTS[0], **kwargs)


def test_rows_of_a_batch_are_left_padded_and_stop_on_eos(pair):
    reference, ours = pair("llama")
    # the llama-like model ends some prompts early with EOS; batches mix stopped rows
    kwargs = dict(do_sample=False, max_new_tokens=40, return_tensors=True)
    want = expected(reference, PROMPTS, **kwargs)
    assert ours(PROMPTS, batch_size=8, **kwargs) == want
    lengths = {len(out[0]["generated_token_ids"]) for out in want}
    assert len(lengths) > 1


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(return_full_text=False),
        dict(return_tensors=True),
        dict(return_text=True),
        dict(repetition_penalty=1.7),
        dict(stop_sequence=["we", "o"]),
        dict(prefix="the story of "),
        dict(max_length=40),
        dict(generation_config=transformers.GenerationConfig(repetition_penalty=1.2)),
    ],
    ids=lambda k: next(iter(k)),
)
def test_parameters(pair, kwargs):
    reference, ours = pair("gpt2")
    kwargs = dict(do_sample=False, max_new_tokens=16, **kwargs)
    if "max_length" in kwargs:
        del kwargs["max_new_tokens"]
    assert ours(PROMPTS, batch_size=4, **kwargs) == expected(reference, PROMPTS, **kwargs)


def test_model_generation_config_gives_the_defaults(pair):
    reference, ours = pair("defaults")
    got = ours(PROMPTS[:3])
    assert got == expected(reference, PROMPTS[:3])
    assert all(len(reference.tokenizer(g[0]["generated_text"]).input_ids) > 7 for g in got)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_chat_messages(pair, kind):
    reference, ours = pair(kind)
    kwargs = dict(do_sample=False, max_new_tokens=12)
    assert ours(CHAT, **kwargs) == reference(CHAT, **kwargs)
    prefilled = [*CHAT, {"role": "assistant", "content": "the movie"}]
    chats = [CHAT, prefilled]
    assert ours(chats, batch_size=2, **kwargs) == reference(chats, **kwargs)
    streamed = ours(iter(chats), batch_size=2, **kwargs)
    assert list(streamed) == reference(chats, **kwargs)
    for flag in (True, False):
        got = ours(prefilled, continue_final_message=flag, **kwargs)
        assert got == reference(prefilled, continue_final_message=flag, **kwargs)


def test_decode_step_compiles_once_per_batch_bucket(folders, counting_backend):
    reference = transformers.pipeline("text-generation", model=folders["gpt2"])
    ours = pipejit.pipeline(
        "text-generation", model=folders["gpt2"], compile=True, compile_backend=counting_backend
    )
    kwargs = dict(do_sample=False, max_new_tokens=10)
    assert ours(PROMPTS, batch_size=4, **kwargs) == expected(reference, PROMPTS, **kwargs)
    stats = ours.stats()
    assert stats["compile_failed"] is None
    # the engine counted the decoder: its prefills, its steps and one compile per shape
    assert stats["batches"] >= 1 and stats["decode_steps"] > 0
    first = counting_backend.graphs
    assert first == stats["compiles"] >= 1
    # other lengths and budgets: a new graph only for a batch size not run before
    longer = [p + " and the city" for p in PROMPTS]
    ours(longer, batch_size=4, **dict(kwargs, max_new_tokens=14))
    shapes = ours.stats()["modules"]["lm"]["compiled_shapes"]
    assert counting_backend.graphs == len(shapes)
    assert {rows for _, rows, _ in shapes} <= {1, 2, 4}
    assert {slots for _, _, slots in shapes} == {64}


def test_repetition_penalty_matches_transformers_processor():
    torch.manual_seed(0)
    logits = torch.randn(3, 50)
    seen = torch.randint(0, 50, (3, 12))
    seen[0, :4] = -1
    processor = RepetitionPenaltyLogitsProcessor(1.3)
    want = torch.stack(
        [processor(row[row >= 0][None], logits[i : i + 1].clone())[0] for i, row in enumerate(seen)]
    )
    torch.testing.assert_close(penalize_repeats(logits, seen, 1.3), want)


def test_bad_inputs_name_the_problem(pair):
    _, ours = pair("gpt2")
    with pytest.raises(ValueError, match="string or a chat"):
        ours([PROMPTS[0], 3], max_new_tokens=2)
    with pytest.raises(TypeError, match="num_beam_groups|unexpected"):
        ours(PROMPTS[0], max_new_tokens=2, min_new_tokens=1)
    with pytest.raises(ValueError, match="max_length=3"):
        ours(PROMPTS[1], max_length=3)
    with pytest.raises(ValueError, match="positions"):
        ours(PROMPTS[0], max_new_tokens=500)
    with pytest.raises(ValueError, match="num_return_sequences"):
        ours(PROMPTS[0], do_sample=False, num_return_sequences=2)
    with pytest.raises(TypeError, match="tools"):
        ours(CHAT, tools=[])


def test_sampling_is_reproducible_under_a_seed(pair):
    pytest.importorskip("pipejit.kernels.sampling")
    _, ours = pair("gpt2")
    kwargs = dict(do_sample=True, max_new_tokens=12, top_k=20, temperature=1.3)
    torch.manual_seed(3)
    first = ours(PROMPTS, batch_size=4, **kwargs)
    torch.manual_seed(3)
    assert ours(PROMPTS, batch_size=4, **kwargs) == first


@pytest.mark.parametrize(
    "options", [dict(temperature=2.0, top_k=6), dict(temperature=1.5, top_k=0, top_p=0.6)]
)
def test_sampled_first_tokens_follow_the_reference_distribution(pair, options):
    """First-token frequencies over many samples against the distribution transformers'
    logits processors define, by a chi-square test at a 1e-3 level."""
    pytest.importorskip("pipejit.kernels.sampling")
    stats = pytest.importorskip("scipy.stats")
    reference, ours = pair("gpt2")
    model, tokenizer = reference.model, reference.tokenizer
    prompt = PROMPTS[3]
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits[:, -1].float()
    config = transformers.GenerationConfig(do_sample=True, **options)
    processors = model._get_logits_processor(config, input_ids_seq_length=ids.shape[1])
    probs = processors(ids, logits).double().softmax(-1)[0]
    samples = 4000
    torch.manual_seed(0)
    out = ours(
        prompt,
        do_sample=True,
        max_new_tokens=1,
        num_return_sequences=samples,
        return_tensors=True,
        batch_size=samples,
        **options,
    )
    first = torch.tensor([row["generated_token_ids"][ids.shape[1]] for row in out])
    counts = torch.bincount(first, minlength=probs.numel()).double()
    support = probs > 0
    assert counts[~support].sum() == 0, "sampled a token the processors rule out"
    expected_counts = probs[support] / probs[support].sum() * samples
    result = stats.chisquare(counts[support].numpy(), expected_counts.numpy())
    assert result.pvalue > 1e-3, result


@pytest.mark.slow
def test_inductor_compiled_decoding_matches_reference(folders):
    reference = transformers.pipeline("text-generation", model=folders["llama"])
    ours = pipejit.pipeline("text-generation", model=folders["llama"], compile=True)
    kwargs = dict(do_sample=False, max_new_tokens=12)
    assert ours(PROMPTS, batch_size=4, **kwargs) == expected(reference, PROMPTS, **kwargs)
    assert ours.stats()["compile_failed"] is None
