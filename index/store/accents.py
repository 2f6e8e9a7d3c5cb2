"""How often each written form of an unaccented syllable and syllable pair occurs in the corpus:
what restoring diacritics to a query typed without them draws on. The counts are exact: each
write adds its passages' counts and subtracts those of the passages it removes, so they stay equal
to a count over the corpus as it stands. The passages a query matches lexically weigh more, and
give a query typed without capitals the capitals their words usually have."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from index.text import fold, gaps_and_words, syllables

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
    "bao nhiêu",
    "bao giờ",
    "khi nào",
    "ở đâu",
    "như thế nào",
    "thế nào",
    "tại sao",
    "vì sao",
    "là gì",
    "là ai",
    "những gì",
    "cái gì",
    "có phải",
    "mấy",
    "nào",
    "gì",
    "ai",
    "đâu",
)
QUESTION_WEIGHT = 100
# Passages that share the query's words write them as the question means them, where the corpus
# as a whole may mostly mean another word ("tình trạng não", the brain, in a health corpus). Their
# forms count this many times more; restoring with the lexical leg's top 5 lifted the dev
# questions typed without diacritics (hybrid MRR@10, ViNewsQA .808 -> .811; 3-20 passages and
# weights 1-100 were within .001 of it).
NEARBY_WEIGHT = 5
# What stands before a word opening a sentence, besides the text's start: a sentence's end or a quote.
_SENTENCE_OPENERS = frozenset('.!?…:"“-–')


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

    def restore(
        self, query: str, coverage: float | None = None, nearby: Callable[[], Iterable[str]] | None = None
    ) -> str:
        """`query` as it would have been written with diacritics and capitals, where it was typed
        without any. Diacritics: the written forms most probable under a bigram language model
        of the corpus (its syllable and pair counts, smoothed; Viterbi), with the forms of the
        `nearby` passages (those the query matches) weighing more. Capitals: each word as the
        nearby passages usually write it ("paris" -> "Paris"), so only with `nearby`. The query
        keeps its punctuation and any capitals typed. A query with both diacritics and capitals,
        or one not in the corpus's language (English, say), comes back as it was, without a read
        of the coverage. `coverage` is the query's, when the caller has read it; `nearby` is
        called only when the query needs restoring."""
        tokens = gaps_and_words(query)
        words = [word.lower() for _, word in tokens]
        needs_accents = all(fold(w) == w for w in words)
        needs_capitals = nearby is not None and query == query.lower()
        if not words or not (needs_accents or needs_capitals):
            return query
        if (self.coverage(query) if coverage is None else coverage) < RESTORE_MIN_KNOWN:
            return query
        texts = [NearbyText.of(text) for text in nearby()] if nearby is not None else []
        if needs_accents:
            words = self._most_probable(words, nearby_forms(texts, words))
        if needs_capitals:
            words = with_usual_capitals(words, texts)
        else:
            words = [with_capitals_of(typed, w) for (_, typed), w in zip(tokens, words)]
        after_last_word = query[sum(len(gap) + len(word) for gap, word in tokens) :]
        return "".join(gap + word for (gap, _), word in zip(tokens, words)) + after_last_word

    def _most_probable(self, words: list[str], nearby: dict[str, Counter[str]]) -> list[str]:
        """The written form of each unaccented word of a query: Viterbi over the bigram model."""
        total = max(self.total, 1)
        forms = [self._forms(word, nearby) for word in words]
        # best[i][form] = (log probability of the best restoration ending in form, previous form)
        best: list[dict[str, tuple[float, str | None]]] = [
            {form: (math.log(n / total), None) for form, n in forms[0].items()}
        ]
        for i in range(1, len(words)):
            pairs = self._forms(f"{words[i - 1]} {words[i]}", nearby)
            step: dict[str, tuple[float, str | None]] = {}
            for form, n in forms[i].items():
                prior = SMOOTHING * n / total
                step[form] = max(
                    (
                        score + math.log((pairs.get(f"{prev} {form}", 0) + prior) / (forms[i - 1][prev] + SMOOTHING)),
                        prev,
                    )
                    for prev, (score, _) in best[-1].items()
                )
            best.append(step)
        form = max(best[-1], key=lambda f: best[-1][f][0])
        restored = [form]
        for i in range(len(words) - 1, 0, -1):
            form = best[i][form][1]
            restored.append(form)
        return restored[::-1]

    def _forms(self, key: str, nearby: dict[str, Counter[str]]) -> dict[str, int]:
        """{written form: count} of a syllable or pair, with the question phrases' and the
        nearby passages' weight; a syllable the corpus lacks stays as typed."""
        counts = Counter(self.counts.accent_forms(key, _FORMS_KEPT))
        counts.update(_QUESTION_FORMS.get(key, {}))
        counts.update({form: NEARBY_WEIGHT * n for form, n in nearby.get(key, {}).items()})
        return dict(counts) or ({key: 1} if " " not in key else {})


@dataclass(frozen=True)
class NearbyText:
    """A passage's words as restoration reads them, split once for both its readings."""

    gaps: tuple[str, ...]  # what stands before each word since the last one
    written: tuple[str, ...]
    lowered: list[str]
    folded: list[str]

    @classmethod
    def of(cls, text: str) -> NearbyText:
        gaps, written = tuple(zip(*gaps_and_words(text))) or ((), ())
        lowered = " ".join(written).lower().split(" ")
        return cls(gaps, written, lowered, fold(" ".join(lowered)).split(" "))


def nearby_forms(texts: Iterable[NearbyText], words: list[str]) -> dict[str, Counter[str]]:
    """{unaccented key: {written form: count}} in `texts`, for the query's unaccented `words` and
    their pairs: the counts of `form_counts`, only for the keys a restoration looks up."""
    wanted, pairs = set(words), set(zip(words, words[1:]))
    forms: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for text in texts:
        lowered, folded = text.lowered, text.folded
        for i in [i for i, key in enumerate(folded) if key in wanted]:
            forms[folded[i]][lowered[i]] += 1
            if i + 1 < len(folded) and (folded[i], folded[i + 1]) in pairs:
                forms[f"{folded[i]} {folded[i + 1]}"][f"{lowered[i]} {lowered[i + 1]}"] += 1
    return forms


def with_usual_capitals(words: list[str], texts: Iterable[NearbyText]) -> list[str]:
    """The lower-case `words` of a query, each spelt as `texts` usually spell it beside the word
    before or after it in the query ("pháp" -> "Pháp", "gdp" -> "GDP"), where that spelling has
    capitals. A word is read beside its query neighbours, not alone: a syllable of a name is
    often a common word too ("nam" in "Việt Nam" and in "nam giới"). A word opening a sentence
    is capitalised whatever it is, so it is not counted."""
    pairs = set(zip(words, words[1:]))
    firsts = {first for first, _ in pairs}
    # (pair, 0 or 1) -> spellings of that word of the pair
    spellings: defaultdict[tuple[tuple[str, str], int], Counter[str]] = defaultdict(Counter)
    for text in texts:
        gaps, written, lowered = text.gaps, text.written, text.lowered
        for i in [i for i, word in enumerate(lowered[:-1]) if word in firsts]:
            pair = (lowered[i], lowered[i + 1])
            if pair in pairs:
                for side in (0, 1):
                    # not the text's first word, nor one after a sentence's end or a quote
                    if i + side and _SENTENCE_OPENERS.isdisjoint(gaps[i + side]):
                        spellings[(pair, side)][written[i + side]] += 1
    spelt = []
    for i, word in enumerate(words):
        seen: Counter[str] = Counter()
        if i:
            seen.update(spellings.get(((words[i - 1], word), 1), {}))
        if i + 1 < len(words):
            seen.update(spellings.get(((word, words[i + 1]), 0), {}))
        spelling, n = seen.most_common(1)[0] if seen else (word, 0)
        spelt.append(spelling if n > seen[word] else word)
    return spelt


def with_capitals_of(typed: str, word: str) -> str:
    """`word` with the capitals of `typed`, its unaccented form ("Ha", "hà" -> "Hà")."""
    if len(typed) != len(word):
        return typed
    return "".join(w.upper() if t.isupper() else w for t, w in zip(typed, word))


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
