"""How often each written form of an unaccented syllable and syllable pair occurs in the corpus:
what restoring diacritics to a query typed without them draws on. The counts are exact, so adding
and removing passages keeps them equal to a count over the corpus as it stands."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from index.text import fold, syllables

# Restore accents only when this share of a query's words are corpus syllables.
RESTORE_MIN_KNOWN = 0.6
_BIGRAM_WEIGHT = 0.7
# Only the most frequent written forms of a syllable are candidates: rarer ones are mostly typos.
_FORMS_KEPT = 8
# Questions ask with words that statements seldom use; counted once each as if seen in the corpus
# so "bao nhieu" becomes "bao nhiêu" even where no passage says it.
_QUESTION_PHRASES = (
    "bao nhiêu", "bao giờ", "khi nào", "ở đâu", "như thế nào", "thế nào", "tại sao", "vì sao", "là gì",
    "là ai", "những gì", "cái gì", "có phải", "mấy", "nào", "gì", "ai", "đâu",
)

Table = dict[str, dict[str, int]]


def _top(counts: dict[str, int] | None) -> dict[str, int]:
    if not counts:
        return {}
    if len(counts) <= _FORMS_KEPT:
        return counts
    return dict(Counter(counts).most_common(_FORMS_KEPT))


class AccentVocabulary:
    FILE = "accents.json"

    def __init__(self, unigrams: Table, bigrams: Table):
        self.unigrams = unigrams
        self.bigrams = bigrams
        self.total = sum(sum(forms.values()) for forms in unigrams.values())

    @classmethod
    def count(cls, texts: Iterable[str]) -> AccentVocabulary:
        vocabulary = cls({}, {})
        vocabulary.add([*_QUESTION_PHRASES, *texts])
        return vocabulary

    def add(self, texts: Iterable[str]) -> None:
        self._update(texts, +1)

    def remove(self, texts: Iterable[str]) -> None:
        self._update(texts, -1)

    def _update(self, texts: Iterable[str], sign: int) -> None:
        # counted over tuples of the words themselves, joined into keys once per distinct pair:
        # this runs in every reader for every write
        unigrams: Counter[tuple[str, str]] = Counter()
        bigrams: Counter[tuple[str, str, str, str]] = Counter()
        for text in texts:
            written = syllables(text)
            folded = fold(" ".join(written)).split(" ")
            unigrams.update(zip(folded, written))
            bigrams.update(zip(folded, folded[1:], written, written[1:]))
        self.total += sign * unigrams.total()
        pairs = ((f"{fa} {fb}", f"{a} {b}", n) for (fa, fb, a, b), n in bigrams.items())
        for table, changes in ((self.unigrams, ((f, w, n) for (f, w), n in unigrams.items())), (self.bigrams, pairs)):
            # a new dict per key: searches in other threads read the old one undisturbed
            fresh: dict[str, dict[str, int]] = {}
            for key, form, change in changes:
                forms = fresh.get(key)
                if forms is None:
                    forms = fresh[key] = dict(table.get(key, {}))
                forms[form] = forms.get(form, 0) + sign * change
            for key, forms in fresh.items():
                kept = {form: n for form, n in forms.items() if n > 0} if sign < 0 else forms
                if kept:
                    table[key] = kept
                else:
                    table.pop(key, None)

    def frequency(self, folded_word: str) -> int:
        return sum(self.unigrams.get(folded_word, {}).values())

    def coverage(self, query: str) -> float:
        """Share of the query's syllables that occur in the corpus: near 1 for a Vietnamese question
        about it, near 0 for an English one, whose few lexical matches are accidents."""
        words = syllables(query)
        return sum(fold(w) in self.unigrams for w in words) / len(words) if words else 0.0

    def restore(self, query: str) -> str:
        """`query` with diacritics put back where it was typed without any, choosing for each
        syllable the written form that best fits the corpus (unigram and bigram counts, Viterbi).
        A query with diacritics, or mostly of words the corpus does not have (English, say),
        comes back as it was."""
        words = syllables(query)
        if not words or any(fold(w) != w for w in words):
            return query
        if self.coverage(query) < RESTORE_MIN_KNOWN:
            return query
        options = [self._forms(w) for w in words]
        # best[i][form] = (log score of the best restoration ending in form, previous form)
        best: list[dict[str, tuple[float, str | None]]] = [
            {form: (math.log(p), None) for form, p in options[0].items()}
        ]
        for i in range(1, len(words)):
            step: dict[str, tuple[float, str | None]] = {}
            for form, p_unigram in options[i].items():
                step[form] = max(
                    (score + math.log(_BIGRAM_WEIGHT * self._pair(prev, form) + (1 - _BIGRAM_WEIGHT) * p_unigram), prev)
                    for prev, (score, _) in best[-1].items()
                )
            best.append(step)
        form = max(best[-1], key=lambda f: best[-1][f][0])
        restored = [form]
        for i in range(len(words) - 1, 0, -1):
            form = best[i][form][1]
            restored.append(form)
        return " ".join(reversed(restored))

    def _forms(self, word: str) -> dict[str, float]:
        counts = _top(self.unigrams.get(word))
        if not counts:
            return {word: 1.0}
        total = sum(counts.values())
        return {form: n / total for form, n in counts.items()}

    def _pair(self, first: str, second: str) -> float:
        counts = _top(self.bigrams.get(f"{fold(first)} {fold(second)}"))
        if not counts:
            return 0.0
        return counts.get(f"{first} {second}", 0) / sum(counts.values())

    def save(self, directory: Path) -> None:
        (Path(directory) / self.FILE).write_text(json.dumps({"unigrams": self.unigrams, "bigrams": self.bigrams}, ensure_ascii=False))

    @classmethod
    def load(cls, directory: Path) -> AccentVocabulary:
        data = json.loads((Path(directory) / cls.FILE).read_text())
        return cls(data["unigrams"], data["bigrams"])
