"""Queries -> ranked passages: question search and similar passages over one loaded index."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .answer import Span, answer_span, highlights, idf_weight
from .embed import SentenceTransformerEncoder, TextEncoder
from .fusion import Ranking, normalized_score_fusion, reciprocal_rank_fusion
from .passage_store import StoredPassage
from .store import LoadedIndex, open_index
from .text import normalize

MAX_K = 100
MAX_QUERY_CHARS = 2_000
MAX_SIMILAR_TEXT_CHARS = 20_000
MODES = ("hybrid", "dense", "lexical")
QUERY_CACHE_SIZE = 1024


@dataclass(frozen=True)
class FusionSettings:
    """How hybrid search merges the legs. Chosen on the ViQuAD and ViNewsQA dev sets (MRR@10,
    accented / unaccented): min-max score fusion beat reciprocal-rank fusion everywhere (ViQuAD
    .823 vs .784, ViNewsQA .794 vs .729 at these weights), and the dense leg, weaker alone
    (.691 / .599 against BM25's .775 / .784), helps most at about 0.6 of the lexical weight.
    Depth 50-300 changed MRR@10 by under .005. The lexical weight is further scaled by the share of
    query syllables the corpus knows, which keeps English questions on the dense leg."""

    method: str = "score"  # "score" (min-max normalised) or "rrf"
    dense_weight: float = 0.6
    lexical_weight: float = 1.0
    depth: int = 100  # candidates taken from each leg
    rrf_k: float = 60.0


FUSION = FusionSettings()


class InvalidRequest(ValueError):
    """Input a caller must fix: empty or oversized text, a bad k."""


class UnknownPassage(KeyError):
    def __str__(self) -> str:
        return f"no passage with id {self.args[0]!r}"


@dataclass(frozen=True)
class SearchResult:
    id: str
    score: float
    text: str
    doc_id: str
    title: str
    date: str | None
    source: str | None
    position: int
    heading: str | None
    highlights: tuple[Span, ...] = ()
    answer: Span | None = None

    def to_dict(self) -> dict:
        answer = None
        if self.answer:
            answer = {"text": self.text[self.answer[0] : self.answer[1]], "start": self.answer[0], "end": self.answer[1]}
        return {
            "id": self.id, "score": round(self.score, 6), "text": self.text, "doc_id": self.doc_id,
            "title": self.title, "date": self.date, "source": self.source, "position": self.position,
            "heading": self.heading, "highlights": [list(span) for span in self.highlights], "answer": answer,
        }


def check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidRequest(f"k must be a whole number from 1 to {MAX_K}")
    return k


def check_text(text: object, what: str, limit: int) -> str:
    if not isinstance(text, str):
        raise InvalidRequest(f"{what} must be a string")
    text = normalize(text)
    if not text:
        raise InvalidRequest(f"{what} is empty")
    if len(text) > limit:
        raise InvalidRequest(f"{what} is {len(text)} characters long; the limit is {limit}")
    return text


class Searcher:
    def __init__(self, index: LoadedIndex, encoder: TextEncoder):
        if encoder.model_id != index.manifest.model:
            raise ValueError(f"encoder {encoder.model_id!r} does not match the index's {index.manifest.model!r}")
        self.index = index
        self.encoder = encoder
        # people repeat queries, and hybrid and dense share one embedding of each
        self._query_vector = lru_cache(maxsize=QUERY_CACHE_SIZE)(self._encode_query)

    @classmethod
    def open(cls, index_dir: Path, model: str | None = None, encoder: TextEncoder | None = None) -> Searcher:
        """Load the index and the model that built it (`model` must agree with the manifest)."""
        index = open_index(index_dir, model=model or (encoder.model_id if encoder else None))
        return cls(index, encoder or SentenceTransformerEncoder(index.manifest.model))

    @property
    def size(self) -> int:
        return self.index.manifest.passages

    def search(self, query: object, k: object = 10, mode: object = "hybrid") -> list[SearchResult]:
        query = check_text(query, "query", MAX_QUERY_CHARS)
        k = check_k(k)
        if mode not in MODES:
            raise InvalidRequest(f"mode must be one of {', '.join(MODES)}")
        return self._results(self.rank(query, k, mode), k, query)

    def rank(self, query: str, k: int, mode: str, fusion: FusionSettings = FUSION) -> Ranking:
        """(scores, int ids) of the best `k` passages for a checked query."""
        depth = max(k, fusion.depth) if mode == "hybrid" else k
        legs = []
        if mode in ("dense", "hybrid"):
            scores, ids = self.index.vectors.search(self._query_vector(query)[None, :], depth)
            keep = ids[0] >= 0
            legs.append((scores[0][keep], ids[0][keep]))
        if mode in ("lexical", "hybrid"):
            legs.append(self.index.lexical.search(query, depth))
        if mode != "hybrid":
            return legs[0]
        # a query the corpus vocabulary does not cover (English, say) matches lexically by accident
        weights = (fusion.dense_weight, fusion.lexical_weight * self.index.accents.coverage(query))
        if fusion.method == "rrf":
            scores, ids = reciprocal_rank_fusion(legs, weights, fusion.rrf_k)
        else:
            scores, ids = normalized_score_fusion(legs, weights)
        return scores[:k], ids[:k]

    def _encode_query(self, query: str) -> np.ndarray:
        # the model reads accented Vietnamese far better than the same words typed without accents
        vector = self.encoder.encode_queries([self.index.accents.restore(query)])[0]
        vector.flags.writeable = False  # shared by every caller of the cache
        return vector

    def passage(self, passage_id: str) -> StoredPassage:
        passage = self.index.passages.by_id(passage_id) if isinstance(passage_id, str) else None
        if passage is None:
            raise UnknownPassage(passage_id)
        return passage

    def neighbours(self, passage: StoredPassage, before: int = 1, after: int = 1) -> list[StoredPassage]:
        """The passage with those around it in its document, in reading order."""
        return self.index.passages.in_document(passage.doc_id, passage.position - before, passage.position + after)

    def similar_to_passage(self, passage_id: str, k: object = 10) -> list[SearchResult]:
        """Passages nearest to a stored one, leaving out the passage itself and exact copies of it."""
        k = check_k(k)
        source = self.passage(passage_id)
        vector = self.index.vectors.vector(source.int_id)[None, :]
        depth = k + 1
        while True:
            results = [r for r in self._nearest(vector, depth) if r.id != source.id and r.text != source.text]
            if len(results) >= k or depth >= self.size:
                return results[:k]
            depth = min(depth * 4, self.size)

    def similar_to_text(self, text: object, k: object = 10) -> list[SearchResult]:
        """Passages nearest to a pasted text, embedded as a passage."""
        text = check_text(text, "text", MAX_SIMILAR_TEXT_CHARS)
        k = check_k(k)
        return self._nearest(self.encoder.encode_passages([text]), k)

    def _nearest(self, vector: np.ndarray, k: int) -> list[SearchResult]:
        scores, ids = self.index.vectors.search(vector, k)
        return self._results((scores[0], ids[0]), k)

    def _results(self, ranking: Ranking, k: int, query: str | None = None) -> list[SearchResult]:
        """Stored passages for the ranked ids; with a query, also its highlights and answer sentence."""
        hits = [(int(i), float(s)) for s, i in zip(*ranking) if i >= 0][:k]
        stored = self.index.passages.by_int_ids([i for i, _ in hits])
        weight = idf_weight(self.index.accents.frequency, self.index.accents.total)
        results = []
        for int_id, score in hits:
            if int_id not in stored:
                continue
            p = stored[int_id]
            marks = tuple(highlights(p.text, query)) if query else ()
            answer = answer_span(p.text, query, weight) if query else None
            results.append(SearchResult(p.id, score, p.text, p.doc_id, p.title, p.date, p.source, p.position,
                                        p.heading, marks, answer))
        return results
