"""For each shown result: where the query's words are, and the sentence that best answers it.
Computed only for the results returned, from the text alone."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache

from index.text import folded_word_spans, folded_words, query_terms, sentence_spans

Span = tuple[int, int]
# How much a matched pair of consecutive query words adds, relative to its two words' weights.
BIGRAM_BONUS = 1.0


class Annotator:
    """One query's highlights and answer sentence, for each passage shown. The query is analysed
    once per request and each passage folded and scanned once: this ran for every shown result
    and was a fifth of a search's CPU when each sentence was folded again."""

    def __init__(self, query: str, weight: Callable[[str], float]):
        self.terms = frozenset(query_terms(query))
        words = folded_words(query)
        self.pairs = {(a, b) for a, b in zip(words, words[1:]) if a in self.terms or b in self.terms}
        self.weight = weight

    def __call__(self, text: str) -> tuple[list[Span], Span | None]:
        """Spans of the query's words in `text`, and the sentence sharing the most of them, each
        weighted by `weight` (rarer words count more), with a bonus for query word pairs it
        contains in order; None if no sentence shares a word."""
        words = folded_word_spans(text)
        marks = [(start, end) for start, end, word in words if word in self.terms]
        best: tuple[float, Span] | None = None
        first = 0
        for start, end in sentence_spans(text) if marks else ():
            while first < len(words) and words[first][0] < start:
                first += 1
            last = first
            while last < len(words) and words[last][1] <= end:
                last += 1
            sentence = [word for _, _, word in words[first:last]]
            first = last
            shared = self.terms.intersection(sentence)
            if not shared:  # every pair holds a query term, so no pair either
                continue
            score = sum(self.weight(w) for w in shared)
            score += BIGRAM_BONUS * sum(
                self.weight(a) + self.weight(b) for a, b in zip(sentence, sentence[1:]) if (a, b) in self.pairs
            )
            if best is None or score > best[0]:
                best = (score, (start, end))
        return marks, best[1] if best else None


def idf_weight(frequency: Callable[[str], int], total: int) -> Callable[[str], float]:
    """Made per request: each word's frequency is looked up once however many passages ask."""

    @cache
    def weight(word: str) -> float:
        return math.log(1 + total / (1 + frequency(word)))

    return weight
