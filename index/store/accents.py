"""How often each written form of an unaccented syllable and syllable pair occurs in the corpus:
what restoring diacritics to a query typed without them draws on. The counts are exact: each
write adds its passages' counts and subtracts those of the passages it removes, so they stay equal
to a count over the corpus as it stands."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Protocol

from index.text import fold, syllables

# Restore accents only to a query this much in the corpus's language (coverage).
RESTORE_MIN_KNOWN = 0.6
# A query with fewer of its word pairs in the corpus reads as another language (coverage).
MIN_KNOWN_PAIRS = 0.5
# How far a syllable's next-word counts are pulled toward the next form's own frequency: the
# pseudo-count of Dirichlet smoothing. On the dev questions typed without diacritics, 1 to 1,000
# all beat the interpolation used before; 100 was best on both sets (words right: ViQuAD .935 ->
# .965, ViNewsQA .935 -> .963).
SMOOTHING = 100.0
# Only the most frequent written forms of a syllable are candidates: rarer ones are mostly typos.
_FORMS_KEPT = 8
# Questions ask with words that statements seldom use. The index counts each phrase once, as if
# seen in the corpus, so "bao nhieu" becomes "bao nhiêu" even where no passage says it; restoring
# a query counts them as seen this many times more, since a query is a question ("ở đâu", where,
# not "ở đầu", at the head of: ViQuAD 63 -> 31 such errors).
QUESTION_PHRASES = (
    "bao nhiêu", "bao giờ", "khi nào", "ở đâu", "như thế nào", "thế nào", "tại sao", "vì sao", "là gì",
    "là ai", "những gì", "cái gì", "có phải", "mấy", "nào", "gì", "ai", "đâu",
)
QUESTION_WEIGHT = 100


def form_counts(texts: Iterable[str]) -> Counter[tuple[str, str]]:
    """(unaccented key, written form) -> occurrences, for syllables ("dang", "đảng") and syllable
    pairs ("dang vien", "đảng viên") of `texts`."""
    counts: Counter[tuple[str, str]] = Counter()
    pairs: Counter[tuple[str, str, str, str]] = Counter()
    # counted over tuples of the words themselves, joined into keys once per distinct pair
    for text in texts:
        written = syllables(text)
        folded = fold(" ".join(written)).split(" ")
        counts.update(zip(folded, written))
        pairs.update(zip(folded, folded[1:], written, written[1:]))
    for (fa, fb, a, b), n in pairs.items():
        counts[(f"{fa} {fb}", f"{a} {b}")] += n
    return counts


class FormCounts(Protocol):
    """Where the counts live: the index's database, kept by the writer in each commit."""

    def accent_forms(self, key: str, limit: int) -> dict[str, int]: ...

    def accent_frequency(self, key: str) -> int: ...

    def accent_known(self, keys: set[str]) -> set[str]: ...

    def accent_total(self) -> int: ...


class AccentVocabulary:
    """Reads the counts where the writer keeps them, so a reader does no work when the index
    changes and holds none of the vocabulary in memory; each restoration costs a few indexed
    lookups. The counts may be a write ahead of the view a search holds, which only matters for
    the words that write brought."""

    def __init__(self, counts: FormCounts):
        self.counts = counts

    @property
    def total(self) -> int:
        return self.counts.accent_total()

    def frequency(self, folded_word: str) -> int:
        return self.counts.accent_frequency(folded_word)

    def coverage(self, query: str) -> float:
        """How much the query is in the corpus's language: the share of its syllables the corpus
        has, times the share of its word pairs the corpus has when that is under half. Near 1 for
        a Vietnamese question about the corpus, low for an English one: English words fold like
        Vietnamese syllables ("the" like "thế"), and a Wikipedia corpus holds English too, so
        English questions had .42-.89 of their words in ViQuAD's corpus but at most .40 of their
        pairs, where 99% of Vietnamese questions had .59 or more (English hybrid MRR@10 .559 ->
        .614, Vietnamese sets within .001)."""
        words = [fold(w) for w in syllables(query)]
        if not words:
            return 0.0
        pairs = [f"{a} {b}" for a, b in zip(words, words[1:])]
        known = self.counts.accent_known(set(words) | set(pairs))
        share = sum(w in known for w in words) / len(words)
        if pairs:
            pair_share = sum(pair in known for pair in pairs) / len(pairs)
            if pair_share < MIN_KNOWN_PAIRS:
                share *= pair_share
        return share

    def restore(self, query: str, coverage: float | None = None) -> str:
        """`query` with diacritics put back where it was typed without any: the written forms
        most probable under a bigram language model of the corpus (its syllable and pair counts,
        smoothed; Viterbi). A query with diacritics, or one not in the corpus's language (English,
        say), comes back as it was. `coverage` is the query's, when the caller has read it."""
        words = syllables(query)
        if not words or any(fold(w) != w for w in words):
            return query
        if (self.coverage(query) if coverage is None else coverage) < RESTORE_MIN_KNOWN:
            return query
        total = max(self.total, 1)
        forms = [self._forms(word) for word in words]
        # best[i][form] = (log probability of the best restoration ending in form, previous form)
        best: list[dict[str, tuple[float, str | None]]] = [
            {form: (math.log(n / total), None) for form, n in forms[0].items()}
        ]
        for i in range(1, len(words)):
            pairs = self._forms(f"{words[i - 1]} {words[i]}")
            step: dict[str, tuple[float, str | None]] = {}
            for form, n in forms[i].items():
                prior = SMOOTHING * n / total
                step[form] = max(
                    (score + math.log((pairs.get(f"{prev} {form}", 0) + prior) / (forms[i - 1][prev] + SMOOTHING)), prev)
                    for prev, (score, _) in best[-1].items()
                )
            best.append(step)
        form = max(best[-1], key=lambda f: best[-1][f][0])
        restored = [form]
        for i in range(len(words) - 1, 0, -1):
            form = best[i][form][1]
            restored.append(form)
        return " ".join(reversed(restored))

    def _forms(self, key: str) -> dict[str, int]:
        """{written form: count} of a syllable or pair, with the question phrases' weight; a
        syllable the corpus lacks stays as typed."""
        counts = Counter(self.counts.accent_forms(key, _FORMS_KEPT))
        counts.update(_QUESTION_FORMS.get(key, {}))
        return dict(counts) or ({key: 1} if " " not in key else {})


def _question_forms() -> dict[str, Counter[str]]:
    """The phrases' pairs and one-syllable phrases: weighting every syllable of them would make
    "bao" (of "bao nhiêu") outweigh "bảo" in "bảo vệ"."""
    single = {fold(phrase) for phrase in QUESTION_PHRASES if " " not in phrase}
    forms: dict[str, Counter[str]] = {}
    for (key, written), n in form_counts(QUESTION_PHRASES).items():
        if " " in key or key in single:
            forms.setdefault(key, Counter())[written] += QUESTION_WEIGHT * n
    return forms


_QUESTION_FORMS = _question_forms()
