"""For each shown result: where the query's words are, the sentence that best answers it, and
within that sentence the words that answer it. Computed only for the results returned, from the
text alone."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from index.text import fold, folded_word_spans, folded_words, query_terms, sentence_spans

Span = tuple[int, int]
# How much a matched pair of consecutive query words adds, relative to its two words' weights.
BIGRAM_BONUS = 1.0
# A query word is highlighted only when it is rarer than one syllable in 100 of the index: the
# most frequent syllables of a corpus ("đảng" one in 30 of the seed articles', "bộ" one in 45)
# are in every passage, and marks on them drown the ones that say why a passage was found.
MARK_MIN_WEIGHT = math.log(1 + 100)


@dataclass(frozen=True)
class Annotation:
    marks: list[Span]  # the query's content words in the passage
    answer: Span | None  # the sentence sharing the most of the query's words
    matched: float  # share of the query's words, weighed by rarity, the passage holds


class Annotator:
    """One query's highlights and answer sentence, for each passage shown. The query is analysed
    once per request and each passage folded and scanned once: this ran for every shown result
    and was a fifth of a search's CPU when each sentence was folded again."""

    def __init__(self, query: str, weight: Callable[[str], float]):
        self.terms = frozenset(query_terms(query))
        self.marked = frozenset(term for term in self.terms if weight(term) >= MARK_MIN_WEIGHT)
        words = folded_words(query)
        self.pairs = {(a, b) for a, b in zip(words, words[1:]) if a in self.terms or b in self.terms}
        self.weight = weight
        self.total_weight = sum(weight(term) for term in self.terms)

    def __call__(self, text: str) -> Annotation:
        """Spans of the query's content words in `text`; the sentence sharing the most of its
        words, each weighted by `weight` (rarer words count more), with a bonus for query word
        pairs it contains in order (None if no sentence shares a word); and the weighted share
        of the query's words the passage holds."""
        words = folded_word_spans(text)
        found = self.terms.intersection(word for _, _, word in words)
        marks = [(start, end) for start, end, word in words if word in self.marked]
        matched = sum(self.weight(term) for term in found) / self.total_weight if self.total_weight else 0.0
        best: tuple[float, Span] | None = None
        first = 0
        for start, end in sentence_spans(text) if found else ():
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
        return Annotation(marks, best[1] if best else None, matched)


def idf_weight(frequency: Callable[[str], int], total: int) -> Callable[[str], float]:
    """Made per request: each word's frequency is looked up once however many passages ask."""

    @cache
    def weight(word: str) -> float:
        return math.log(1 + total / (1 + frequency(word)))

    return weight


# What a question asks for, told by its (folded) question words.
_ASKS = (
    ("number", re.compile(r"\b(bao nhieu|may (?:nguoi|lan|nam|ngay|thang|dong|trieu|ty|nghin)|how (?:many|much))\b")),
    (
        "date",
        re.compile(r"\b(khi nao|luc nao|bao gio|(?:ngay|thang|nam|thoi gian|thoi diem) nao|when|what (?:year|date))\b"),
    ),
    ("name", re.compile(r"\b(ai|nguoi nao|o dau|noi nao|tinh nao|nuoc nao|who|whom|where|which (?:country|city))\b")),
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*(?:\s?%)?")
_DATE = re.compile(
    r"\b(?:(?:ngày|Ngày)\s+\d{1,2}(?:\s*[/-]\s*\d{1,2}(?:\s*[/-]\s*\d{4})?|\s+tháng\s+\d{1,2}(?:\s+năm\s+\d{4})?)"
    r"|\d{1,2}/\d{1,2}/\d{4}|(?:tháng|Tháng)\s+\d{1,2}(?:/\d{4}|\s+năm\s+\d{4})?|(?:năm|Năm)\s+\d{4}"
    r"|(?:January|February|March|April|May|June|July|August|September|October|November|December)"
    r"(?:\s+\d{1,2},?)?\s+\d{4}|\b1\d{3}\b|\b20\d{2}\b)"
)
_WORD = re.compile(r"\w+")


def answer_key(query: str, text: str, sentence: Span) -> Span | None:
    """Within the answer sentence, the words that answer the question, when the question asks for
    a number ("bao nhiêu", "how many"), a date ("khi nào", "when") or a name ("ai", "ở đâu",
    "who"): the first such words in the sentence the question does not itself hold; for a number,
    one followed by the noun the question counts ("bao nhiêu đảng viên" -> "8.400 đảng viên")
    comes first. None when the question asks for none of these or the sentence holds none."""
    asked = fold(query.lower())
    kind = next((kind for kind, pattern in _ASKS if pattern.search(asked)), None)
    if kind is None:
        return None
    start, end = sentence
    piece = text[start:end]
    in_query = set(folded_words(query))
    if kind == "number":
        spans = [m.span() for m in _NUMBER.finditer(piece) if not _DATE.match(piece, m.start())]
    elif kind == "date":
        spans = [m.span() for m in _DATE.finditer(piece)]
    else:
        spans = _names(piece)
    spans = [(a, b) for a, b in spans if not set(folded_words(piece[a:b])) <= in_query]
    counted = _counted_noun(asked) if kind == "number" else []
    for a, b in spans if counted else ():
        noun = re.match(r"\s*" + r"\s+".join(r"\w+" for _ in counted), piece[b:])
        if noun and folded_words(noun.group()) == counted:
            return start + a, start + b + noun.end()
    return (start + spans[0][0], start + spans[0][1]) if spans else None


def _counted_noun(folded_query: str) -> list[str]:
    """The words "bao nhiêu" counts ("có bao nhiêu đảng viên?" -> ["dang", "vien"]), at most two."""
    found = re.search(r"bao nhieu\s+(\w+)(?:\s+(\w+))?", folded_query)
    return [word for word in found.groups() if word] if found else []


def _names(text: str) -> list[Span]:
    """Runs of capitalised words next to each other ("Nguyễn Văn An", "Nam Định"): two or more, or
    three or more where the run opens a sentence, whose first word has its capital anyway."""
    runs: list[Span] = []
    run: list[re.Match[str]] = []

    def close() -> None:
        opens = not text[: run[0].start()].strip() or text[: run[0].start()].rstrip()[-1] in ".!?…:"
        if len(run) >= (3 if opens else 2):
            runs.append((run[0].start(), run[-1].end()))

    for word in _WORD.finditer(text):
        if word.group()[0].isupper() and (not run or text[run[-1].end() : word.start()].isspace()):
            run.append(word)
            continue
        if run:
            close()
        run = [word] if word.group()[0].isupper() else []
    if run:
        close()
    return runs
