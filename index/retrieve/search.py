"""Queries -> ranked passages: question search and similar passages over one loaded index."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np

from index.encode.embed import TextEncoder, load_encoder
from index.retrieve.answer import Annotator, Span, idf_weight
from index.retrieve.fusion import normalized_score_fusion, reciprocal_rank_fusion, sentence_evidence
from index.store.base import IndexReader, IndexView, ModelMismatch, Ranking, StoredPassage
from index.store.filters import NO_FILTERS, Filters
from index.store.location import FollowedIndex, IndexLocation
from index.text import normalize

MAX_K = 100
# Paging goes this deep: offset + k results at most.
MAX_DEPTH = 1000
# A question, not a document: the longest of ViQuAD's and ViNewsQA's 2,725 dev questions is 159 characters.
MAX_QUERY_CHARS = 500
# Highlights and answer sentences cost about (results x query length); they are computed for as
# many results as keep that product under this budget (all 100 for a 200-character query, the
# first 40 for a 500-character one), so no search costs much over ~50 ms of CPU. The rest of the
# results come without highlights or answer.
MAX_K_TIMES_QUERY_CHARS = 20_000
# Pasted text is embedded as a passage: only its first passage window (the index's chunking
# budget, 256 tokens by default) is read, as a passage that long would have been split when indexed.
MAX_SIMILAR_TEXT_CHARS = 20_000
MODES = ("hybrid", "dense", "lexical")
# Candidates ranked beyond k: a passage deleted after the view a search ranks on was taken is
# gone from the database by the time its text is read, and the next candidate takes its place.
LATE_DELETES = 10
QUERY_CACHE_SIZE = 1024
# Lexical matches whose spelling restores a query typed without diacritics or capitals.
NEARBY_PASSAGES = 5


@dataclass(frozen=True)
class FusionSettings:
    """How hybrid search merges the legs. The dense leg scores each candidate of either leg by its
    whole passage and its best sentence (`passage_share` of the first); each leg's top `depth`
    scores are shifted to start at 0, divided by their standard deviation (`scale`) and summed
    with these weights. `scale`, `passage_share` and `dense_weight` come from `python
    bench/fit_fusion.py` (a grid, 5-fold cross-validation on the ViQuAD and ViNewsQA dev
    questions, accented and not): every fold picks the standard deviation, and its best, share 0
    and weight 1.4 (mean MRR@10 .842), lowers dense mode on the seed questions (.922 -> .878);
    share .2 and weight 1.3 (.841) is the best setting that lowers none of the project's own
    sets in either mode. Divided by the range (min-max), as before, the same rule picks share
    .2, weight 1.1 (.838; the service had 1.0, .837), and with passages alone weight 0.6.
    Min-max fusion beat reciprocal-rank fusion on both sets (ViQuAD .823 vs .784, ViNewsQA .794
    vs .729, before sentences); depth 50-300 changed MRR@10 by under .005. The lexical weight is
    further scaled by the share of query syllables the corpus knows, which keeps English
    questions on the dense leg."""

    method: str = "score"  # "score" (normalised scores summed) or "rrf"
    scale: str = "sd"  # what "score" divides each leg's scores by: "sd" or "range" (min-max)
    dense_weight: float = 1.3
    passage_share: float = 0.2
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
    path: str | None = None
    page: int | None = None
    row: int | None = None

    def to_dict(self) -> dict:
        answer = None
        if self.answer:
            answer = {
                "text": self.text[self.answer[0] : self.answer[1]],
                "start": self.answer[0],
                "end": self.answer[1],
            }
        return {
            "id": self.id,
            "score": round(self.score, 6),
            "text": self.text,
            "doc_id": self.doc_id,
            "title": self.title,
            "date": self.date,
            "source": self.source,
            "position": self.position,
            "heading": self.heading,
            "path": self.path,
            "page": self.page,
            "row": self.row,
            "highlights": [list(span) for span in self.highlights],
            "answer": answer,
        }


def check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidRequest(f"k must be a whole number from 1 to {MAX_K}")
    return k


def check_page(offset: object, k: int) -> tuple[int, int]:
    """(offset, k) of a page: results are served to depth MAX_DEPTH, so a page reaching past it is cut short."""
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < MAX_DEPTH:
        raise InvalidRequest(f"offset must be a whole number from 0 to {MAX_DEPTH - 1}")
    return offset, min(k, MAX_DEPTH - offset)


def check_text(text: object, what: str, limit: int) -> str:
    if not isinstance(text, str):
        raise InvalidRequest(f"{what} must be a string")
    if "\x00" in text:
        raise InvalidRequest(f"{what} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"{what} contains a lone surrogate (\\ud800-\\udfff), which is not text") from None
    text = normalize(text)
    if not text:
        raise InvalidRequest(f"{what} is empty")
    if len(text) > limit:
        raise InvalidRequest(f"{what} is {len(text)} characters long; the limit is {limit}")
    return text


class SearchObserver(Protocol):
    """Told about each query embedding: whether the cache had it, and the encoder's time if not."""

    def query_embedding(self, cached: bool, seconds: float) -> None: ...


class _Unobserved:
    def query_embedding(self, cached: bool, seconds: float) -> None:
        pass


class Searcher:
    """Searches one index. `followed` keeps its reader current (index/store/location.py); each call
    reads `self.index` and its view once, so a search that started on the old state finishes on it."""

    def __init__(self, followed: FollowedIndex, encoder: TextEncoder, observer: SearchObserver | None = None):
        if encoder.model_id != followed.reader.manifest.model:
            raise ModelMismatch(
                f"encoder {encoder.model_id!r} does not match the index's {followed.reader.manifest.model!r}"
            )
        self.followed = followed
        self.encoder = encoder
        self.observer = observer or _Unobserved()
        # people repeat queries, and hybrid and dense share one embedding of each
        self._query_vector = lru_cache(maxsize=QUERY_CACHE_SIZE)(self._encode_query)
        self._encoding = threading.local()

    @classmethod
    def open(cls, location: IndexLocation, model: str | None = None, encoder: TextEncoder | None = None) -> Searcher:
        """Load the index and the model that built it (`model` must agree with the manifest)."""
        followed = FollowedIndex(location, model=model or (encoder.model_id if encoder else None))
        return cls(followed, encoder or load_encoder(followed.reader.manifest.model))

    @property
    def index(self) -> IndexReader:
        return self.followed.reader

    @property
    def size(self) -> int:
        return self.index.view.passages

    def search(
        self, query: object, k: object = 10, mode: object = "hybrid", filters: Filters = NO_FILTERS, offset: object = 0
    ) -> list[SearchResult]:
        query = check_text(query, "query", MAX_QUERY_CHARS)
        k = check_k(k)
        offset, k = check_page(offset, k)
        if mode not in MODES:
            raise InvalidRequest(f"mode must be one of {', '.join(MODES)}")
        index = self.index
        view = index.view
        scores, ids = self._rank(index, view, query, offset + k + LATE_DELETES, mode, filters)
        return self._results(index, (scores[offset:], ids[offset:]), k, query)

    def rank(
        self, query: str, k: int, mode: str, fusion: FusionSettings = FUSION, filters: Filters = NO_FILTERS
    ) -> Ranking:
        """(scores, int ids) of the best `k` passages for a checked query."""
        index = self.index
        return self._rank(index, index.view, query, k, mode, filters, fusion)

    def _rank(
        self,
        index: IndexReader,
        view: IndexView,
        query: str,
        k: int,
        mode: str,
        filters: Filters,
        fusion: FusionSettings = FUSION,
    ) -> Ranking:
        if mode == "lexical":
            return index.lexical_search(query, k, filters, view)
        depth = max(k, fusion.depth)
        if mode == "dense":
            vector = self._observed_query_vector(index.accents.restore(query))
            scores, ids = self._by_sentences(index, vector, index.dense(vector, depth, filters, view)[1], depth, fusion)
            return scores[:k], ids[:k]
        # read once: restoration and the lexical weight both need it (a round trip each on Milvus)
        coverage = index.accents.coverage(query)
        lexical = index.lexical_search(query, depth, filters, view)
        vector = self._observed_query_vector(self.restored(index, query, coverage, lexical))
        dense = index.dense(vector, depth, filters, view)
        legs = (self._by_sentences(index, vector, np.concatenate([dense[1], lexical[1]]), depth, fusion), lexical)
        # a query the corpus vocabulary does not cover (English, say) matches lexically by accident
        weights = (fusion.dense_weight, fusion.lexical_weight * coverage)
        if fusion.method == "rrf":
            scores, ids = reciprocal_rank_fusion(legs, weights, fusion.rrf_k)
        else:
            scores, ids = normalized_score_fusion(legs, weights, fusion.scale)
        return scores[:k], ids[:k]

    @staticmethod
    def restored(index: IndexReader, query: str, coverage: float, lexical: Ranking) -> str:
        """The query the dense leg embeds: the model reads Vietnamese with its diacritics and
        capitals far better than without, and the passages the query matches lexically show how
        its words are written."""

        def nearby() -> list[str]:
            return [p.text for p in index.passages.by_int_ids(lexical[1][:NEARBY_PASSAGES].tolist()).values()]

        return index.accents.restore(query, coverage, nearby)

    @staticmethod
    def _by_sentences(
        index: IndexReader, vector: np.ndarray, candidates: np.ndarray, depth: int, fusion: FusionSettings
    ) -> Ranking:
        """The dense leg: `candidates` (of either leg) scored by their whole and their best
        sentence, the best `depth` of them."""
        # a passage deleted since a leg ranked it is not found
        evidence = index.evidence(list(dict.fromkeys(candidates.tolist())))
        scores = sentence_evidence(vector, evidence.passages, evidence.sentences, evidence.counts, fusion.passage_share)
        order = np.lexsort((evidence.ids, -scores))[:depth]
        return scores[order], evidence.ids[order]

    def _observed_query_vector(self, query: str) -> np.ndarray:
        self._encoding.seconds = None
        vector = self._query_vector(query)
        seconds = self._encoding.seconds  # set only when the cache did not have it
        self.observer.query_embedding(seconds is None, seconds or 0.0)
        return vector

    def _encode_query(self, query: str) -> np.ndarray:
        started = time.perf_counter()
        vector = self.encoder.encode_queries([query])[0]
        vector.flags.writeable = False  # shared by every caller of the cache
        self._encoding.seconds = time.perf_counter() - started
        return vector

    def passage(self, passage_id: str, index: IndexReader | None = None) -> StoredPassage:
        index = index or self.index
        passage = index.passages.by_id(passage_id) if isinstance(passage_id, str) else None
        if passage is None:
            raise UnknownPassage(passage_id)
        return passage

    def neighbours(self, passage: StoredPassage, before: int = 1, after: int = 1) -> list[StoredPassage]:
        """The passage with those around it in its document, in reading order."""
        return self.index.passages.in_document(passage.doc_id, passage.position - before, passage.position + after)

    def similar_to_passage(
        self, passage_id: str, k: object = 10, filters: Filters = NO_FILTERS, offset: object = 0
    ) -> list[SearchResult]:
        """Passages nearest to a stored one, leaving out the passage itself and exact copies of it."""
        k = check_k(k)
        offset, k = check_page(offset, k)
        index = self.index
        view = index.view
        source = self.passage(passage_id, index)
        vector = index.vector(source.int_id)
        size = view.passages
        depth = offset + k + 1
        while True:
            results = [
                r
                for r in self._nearest(index, view, vector, depth, filters)
                if r.id != source.id and r.text != source.text
            ]
            if len(results) >= offset + k or depth >= size:
                return results[offset : offset + k]
            depth = min(depth * 4, size)

    def similar_to_text(
        self, text: object, k: object = 10, filters: Filters = NO_FILTERS, offset: object = 0
    ) -> list[SearchResult]:
        """Passages nearest to a pasted text, embedded as a passage (its first passage window)."""
        text = check_text(text, "text", MAX_SIMILAR_TEXT_CHARS)
        k = check_k(k)
        offset, k = check_page(offset, k)
        index = self.index
        window = self.encoder.truncate(text, index.manifest.chunking.get("max_tokens", self.encoder.max_tokens))
        return self._nearest(index, index.view, self.encoder.encode_passages([window])[0], offset + k, filters)[offset:]

    def _nearest(
        self, index: IndexReader, view: IndexView, vector: np.ndarray, k: int, filters: Filters
    ) -> list[SearchResult]:
        return self._results(index, index.dense(vector, k + LATE_DELETES, filters, view), k)

    def document(self, doc_id: str) -> dict | None:
        """A document's metadata and its passages' ids."""
        return self.index.passages.document(doc_id)

    def sources(self) -> list[str]:
        """The sources filters can name."""
        return self.index.passages.sources()

    def _results(self, index: IndexReader, ranking: Ranking, k: int, query: str | None = None) -> list[SearchResult]:
        """Stored passages for the ranked ids; with a query, also its highlights and answer sentence."""
        hits = [(int(i), float(s)) for s, i in zip(*ranking) if i >= 0]
        stored = index.passages.by_int_ids([i for i, _ in hits])
        annotate = Annotator(query, idf_weight(index.accents.frequency, index.accents.total)) if query else None
        annotated = MAX_K_TIMES_QUERY_CHARS // len(query) if query else 0
        results: list[SearchResult] = []
        for int_id, score in hits:
            if len(results) == k:
                break
            if int_id not in stored:
                continue
            p = stored[int_id]
            explain = len(results) < annotated
            marks, answer = annotate(p.text) if explain and annotate else ((), None)
            results.append(
                SearchResult(
                    p.id,
                    score,
                    p.text,
                    p.doc_id,
                    p.title,
                    p.date,
                    p.source,
                    p.position,
                    p.heading,
                    tuple(marks),
                    answer,
                    p.path,
                    p.page,
                    p.row,
                )
            )
        return results
