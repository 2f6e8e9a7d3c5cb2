"""The stock baselines semsearch is measured against on a BEIR set: BM25 with stemming and stop
words (bm25s + PyStemmer, their defaults, over title + text), and reciprocal-rank fusion of
document rankings (k 60), as the BEIR literature runs them."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from index.evaluate.metrics import ndcg_at, recall_at, reciprocal_rank_at, unique_in_order
from index.evaluate.quality import DEPTH, EvalSet
from index.retrieve.fusion import reciprocal_rank_fusion
from index.retrieve.search import MODES, Searcher

RRF_K = 60.0
BM25 = "BM25 stemmed (bm25s)"
FUSED = "RRF(BM25 stemmed, semsearch dense)"


def stemmed_bm25(corpus: Path, language: str = "english", depth: int = 100) -> Callable[[str], list[str]]:
    """A function from a question to the ids of the corpus's documents it ranks first."""
    import bm25s
    import Stemmer

    records = [json.loads(line) for line in Path(corpus).read_text(encoding="utf-8").splitlines() if line.strip()]
    ids = [r["id"] for r in records]
    stemmer = Stemmer.Stemmer(language)
    stopwords = "en" if language == "english" else language
    retriever = bm25s.BM25()
    texts = [f"{r.get('title', '')} {r['text']}" for r in records]
    retriever.index(
        bm25s.tokenize(texts, stopwords=stopwords, stemmer=stemmer, show_progress=False), show_progress=False
    )

    def rank(question: str) -> list[str]:
        tokens = bm25s.tokenize([question], stopwords=stopwords, stemmer=stemmer, show_progress=False)
        found, _ = retriever.retrieve(tokens, k=min(depth, len(ids)), show_progress=False)
        return [ids[i] for i in found[0].tolist()]

    return rank


def fused(rankings: Sequence[list[str]]) -> list[str]:
    """Reciprocal-rank fusion of document rankings, with equal weights."""
    names = sorted({d for ranking in rankings for d in ranking})
    number = {d: n for n, d in enumerate(names)}
    legs = [(np.zeros(len(r)), np.array([number[d] for d in r], np.int64)) for r in rankings]
    return [names[i] for i in reciprocal_rank_fusion(legs, [1.0] * len(legs), RRF_K)[1].tolist()]


def compared(searcher: Searcher, evalset: EvalSet, language: str = "english") -> dict[str, dict[str, float]]:
    """Mean MRR@10, nDCG@10 and R@10 of semsearch's modes and of the baselines on the same
    questions, at document level: {system: {metric: value}}."""
    bm25 = stemmed_bm25(evalset.corpus[0], language)
    doc_of: dict[int, str] = {}

    def documents(question: str, mode: str) -> list[str]:
        _, ids = searcher.rank(question, DEPTH, mode)
        doc_of.update(searcher.index.passages.doc_ids_of([int(i) for i in ids if int(i) not in doc_of]))
        return unique_in_order([doc_of[int(i)] for i in ids])

    totals: dict[str, dict[str, float]] = {}
    for query in evalset.queries:
        ranked = {f"semsearch {mode}": documents(query.text, mode) for mode in MODES}
        ranked[BM25] = bm25(query.text)
        ranked[FUSED] = fused([ranked[BM25], ranked["semsearch dense"][:100]])
        for system, ranking in ranked.items():
            sums = totals.setdefault(system, {"MRR@10": 0.0, "nDCG@10": 0.0, "R@10": 0.0})
            sums["MRR@10"] += reciprocal_rank_at(ranking, query.relevant, 10)
            sums["nDCG@10"] += ndcg_at(ranking, query.relevant, 10)
            sums["R@10"] += recall_at(ranking, query.relevant, 10)
    return {system: {k: v / max(len(evalset.queries), 1) for k, v in sums.items()} for system, sums in totals.items()}
