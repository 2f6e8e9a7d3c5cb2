"""Queries -> ranked passages: question search and similar passages over one loaded index."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .embed import SentenceTransformerEncoder, TextEncoder
from .passage_store import StoredPassage
from .store import LoadedIndex, open_index
from .text import normalize

MAX_K = 100
MAX_QUERY_CHARS = 2_000
MAX_SIMILAR_TEXT_CHARS = 20_000


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

    def to_dict(self) -> dict:
        return {
            "id": self.id, "score": round(self.score, 6), "text": self.text, "doc_id": self.doc_id,
            "title": self.title, "date": self.date, "source": self.source, "position": self.position,
            "heading": self.heading,
        }


def _result(passage: StoredPassage, score: float) -> SearchResult:
    return SearchResult(
        passage.id, float(score), passage.text, passage.doc_id, passage.title, passage.date,
        passage.source, passage.position, passage.heading,
    )


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

    @classmethod
    def open(cls, index_dir: Path, model: str | None = None, encoder: TextEncoder | None = None) -> Searcher:
        """Load the index and the model that built it (`model` must agree with the manifest)."""
        index = open_index(index_dir, model=model or (encoder.model_id if encoder else None))
        return cls(index, encoder or SentenceTransformerEncoder(index.manifest.model))

    @property
    def size(self) -> int:
        return self.index.manifest.passages

    def search(self, query: object, k: object = 10) -> list[SearchResult]:
        query = check_text(query, "query", MAX_QUERY_CHARS)
        k = check_k(k)
        vector = self.encoder.encode_queries([query])
        return self._nearest(vector, k)

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
        hits = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
        stored = self.index.passages.by_int_ids([i for i, _ in hits])
        return [_result(stored[i], s) for i, s in hits if i in stored]
