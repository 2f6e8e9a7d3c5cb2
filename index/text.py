"""Pure text functions shared by every step: normalisation, sentence splitting, term matching."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

VIETNAMESE = "vi"
# py3langid reads a passage's first this many characters: enough to tell its language
LANGUAGE_SAMPLE_CHARS = 1000

_WHITESPACE = re.compile(r"\s+")
# Candidate sentence ends: . ! ? … possibly followed by closing quotes/brackets, then space.
_SENTENCE_END = re.compile(r"[.!?…]+[\"”’»)\]]*\s+")
_OPENING = '"“‘«(['
_WORD = re.compile(r"\w+", re.UNICODE)
_GAP_AND_WORD = re.compile(r"(\W*)(\w+)", re.UNICODE)

# Function words that would light up every passage if highlighted.
_STOPWORDS_TEXT = """và của các có là được cho với trong những này đã để thì mà như khi ra vào từ đến tại về
    theo trên bao nhiêu nào gì ai sao không một mấy
    the a an of to in on for and or is are was were be by with what which who how many much
    did do does at as from that this"""


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


# fold_char for every character of the alphabetic scripts (Latin with Vietnamese, Greek, Cyrillic,
# ...) and the full-width forms, as one translation table: str.translate runs in C, and fold is on
# the hot path of indexing, search and highlighting. Characters outside it are left as they are.
_FOLD_RANGES = (range(0x0000, 0x3000), range(0xFF00, 0xFFF0))
_FOLD_TABLE = {cp: fold_char(chr(cp)) for r in _FOLD_RANGES for cp in r if fold_char(chr(cp)) != chr(cp)}


def fold(text: str) -> str:
    """Case- and diacritic-insensitive form of NFC text, offset-preserving."""
    return text.translate(_FOLD_TABLE)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text`: a sentence ends at . ! ? … followed by space and
    an upper-case letter, a digit or an opening quote. Spans exclude the spaces between sentences."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        following = text[match.end() : match.end() + 2].lstrip(_OPENING)[:1]
        if following and (following.isupper() or following.isdigit()):
            spans.append((start, match.end()))
            start = match.end()
    spans.append((start, len(text)))
    trimmed = []
    for a, b in spans:
        piece = text[a:b]
        a += len(piece) - len(piece.lstrip())
        b -= len(piece) - len(piece.rstrip())
        if b > a:
            trimmed.append((a, b))
    return trimmed


def split_sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in sentence_spans(text)]


_STOPWORDS = frozenset(fold(word) for word in _STOPWORDS_TEXT.split())


def gaps_and_words(text: str) -> list[tuple[str, str]]:
    """(what stands before a word since the last one, the word) for every word of `text`."""
    return _GAP_AND_WORD.findall(text)


def syllables(text: str) -> list[str]:
    """Lower-cased words (Vietnamese syllables) of `text` as written."""
    return _WORD.findall(normalize(text).lower())


def folded_words(text: str) -> list[str]:
    return _WORD.findall(fold(normalize(text)))


def query_terms(query: str) -> list[str]:
    """Folded words of a query worth highlighting, in order, without repeats."""
    return list(dict.fromkeys(w for w in folded_words(query) if len(w) > 1 and w not in _STOPWORDS))


def folded_word_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, folded word) of every word in `text`: fold keeps offsets, so the spans are `text`'s."""
    return [(m.start(), m.end(), m.group()) for m in _WORD.finditer(fold(text))]


# A Vietnamese syllable, folded: an onset, a vowel nucleus (glides included) and a final. Most
# English words are not one ("how", "many", "members"); a few are ("the", "to", "in").
_SYLLABLE = re.compile(
    r"(?:ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|[bcdghklmnprstvx])?"
    r"(?:uye|uya|oai|oay|oeo|uay|uoi|uou|ieu|yeu|ai|ao|au|ay|eo|eu|ia|ie|iu|oa|oe|oi|oo|ua|ue|ui|uo|uu|uy|ye|[aeiouy])"
    r"(?:ch|ng|nh|[cmnpt])?"
)


@lru_cache(maxsize=4096)  # a passage shown for one question is often shown for the next
def vietnamese_share(text: str, words: int = 60) -> float:
    """The share of the first `words` words of `text` (letters only) that are Vietnamese
    syllables, with or without their diacritics: near 1 for Vietnamese, low for English."""
    # a word of 60 is about 5 characters and a space: what lies past that is not folded
    found = [w for w in folded_words(text[: words * 12]) if w.isalpha()][:words]
    return sum(1 for w in found if _SYLLABLE.fullmatch(w)) / len(found) if found else 1.0


def language_of(text: str) -> str:
    """The ISO 639-1 code of the language `text` is written in, by py3langid (a naive Bayes model
    of 97 languages that ships in its wheel: no download, ~2 ms a passage). It told every passage
    of the project's Vietnamese sets (ViQuAD, ViNewsQA, the seed articles: 9,914) as Vietnamese
    and every SciFact abstract as English."""
    import py3langid

    return py3langid.classify(text[:LANGUAGE_SAMPLE_CHARS])[0]


def likeliest_language(text: str, among: Iterable[str]) -> str | None:
    """Of the languages `among`, the one py3langid finds `text` likeliest written in (a tenth of a
    millisecond for a question), or None when it ranks none of them."""
    import py3langid

    wanted = set(among)
    return next((language for language, _ in py3langid.rank(text[:LANGUAGE_SAMPLE_CHARS]) if language in wanted), None)
