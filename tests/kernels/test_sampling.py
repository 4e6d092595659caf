"""sampling: the Triton kernel against the torch reference, and the reference against
transformers' own logits processors."""

import pytest
import torch
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from pipejit.kernels._triton import use_triton
from pipejit.kernels.sampling import filter_logits, sample, sample_ref

SETTINGS = [
    {},
    {"temperature": 0.7},
    {"top_k": 5},
    {"top_p": 0.9},
    {"repetition_penalty": 1.3},
    {"temperature": 1.5, "top_k": 40, "top_p": 0.8, "repetition_penalty": 1.2},
    {"top_k": 1},
    {"top_p": 0.05, "repetition_penalty": 0.7},
]


def _history(rows, vocab, n, seed):
    gen = torch.Generator().manual_seed(seed)
    held = torch.randint(0, vocab, (rows, n), generator=gen)
    held[:, -2:] = -1  # padding, ignored
    held[0, :3] = held[0, 0]  # repeats count once
    return held


def _transformers_chain(logits, held, temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0):
    """What generate applies before its multinomial draw, on float32 logits."""
    scores = logits.float().clone()
    if repetition_penalty != 1.0:
        ids = torch.where(held < 0, held[:, :1], held)  # a repeat of a held token changes nothing
        scores = RepetitionPenaltyLogitsProcessor(repetition_penalty)(ids, scores)
    if temperature != 1.0:
        scores = TemperatureLogitsWarper(temperature)(None, scores)
    if top_k:
        scores = TopKLogitsWarper(top_k)(None, scores)
    if top_p < 1.0:
        scores = TopPLogitsWarper(top_p)(None, scores)
    return scores


@pytest.mark.parametrize("settings", SETTINGS)
def test_filtering_matches_transformers_processors(settings):
    logits = torch.randn(6, 1000, generator=torch.Generator().manual_seed(0)) * 3
    held = _history(6, 1000, 12, seed=1)
    expected = _transformers_chain(logits, held, **settings)
    got = filter_logits(logits, previous_tokens=held, **settings)
    assert torch.equal(torch.isinf(got), torch.isinf(expected))
    finite = torch.isfinite(expected)
    torch.testing.assert_close(got[finite], expected[finite], rtol=0, atol=0)


def test_draws_follow_the_filtered_softmax():
    """Frequencies of 40000 draws against the probabilities transformers would sample from."""
    base = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, 3.0, 2.5, -0.5]])
    settings = {"temperature": 0.8, "top_k": 6, "top_p": 0.95}
    probs = _transformers_chain(base, None, **settings).softmax(-1)[0].double()
    draws = sample_ref(
        base.expand(40000, -1), generator=torch.Generator().manual_seed(5), **settings
    )
    freq = torch.bincount(draws, minlength=8).double() / draws.numel()
    assert freq[probs == 0].sum() == 0
    # 5 standard errors of a binomial frequency
    assert torch.all((freq - probs).abs() <= 5 * (probs * (1 - probs) / 40000).sqrt() + 1e-12)


@pytest.mark.parametrize("vocab", [1, 2, 31, 1000, 4097, 50257])
@pytest.mark.parametrize("settings", SETTINGS)
def test_triton_picks_the_reference_token(vocab, settings, device):
    rows = 3 if vocab > 5000 else 9
    gen = torch.Generator().manual_seed(vocab)
    logits = (torch.randn(rows, vocab, generator=gen) * 4).to(device)
    held = _history(rows, vocab, 20, seed=vocab).to(device)
    kw = dict(settings, previous_tokens=held)
    want = sample_ref(logits, generator=torch.Generator(device).manual_seed(11), **kw)
    got = sample(logits, generator=torch.Generator(device).manual_seed(11), impl="triton", **kw)
    assert torch.equal(got, want)
    assert got.dtype == torch.int64 and got.shape == (rows,)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs(dtype, device):
    logits = torch.randn(5, 3000, generator=torch.Generator().manual_seed(2)).to(device, dtype)
    kw = {"top_k": 50, "top_p": 0.9, "temperature": 0.9}
    want = sample_ref(logits, generator=torch.Generator(device).manual_seed(1), **kw)
    got = sample(logits, generator=torch.Generator(device).manual_seed(1), impl="triton", **kw)
    assert torch.equal(got, want)


def test_non_contiguous_rows(device):
    """The last position of [batch, length, vocab] logits, as a decoding loop slices it."""
    logits = torch.randn(4, 3, 500, generator=torch.Generator().manual_seed(3)).to(device)
    last = logits[:, -1, :]
    want = sample_ref(last.contiguous(), generator=torch.Generator(device).manual_seed(4))
    got = sample(last, generator=torch.Generator(device).manual_seed(4), impl="triton")
    assert torch.equal(got, want)


@pytest.mark.parametrize("impl", ["torch", "triton"])
def test_edge_values(impl, device):
    inf, nan = float("inf"), float("nan")
    logits = torch.tensor(
        [
            [nan, 0.0, nan, -inf],  # NaN never drawn: only token 1 is left
            [-inf, -inf, -inf, -inf],  # nothing finite: token 0
            [nan, nan, nan, nan],
            [0.0, inf, 1.0, inf],  # +inf: the largest float, shared between both +inf tokens
        ],
        device=device,
    )
    draws = torch.stack(
        [
            sample(logits, generator=torch.Generator(device).manual_seed(s), impl=impl)
            for s in range(40)
        ]
    )
    assert (draws[:, 0] == 1).all() and (draws[:, 1] == 0).all() and (draws[:, 2] == 0).all()
    assert set(draws[:, 3].tolist()) == {1, 3}


@pytest.mark.parametrize("impl", ["torch", "triton"])
def test_ties_at_the_cut_are_all_kept(impl, device):
    logits = torch.tensor([[1.0, 3.0, 3.0, 3.0, 0.0, 2.0]], device=device).expand(60, -1)
    draws = sample(logits, top_k=2, generator=torch.Generator(device).manual_seed(0), impl=impl)
    assert set(draws.tolist()) == {1, 2, 3}  # all three tied at the 2nd-largest value
    # the top token alone holds 1/3 < 0.5 of the mass: its two equal partners are kept too
    draws = sample(logits, top_p=0.3, generator=torch.Generator(device).manual_seed(0), impl=impl)
    assert set(draws.tolist()) == {1, 2, 3}


def test_seeded_generator_is_deterministic(device):
    logits = torch.randn(64, 100, generator=torch.Generator().manual_seed(9)).to(device)
    a = sample(logits, generator=torch.Generator(device).manual_seed(1), impl="triton")
    b = sample(logits, generator=torch.Generator(device).manual_seed(1), impl="triton")
    c = sample(logits, generator=torch.Generator(device).manual_seed(2), impl="triton")
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_auto_uses_triton_on_cuda_only():
    assert use_triton("auto", torch.device("cuda"))
    assert not use_triton("auto", torch.device("cpu"))
    assert use_triton("triton", torch.device("cpu"))
    assert not use_triton("torch", torch.device("cuda"))
    with pytest.raises(ValueError, match="impl must be one of"):
        use_triton("fast", torch.device("cpu"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": 0.0}, "temperature must be a positive"),
        ({"top_k": -1}, "top_k must be an int"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
        ({"repetition_penalty": 0.0}, "repetition_penalty must be a positive"),
        ({"previous_tokens": torch.zeros(3, 2, dtype=torch.long)}, r"previous_tokens must be"),
        ({"impl": "cuda"}, "impl must be one of"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample(torch.zeros(2, 5), **kwargs)
