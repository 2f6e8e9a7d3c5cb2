"""Pure functions that merge ranked lists from the dense and lexical legs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from index.encode.evidence import Evidence
from index.store.base import Ranking


def reciprocal_rank_fusion(rankings: Sequence[Ranking], weights: Sequence[float], k: float = 60.0) -> Ranking:
    """sum_i w_i / (k + rank_i): rank-based, so the legs' score scales never have to agree."""
    fused: dict[int, float] = {}
    for (_, ids), weight in zip(rankings, weights):
        for rank, id_ in enumerate(ids.tolist(), 1):
            fused[id_] = fused.get(id_, 0.0) + weight / (k + rank)
    return _sorted(fused)


def normalized_score_fusion(rankings: Sequence[Ranking], weights: Sequence[float], scale: str = "sd") -> Ranking:
    """sum_i w_i * s_i with each leg's scores shifted to start at 0 over its own candidates and
    divided by their standard deviation ("sd") or their range ("range", min-max); a candidate a
    leg did not return gets 0 from it. Divided by the range, one outlying score (a single
    far-ahead first, or a long flat tail) squeezes the rest of its leg; the standard deviation
    is the z-score up to a shift every candidate shares."""
    fused: dict[int, float] = {}
    for (scores, ids), weight in zip(rankings, weights):
        if len(scores) == 0:
            continue
        low = float(scores.min())
        spread = float(scores.std()) if scale == "sd" else float(scores.max()) - low
        scaled = (scores - low) / spread if spread > 0 else np.ones_like(scores)
        for id_, value in zip(ids.tolist(), scaled.tolist()):
            fused[id_] = fused.get(id_, 0.0) + weight * value
    return _sorted(fused)


def _sorted(fused: dict[int, float]) -> Ranking:
    if not fused:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    ids = np.fromiter(fused.keys(), dtype=np.int64, count=len(fused))
    scores = np.fromiter(fused.values(), dtype=np.float64, count=len(fused))
    order = np.lexsort((ids, -scores))  # ties broken by id, so results are deterministic
    return scores[order].astype(np.float32), ids[order]


def sentence_cosines(
    query: np.ndarray, passages: np.ndarray, sentences: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each candidate's cosine with the query as a whole, its best sentence's, and which of its
    sentences that is (the first of equals)."""
    if not len(counts):
        return np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    scores = passage_cosines(query, sentences)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    best = np.maximum.reduceat(scores, starts)
    owner = np.repeat(np.arange(len(counts)), counts)
    local = np.arange(len(scores)) - starts[owner]
    which = np.minimum.reduceat(np.where(scores == best[owner], local, len(scores)), starts)
    return passage_cosines(query, passages), best, which


def passage_cosines(query: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Each row's cosine with the query (unit vectors), in numpy's own loop on one thread:
    OpenBLAS, woken for products this small, left its threads spinning through the rest of the
    search (1.5 ms of CPU per search more)."""
    return np.einsum("rd,d->r", rows, query)


@dataclass(frozen=True)
class Cosines:
    """A query's cosines with candidates: each one's whole passage, its best sentence, which of its
    sentences that is, and how many it has."""

    ids: np.ndarray
    whole: np.ndarray
    best: np.ndarray
    which: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, query: np.ndarray, evidence: Evidence) -> Cosines:
        whole, best, which = sentence_cosines(query, evidence.passages, evidence.sentences, evidence.counts)
        return cls(evidence.ids, whole, best, which, evidence.counts)

    def dense(self, passage_share: float) -> np.ndarray:
        """The dense leg's score of each: passage_share · whole + (1 − passage_share) · best."""
        return (passage_share * self.whole + (1 - passage_share) * self.best).astype(np.float32)
