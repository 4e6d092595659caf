"""Seeded, offline text workloads with realistic length distributions."""

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
