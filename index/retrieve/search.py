"""Queries -> ranked passages: question search and similar passages over one loaded index."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Protocol

import numpy as np

from index.encode.embed import TextEncoder, load_encoder
from index.ingest.chunk import evidence_spans
from index.retrieve.answer import Annotator, Span, answer_key, idf_weight
from index.retrieve.confidence import ANSWERED_AT, DATE_SORT_FLOOR, Features, confidence
from index.retrieve.fusion import Cosines, normalized_score_fusion, passage_cosines, reciprocal_rank_fusion
from index.store.analysis import in_stemmed_language
from index.store.base import IndexReader, IndexView, ModelMismatch, Ranking, StoredPassage
from index.store.filters import NO_FILTERS, Filters
from index.store.location import FollowedIndex, IndexLocation
from index.text import normalize, vietnamese_share

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
GROUPS = ("passage", "document")
SORTS = ("relevance", "date")
# Results grouped by document or sorted by date are taken from at least this many passages ranked
# (what hybrid search ranks anyway); grouping ranks deeper, to MAX_DEPTH, while groups are short.
POOL = 100
# A query this little in the corpus's vocabulary (an English question of a Vietnamese index: at
# most .40, where 99% of Vietnamese questions have .59 or more) shares few words with its answer,
# so its answer sentence is the one the dense evidence picked.
CROSS_LINGUAL_COVERAGE = 0.5
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
    language: str | None = None
    confidence: float | None = None
    key: Span | None = None  # within the answer sentence, the words that answer the question
    more: int | None = None  # grouped by document: its other passages among those ranked
    features: Features | None = None  # what the confidence was read from (bench/fit_confidence.py)

    def to_dict(self) -> dict:
        answer = None
        if self.answer:
            answer = {
                "text": self.text[self.answer[0] : self.answer[1]],
                "start": self.answer[0],
                "end": self.answer[1],
                "key": self._span(self.key),
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
            "language": self.language,
            "highlights": [list(span) for span in self.highlights],
            "answer": answer,
            "confidence": None if self.confidence is None else round(self.confidence, 4),
            "more": self.more,
        }

    def _span(self, span: Span | None) -> dict | None:
        return {"text": self.text[span[0] : span[1]], "start": span[0], "end": span[1]} if span else None

    @property
    def answers(self) -> bool:
        """Whether it is likely enough to answer the question to be shown as its answer."""
        return self.confidence is not None and self.confidence >= ANSWERED_AT


class Results(list[SearchResult]):
    """A page of results, and whether the best of all the results answers the question (False
    when none is likely enough to; None for searches without a question)."""

    def __init__(self, results: Iterable[SearchResult] = (), answered: bool | None = None):
        super().__init__(results)
        self.answered = answered


@dataclass(frozen=True)
class Ranked:
    """A ranking, and what its legs read on the way, which a result's confidence reads again."""

    scores: np.ndarray
    ids: np.ndarray
    vector: np.ndarray | None = None  # the query's embedding, when the dense leg ran
    lexical: Ranking | None = None  # the lexical leg's ranking, when it ran
    coverage: float | None = None
    cosines: Cosines | None = None  # the dense leg's, of every candidate it scored


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
        self,
        query: object,
        k: object = 10,
        mode: object = "hybrid",
        filters: Filters = NO_FILTERS,
        offset: object = 0,
        group: object = "passage",
        sort: object = "relevance",
    ) -> Results:
        """A page of the passages answering `query`, best first, each with its confidence;
        `group="document"` keeps each document's best passage (paging counts documents) and
        `sort="date"` puts the newest first among those at least DATE_SORT_FLOOR likely to answer."""
        query = check_text(query, "query", MAX_QUERY_CHARS)
        k = check_k(k)
        offset, k = check_page(offset, k)
        for value, allowed, name in ((mode, MODES, "mode"), (group, GROUPS, "group"), (sort, SORTS, "sort")):
            if value not in allowed:
                raise InvalidRequest(f"{name} must be one of {', '.join(allowed)}")
        index = self.index
        view = index.view
        wanted = offset + k + LATE_DELETES
        depth = wanted if group == "passage" and sort == "relevance" else max(wanted, POOL)
        while True:
            ranked = self._rank(index, view, query, depth, str(mode), filters)
            positions, more = list(range(len(ranked.ids))), dict[int, int]()
            if group == "document":
                positions, more = self._grouped(index, ranked.ids)
                if len(positions) < offset + k and len(ranked.ids) == depth and depth < MAX_DEPTH:
                    depth = min(depth * 4, MAX_DEPTH)
                    continue
            break
        if sort == "date":
            pool = self._results(index, view, ranked, positions, len(positions), query, filters, more)
            likely = {r.id for r in pool if r.confidence is not None and r.confidence >= DATE_SORT_FLOOR}
            # stable: relevance orders the likely of one day, and the unlikely after them
            ordered = sorted(pool, key=lambda r: (r.id in likely, r.date or "" if r.id in likely else ""), reverse=True)
            return Results(ordered[offset : offset + k], _answered(pool[:1]))
        page = self._results(index, view, ranked, positions[offset:], k, query, filters, more)
        # whether the question is answered is the best result's to say, whichever page this is
        best = page[:1] if offset == 0 else self._results(index, view, ranked, [0], 1, query, filters)
        return Results(page, _answered(best))

    def rank(
        self, query: str, k: int, mode: str, fusion: FusionSettings = FUSION, filters: Filters = NO_FILTERS
    ) -> Ranking:
        """(scores, int ids) of the best `k` passages for a checked query."""
        index = self.index
        ranked = self._rank(index, index.view, query, k, mode, filters, fusion)
        return ranked.scores, ranked.ids

    def _rank(
        self,
        index: IndexReader,
        view: IndexView,
        query: str,
        k: int,
        mode: str,
        filters: Filters,
        fusion: FusionSettings = FUSION,
    ) -> Ranked:
        if mode == "lexical":
            scores, ids = index.lexical_search(query, k, filters, view)
            return Ranked(scores, ids, lexical=(scores, ids))
        depth = max(k, fusion.depth)
        if mode == "dense":
            vector = self._observed_query_vector(self.restored(index, query))
            (scores, ids), cosines = self._by_sentences(
                index, vector, index.dense(vector, depth, filters, view)[1], depth, fusion
            )
            return Ranked(scores[:k], ids[:k], vector, cosines=cosines)
        # read once: restoration and the lexical weight both need it (a round trip each on Milvus)
        coverage = index.accents.coverage(query)
        lexical = index.lexical_search(query, depth, filters, view)
        vector = self._observed_query_vector(self.restored(index, query, coverage, lexical))
        dense = index.dense(vector, depth, filters, view)
        by_sentences, cosines = self._by_sentences(index, vector, np.concatenate([dense[1], lexical[1]]), depth, fusion)
        legs = (by_sentences, lexical)
        # a query the corpus vocabulary does not cover (English of a Vietnamese corpus, say) matches
        # lexically by accident; one read in a language of the corpus's own does not
        own_language = in_stemmed_language(query, index.languages)
        weights = (fusion.dense_weight, fusion.lexical_weight * (1.0 if own_language else coverage))
        if fusion.method == "rrf":
            scores, ids = reciprocal_rank_fusion(legs, weights, fusion.rrf_k)
        else:
            scores, ids = normalized_score_fusion(legs, weights, fusion.scale)
        return Ranked(scores[:k], ids[:k], vector, lexical, coverage, cosines)

    @staticmethod
    def _grouped(index: IndexReader, ids: np.ndarray) -> tuple[list[int], dict[int, int]]:
        """The position of each document's best passage in the ranking, in order, and how many
        more of its passages are ranked, by position."""
        doc_of = index.passages.doc_ids_of([int(i) for i in ids])
        best: dict[str, int] = {}
        more: dict[int, int] = {}
        for position, int_id in enumerate(ids.tolist()):
            doc = doc_of.get(int_id)
            if doc is None:  # deleted since it was ranked
                continue
            if doc in best:
                more[best[doc]] += 1
            else:
                best[doc] = position
                more[position] = 0
        return list(best.values()), more

    @staticmethod
    def restored(index: IndexReader, query: str, coverage: float | None = None, lexical: Ranking | None = None) -> str:
        """The query the dense leg embeds: the model reads Vietnamese with its diacritics and
        capitals far better than without, and the passages the query matches lexically (when
        the lexical leg ran) show how its words are written. A query in another of the index's
        languages is embedded as typed."""
        if in_stemmed_language(query, index.languages):
            return query

        if lexical is None:
            return index.accents.restore(query, coverage)
        matched = lexical[1][:NEARBY_PASSAGES].tolist()
        return index.accents.restore(
            query, coverage, lambda: [p.text for p in index.passages.by_int_ids(matched).values()]
        )

    @staticmethod
    def _by_sentences(
        index: IndexReader, vector: np.ndarray, candidates: np.ndarray, depth: int, fusion: FusionSettings
    ) -> tuple[Ranking, Cosines]:
        """The dense leg: `candidates` (of either leg) scored by their whole and their best
        sentence, the best `depth` of them; and the cosines they were scored from."""
        # a passage deleted since a leg ranked it is not found
        cosines = Cosines.of(vector, index.evidence(list(dict.fromkeys(candidates.tolist()))))
        scores = cosines.dense(fusion.passage_share)
        order = np.lexsort((cosines.ids, -scores))[:depth]
        return (scores[order], cosines.ids[order]), cosines

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
        # a large index's vectors are rounded (8-bit codes): its nearest are found there and
        # scored again from the stored float32 vectors, as the dense leg's candidates are
        _, candidates = index.dense(vector, max(k + LATE_DELETES, FUSION.depth), filters, view)
        evidence = index.evidence(candidates.tolist())
        scores = passage_cosines(vector, evidence.passages)
        order = np.lexsort((evidence.ids, -scores))[: k + LATE_DELETES]
        return self._results(index, view, Ranked(scores[order], evidence.ids[order]), list(range(len(order))), k)

    def document(self, doc_id: str) -> dict | None:
        """A document's metadata and its passages' ids."""
        return self.index.passages.document(doc_id)

    def sources(self) -> list[str]:
        """The sources filters can name."""
        return self.index.passages.sources()

    def _results(
        self,
        index: IndexReader,
        view: IndexView,
        ranked: Ranked,
        positions: list[int],
        k: int,
        query: str | None = None,
        filters: Filters = NO_FILTERS,
        more: dict[int, int] | None = None,
    ) -> list[SearchResult]:
        """The first `k` still stored of the passages at `positions` of the ranking; with a query,
        also their highlights, answer sentence and confidence."""
        ids = ranked.ids.tolist()
        chosen = [p for p in positions[: k + LATE_DELETES] if p < len(ids) and ids[p] >= 0]
        stored = index.passages.by_int_ids([ids[p] for p in chosen])
        chosen = [p for p in chosen if ids[p] in stored][:k]
        explain = self._explainer(index, view, ranked, chosen, query, filters) if query else None
        results = []
        for n, position in enumerate(chosen):
            p = stored[ids[position]]
            results.append(
                SearchResult(
                    p.id,
                    float(ranked.scores[position]),
                    p.text,
                    p.doc_id,
                    p.title,
                    p.date,
                    p.source,
                    p.position,
                    p.heading,
                    path=p.path,
                    page=p.page,
                    row=p.row,
                    language=p.language,
                    more=more.get(position) if more is not None else None,
                )
            )
            if explain and n < MAX_K_TIMES_QUERY_CHARS // len(query or " "):
                results[-1] = explain(results[-1], position)
        return results

    def _explainer(
        self,
        index: IndexReader,
        view: IndexView,
        ranked: Ranked,
        positions: list[int],
        query: str,
        filters: Filters,
    ) -> Callable[[SearchResult, int], SearchResult]:
        """What explains the results at `positions`: each one's highlights, answer sentence, the
        words answering in it, and its confidence. Reads what the ranking's legs did not: the
        query's embedding in lexical mode, the lexical leg in dense mode."""
        ids = ranked.ids.tolist()
        vector = ranked.vector
        if vector is None:
            vector = self._observed_query_vector(self.restored(index, query))
        lexical = ranked.lexical or index.lexical_search(query, FUSION.depth, filters, view)
        lexical_rank = {int(i): rank for rank, i in enumerate(lexical[1].tolist())}
        coverage = index.accents.coverage(query) if ranked.coverage is None else ranked.coverage
        cosines = ranked.cosines
        if cosines is None:  # lexical mode: no dense leg scored them; the next of each, for its gap
            wanted = dict.fromkeys(ids[q] for p in positions for q in (p, p + 1) if q < len(ids))
            cosines = Cosines.of(vector, index.evidence(list(wanted)))
        at = {int(i): n for n, i in enumerate(cosines.ids.tolist())}
        dense = cosines.dense(FUSION.passage_share)
        annotate = Annotator(query, idf_weight(index.accents.frequency, index.accents.total))
        query_language = vietnamese_share(query)

        def explain(result: SearchResult, position: int) -> SearchResult:
            annotation = annotate(result.text)
            answer = annotation.answer
            n = at.get(ids[position])
            if n is not None and (answer is None or coverage < CROSS_LINGUAL_COVERAGE):
                spans = evidence_spans(result.text)
                answer = spans[int(cosines.which[n]) % len(spans)] if cosines.counts[n] % len(spans) == 0 else answer
            if n is None:
                return replace(result, highlights=tuple(annotation.marks), answer=answer)
            following = at.get(ids[position + 1]) if position + 1 < len(ids) else None
            features = Features(
                sentence=float(cosines.best[n]),
                passage=float(cosines.whole[n]),
                matched=annotation.matched,
                coverage=coverage,
                language_gap=abs(query_language - vietnamese_share(result.text)),
                lexical=1.0 / (1 + lexical_rank[ids[position]]) if ids[position] in lexical_rank else 0.0,
                gap=float(dense[n] - dense[following]) if following is not None else 0.0,
                rank=math.log1p(position),
            )
            return replace(
                result,
                highlights=tuple(annotation.marks),
                answer=answer,
                key=answer_key(query, result.text, answer) if answer else None,
                confidence=confidence(features),
                features=features,
            )

        return explain


def _answered(best: list[SearchResult]) -> bool:
    return bool(best) and best[0].answers
