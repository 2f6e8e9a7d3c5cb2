"""For each shown result: where the query's words are, and the sentence that best answers it.
Computed only for the results returned, from the text alone, so it costs microseconds."""

from __future__ import annotations

import math
from functools import lru_cache
from collections.abc import Callable

from index.text import folded_words, query_terms, sentence_spans, term_spans

Span = tuple[int, int]
# How much a matched pair of consecutive query words adds, relative to its two words' weights.
BIGRAM_BONUS = 1.0


def highlights(text: str, query: str) -> list[Span]:
    return term_spans(text, query_terms(query))


def answer_span(text: str, query: str, weight: Callable[[str], float]) -> Span | None:
    """The sentence sharing the most query words, each weighted by `weight` (rarer words count more),
    with a bonus for query word pairs it contains in order. None if no sentence shares a word."""
    terms = set(query_terms(query))
    query_words = folded_words(query)
    pairs = {f"{a} {b}" for a, b in zip(query_words, query_words[1:]) if a in terms or b in terms}
    best: tuple[float, Span] | None = None
    for start, end in sentence_spans(text):
        words = folded_words(text[start:end])
        score = sum(weight(w) for w in terms.intersection(words))
        score += BIGRAM_BONUS * sum(
            weight(a) + weight(b) for a, b in zip(words, words[1:]) if f"{a} {b}" in pairs
        )
        if score > 0 and (best is None or score > best[0]):
            best = (score, (start, end))
    return best[1] if best else None


def idf_weight(frequency: Callable[[str], int], total: int) -> Callable[[str], float]:
    """Made per request: each word's frequency is looked up once however many passages ask."""

    @lru_cache(maxsize=None)
    def weight(word: str) -> float:
        return math.log(1 + total / (1 + frequency(word)))

    return weight
