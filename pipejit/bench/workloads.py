"""Seeded, offline workloads with realistic distributions: texts, images and audio clips."""

from __future__ import annotations

import numpy as np

# Common English words; any text of them tokenizes to real WordPiece tokens.
VOCABULARY = """time person year way day thing man world life hand part child eye woman place
work week case point government company number group problem fact be have do say get make go
know take see come think look want give use find tell ask seem feel try leave call good new
first last long great little own other old right big high different small large next early
young important few public bad same able to of in for on with at by from up about into over
after the and a that i it not he as you this but his they her she or an will my one all would
there their what so out if who which me when can like no just him how your some could them
than then now only its also back two because good these most us very even well still should
movie story film actor scene music plot ending performance director camera script character
restaurant food service waiter dinner price menu wine dessert coffee city river street house
school market team player match season game election science technology business health""".split()

SENTENCE_WORDS_MEAN = 56
SENTENCE_WORDS_MAX = 250


def sentences(count: int, seed: int = 0) -> list[str]:
    """Sentences of lognormal word counts: mean about 56 words, at most 250."""
    rng = np.random.default_rng(seed)
    sigma = 0.6
    mu = np.log(SENTENCE_WORDS_MEAN) - sigma**2 / 2
    counts = np.clip(
        rng.lognormal(mu, sigma, size=count).round().astype(int), 3, SENTENCE_WORDS_MAX
    )
    words = np.array(VOCABULARY)
    return [" ".join(rng.choice(words, size=n)).capitalize() + "." for n in counts]


def queries(count: int, seed: int = 0) -> list[str]:
    """Search-like queries of 5 to 20 words."""
    rng = np.random.default_rng(seed)
    words = np.array(VOCABULARY)
    return [" ".join(rng.choice(words, size=n)) for n in rng.integers(5, 21, size=count)]


def reviews(count: int, seed: int = 0) -> list[str]:
    """IMDB-like reviews: lognormal, mean about 230 words, up to about 512 tokens."""
    rng = np.random.default_rng(seed)
    sigma = 0.5
    counts = np.clip(rng.lognormal(np.log(230) - sigma**2 / 2, sigma, size=count), 20, 480)
    words = np.array(VOCABULARY)
    return [
        ". ".join(" ".join(rng.choice(words, size=12)) for _ in range(max(1, int(n) // 12)))
        for n in counts
    ]


def images(count: int, seed: int = 0) -> list:
    """PIL images: half 224x224, half of mixed sizes from 96 to 640 pixels a side."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        height, width = (224, 224) if i % 2 == 0 else rng.integers(96, 641, size=2)
        # smooth gradients plus noise: compressible like photos, not flat like a blank
        y, x = np.mgrid[0:height, 0:width]
        base = (x[..., None] * rng.random(3) + y[..., None] * rng.random(3)) % 256
        pixels = np.clip(base + rng.normal(0, 12, size=(height, width, 3)), 0, 255)
        out.append(Image.fromarray(pixels.astype(np.uint8), mode="RGB"))
    return out


def audio_clips(
    count: int, seed: int = 0, sampling_rate: int = 16_000, longest_s: float = 30
) -> list[np.ndarray]:
    """Mono float32 clips of 1 to 30 (``longest_s``) seconds: tones in noise."""
    rng = np.random.default_rng(seed)
    clips = []
    for seconds in rng.uniform(1, longest_s, size=count):
        t = np.arange(int(seconds * sampling_rate)) / sampling_rate
        tone = np.sin(2 * np.pi * rng.uniform(100, 1000) * t)
        clips.append((0.3 * tone + 0.05 * rng.standard_normal(t.shape)).astype(np.float32))
    return clips


def prompts(count: int, seed: int = 0, most_words: int = 60) -> list[str]:
    """Generation prompts of mixed lengths, 4 to ``most_words`` (60) words."""
    rng = np.random.default_rng(seed)
    words = np.array(VOCABULARY)
    lengths = rng.integers(4, most_words + 1, size=count)
    return [" ".join(rng.choice(words, size=n)) for n in lengths]


def noise_images(count: int, seed: int = 0, low: int = 96, high: int = 640) -> list:
    """PIL images of uniform noise, each side from ``low`` to ``high`` pixels."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        height, width = (int(v) for v in rng.integers(low, high + 1, size=2))
        pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        out.append(Image.fromarray(pixels, mode="RGB"))
    return out


def long_clips(
    count: int, seed: int = 0, sampling_rate: int = 16_000, longest_s: float = 60
) -> list[np.ndarray]:
    """Clips of 5 to 60 (``longest_s``) seconds, evenly spread, shuffled: tones changing
    every quarter second, in noise; most longer than a 30-second window, so chunked."""
    rng = np.random.default_rng(seed)
    out = []
    for duration in rng.permutation(np.linspace(5, longest_s, count)):
        n = int(duration * sampling_rate)
        t = np.arange(n) / sampling_rate
        pitch = np.repeat(rng.uniform(100, 2000, size=n // 4000 + 1), 4000)[:n]
        wave = 0.3 * np.sin(2 * np.pi * pitch * t) + 0.05 * rng.standard_normal(n)
        out.append(wave.astype(np.float32))
    return out


PANGRAM = "the quick brown fox jumps over the lazy dog while a zebra eats hay at noon "


def speech_texts(count: int) -> list[str]:
    """Texts to speak, of 8 to 48 characters in a shuffled order of lengths."""
    return [(PANGRAM * 2)[: 8 + (i * 17) % 41].strip() for i in range(count)]
