"""How likely a result is to answer the question: a logistic model over what the search already
knows of it. Pure functions; the weights come from `python bench/fit_confidence.py`."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Features:
    """What a result's confidence is read from, each known to every search mode."""

    sentence: float  # cosine of the query and the passage's best sentence
    passage: float  # cosine of the query and the whole passage
    matched: float  # share of the query's words (weighted by rarity) that the passage holds
    coverage: float  # share of the query the corpus's vocabulary knows (low for another language)
    language_gap: float  # how far apart the query's share of Vietnamese words is from the passage's
    lexical: float  # 1 / (1 + its rank in the lexical leg), 0 when that leg did not find it
    gap: float  # its dense score less the next result's: how far it stands out
    rank: float  # log(1 + its position in the ranking, 0 first)

    def vector(self) -> tuple[float, ...]:
        return tuple(getattr(self, name) for name in FEATURES)


FEATURES = tuple(Features.__dataclass_fields__)
# Fitted by bench/fit_confidence.py on the dev sets (docs/quality.md, "Confidence"): the bias,
# then one weight per feature in FEATURES' order.
BIAS = -44.11
WEIGHTS = (27.45, 20.57, 1.069, -1.162, 3.203, 2.339, 30.78, -0.7285)
# The best result's confidence under this: "no passage answers the question". The threshold that
# best tells the dev questions an index cannot answer from those whose first result is right
# (bench/fit_confidence.py: said of .916 of the first, .077 of the second, held out).
ANSWERED_AT = 0.3
# sort=date orders by date only the results at least this likely to answer.
DATE_SORT_FLOOR = 0.1


def confidence(features: Features, bias: float = BIAS, weights: tuple[float, ...] = WEIGHTS) -> float:
    """The probability that the result answers the question: sigmoid(bias + weights · features)."""
    z = bias + sum(w * x for w, x in zip(weights, features.vector()))
    return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0
