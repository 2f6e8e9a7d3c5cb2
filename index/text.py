"""Pure text functions shared by every step: normalisation, sentence splitting, term matching."""

from __future__ import annotations

import re
import unicodedata

_WHITESPACE = re.compile(r"\s+")
# Candidate sentence ends: . ! ? … possibly followed by closing quotes/brackets, then space.
_SENTENCE_END = re.compile(r"[.!?…]+[\"”’»)\]]*\s+")
_OPENING = "\"“‘«(["
_WORD = re.compile(r"\w+", re.UNICODE)

# Function words that would light up every passage if highlighted.
_STOPWORDS_TEXT = (
    """và của các có là được cho với trong những này đã để thì mà như khi ra vào từ đến tại về
    theo trên bao nhiêu nào gì ai sao không một mấy
    the a an of to in on for and or is are was were be by with what which who how many much
    did do does at as from that this"""
)


def normalize(text: str) -> str:
    """NFC and folded whitespace: the one form every text takes before it is stored or encoded."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def fold_char(ch: str) -> str:
    """Lower-case base letter of one character: 'Ế' -> 'e', 'đ' -> 'd'. Always one character,
    so folded strings keep the offsets of the original."""
    lowered = ch.lower()
    if len(lowered) != 1:
        return ch
    if lowered == "đ":
        return "d"
    return unicodedata.normalize("NFD", lowered)[0]


def fold(text: str) -> str:
    """Case- and diacritic-insensitive form of NFC text, offset-preserving."""
    return "".join(fold_char(ch) for ch in text)


def split_sentences(text: str) -> list[str]:
    """Split where a sentence end is followed by an upper-case letter, a digit or an opening quote."""
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        following = text[match.end() : match.end() + 2].lstrip(_OPENING)[:1]
        if following and (following.isupper() or following.isdigit()):
            sentences.append(text[start : match.end()].strip())
            start = match.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


_STOPWORDS = frozenset(fold(word) for word in _STOPWORDS_TEXT.split())


def query_terms(query: str) -> list[str]:
    """Folded words of a query worth highlighting, in order, without repeats."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(fold(normalize(query))):
        if len(word) > 1 and word not in _STOPWORDS:
            seen.setdefault(word)
    return list(seen)


def term_spans(text: str, terms: list[str]) -> list[tuple[int, int]]:
    """Character spans of whole words in `text` that match `terms` ignoring case and diacritics."""
    wanted = set(terms)
    return [(m.start(), m.end()) for m in _WORD.finditer(fold(text)) if m.group() in wanted]
