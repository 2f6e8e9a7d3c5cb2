"""Text -> the terms both backends' BM25 legs index and query (tantivy here, Milvus's BM25 function
there), by the passage's language (`index.text.language_of`, recorded on every passage).

Vietnamese text gives three kinds of terms:
- syllables as written (lower-cased NFC): "đảng", "viên";
- the same syllables without diacritics, marked "~": "~dang", "~vien", so a query typed without
  accents finds accented text, while a query with accents matches both and prefers exact accents;
- unaccented syllable bigrams, "~dang_vien": Vietnamese words are mostly two syllables, and the
  pairs carry the compound words a bag of syllables loses.
On ViQuAD dev (title + text, k1 1.2, b 0.75) this moved BM25 MRR@10 from .732 to .778 for accented
queries and from .262 to .768 for unaccented ones; accented bigrams on top lowered it (.757).

A language with a Snowball stemmer (PyStemmer: English, French, German, Russian, ... 30 of them)
gives its words' stems, less its stop words (bm25s's lists, where it has one), marked with the
language: "en:protein". Any other language gives its lower-cased words as written, as the
Vietnamese analysis of a query writes them. Terms of different analysers never meet, so adding
English passages to a Vietnamese index leaves the Vietnamese terms' postings as they were.

A query is read in one language of the index (`query_analysis`): a question whose words are
Vietnamese syllables (`QUERY_VIETNAMESE_SHARE`) as Vietnamese, any other in the index's language
py3langid finds likeliest; in an index of one language, in that one (an English question of a
Vietnamese index keeps matching names and numbers, as before).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cache

import numpy as np

from index.text import VIETNAMESE, fold, likeliest_language, syllables, vietnamese_share

K1, B = 1.2, 0.75  # BM25's, as Lucene sets them
# The analyser's version, recorded with the terms an index holds: an index analysed otherwise has
# its lexical part rebuilt from its passages when opened (index/store/embedded/live.py).
ANALYZER = "3: an index per analysis (vi syllables; Snowball stems; plain words), of passages and documents"

# ISO 639-1 codes (py3langid's) of the languages PyStemmer stems
SNOWBALL = {
    "ar": "arabic",
    "ca": "catalan",
    "cs": "czech",
    "da": "danish",
    "de": "german",
    "el": "greek",
    "en": "english",
    "eo": "esperanto",
    "es": "spanish",
    "et": "estonian",
    "eu": "basque",
    "fa": "persian",
    "fi": "finnish",
    "fr": "french",
    "ga": "irish",
    "hi": "hindi",
    "hu": "hungarian",
    "hy": "armenian",
    "id": "indonesian",
    "it": "italian",
    "lt": "lithuanian",
    "ne": "nepali",
    "nl": "dutch",
    "no": "norwegian",
    "nb": "norwegian",
    "pl": "polish",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sr": "serbian",
    "sv": "swedish",
    "ta": "tamil",
    "tr": "turkish",
}
# bm25s's stop word lists, by the same codes (the lists of the stemmed BM25 baseline, bench/baselines.py)
_STOPWORD_LISTS = {
    "da": "STOPWORDS_DANISH",
    "de": "STOPWORDS_GERMAN",
    "en": "STOPWORDS_EN",
    "es": "STOPWORDS_SPANISH",
    "fr": "STOPWORDS_FRENCH",
    "it": "STOPWORDS_ITALIAN",
    "nl": "STOPWORDS_DUTCH",
    "no": "STOPWORDS_NORWEGIAN",
    "nb": "STOPWORDS_NORWEGIAN",
    "pt": "STOPWORDS_PORTUGUESE",
    "ru": "STOPWORDS_RUSSIAN",
    "sv": "STOPWORDS_SWEDISH",
    "tr": "STOPWORDS_TURKISH",
}
# Passages ranked by their own BM25 before their documents' is added: a search for fewer ranks
# these all the same, so a page's order does not depend on its size or on the filters.
CANDIDATES = 100
# A query whose words are at least this share Vietnamese syllables is Vietnamese (with or without
# its diacritics): 99% of ViQuAD's and ViNewsQA's dev questions have .67 or more, SciFact's
# claims and the project's English questions at most .45.
QUERY_VIETNAMESE_SHARE = 0.5


def analyze(text: str, language: str | None = VIETNAMESE) -> list[str]:
    """The terms of `text` written in `language` (Vietnamese when not known)."""
    if language in (VIETNAMESE, None):
        written = syllables(text)
        folded = [fold(s) for s in written]
        return written + ["~" + f for f in folded] + [f"~{a}_{b}" for a, b in zip(folded, folded[1:])]
    if language in SNOWBALL:
        stems = _stemmer(language).stemWords([w for w in syllables(text) if w not in _stopwords(language)])
        return [f"{language}:{stem}" for stem in stems]
    return syllables(text)


def analyzer_of(language: str | None) -> str:
    """Which analysis of a query matches `language`'s passages: its own for a Snowball language,
    the Vietnamese one for Vietnamese and for the plain words of any other language (they are
    the written syllables of the Vietnamese analysis)."""
    if language in (VIETNAMESE, None):
        return VIETNAMESE
    return language if language in SNOWBALL else VIETNAMESE


def query_analysis(query: str, languages: Iterable[str]) -> str:
    """The analysis `query` is read with, of those of the index's `languages`: the index's only
    one; Vietnamese for a query whose words are Vietnamese syllables; else that of the index's
    language py3langid finds the query likeliest written in. One, so a question matches
    passages of its own language: read in two, an English question matched the English words
    of Vietnamese Wikipedia articles (SciFact lexical MRR@10 .837 alone, .788 beside ViQuAD)."""
    languages = set(languages) or {VIETNAMESE}
    analyses = sorted({analyzer_of(language) for language in languages})
    if len(analyses) == 1:
        return analyses[0]
    if VIETNAMESE in analyses and vietnamese_share(query) >= QUERY_VIETNAMESE_SHARE:
        return VIETNAMESE
    likeliest = likeliest_language(query, languages)
    return analyzer_of(likeliest) if likeliest else analyses[0]


def query_terms(query: str, languages: Iterable[str]) -> list[str]:
    """The terms of `query` read in the index's `languages` (a Vietnamese question's as before)."""
    return analyze(query, query_analysis(query, languages))


def in_stemmed_language(query: str, languages: Iterable[str]) -> bool:
    """Whether `query` is read in one of the index's languages that have a stemmer (English, ...):
    it is then in a language of the corpus, which the share of its words the corpus knows (the
    test for an English question of a Vietnamese corpus) need not tell, and it has no diacritics
    to restore."""
    return query_analysis(query, languages) != VIETNAMESE


def with_documents(
    scores: Sequence[float], ids: Sequence[int], documents: Sequence, of_document: Mapping, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The k best passages by their own BM25 (`scores`) plus their document's (`of_document`, by
    the passage's entry in `documents`): a document split into passages keeps the evidence
    spread over them. Ties go to the lower id, so both backends order alike."""
    combined = np.array([s + of_document.get(d, 0.0) for s, d in zip(scores, documents)], np.float32)
    ids = np.asarray(ids, np.int64)
    order = np.lexsort((ids, -combined))[:k]
    return combined[order], ids[order]


@cache
def _stemmer(language: str):
    import Stemmer

    return Stemmer.Stemmer(SNOWBALL[language])


@cache
def _stopwords(language: str) -> frozenset[str]:
    if language not in _STOPWORD_LISTS:
        return frozenset()
    import bm25s.stopwords

    return frozenset(getattr(bm25s.stopwords, _STOPWORD_LISTS[language]))


def describe() -> dict:
    """The lexical leg as a manifest records it ("engine" names tantivy on Milvus too: the record
    predates that backend, and changing it would make every index look built otherwise)."""
    return {"engine": "tantivy", "k1": K1, "b": B, "analyzer": "syllables + unaccented + unaccented bigrams"}
