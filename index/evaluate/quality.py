"""Measure retrieval quality: BEIR-style sets (corpus, queries, qrels) evaluated at document level,
and answer-string sets (a returned passage is a hit if it contains an answer)."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from index.evaluate.metrics import ndcg_at, recall_at, reciprocal_rank_at, unique_in_order
from index.retrieve.search import MODES, Searcher
from index.text import fold, normalize

RECALL_KS = (1, 5, 10, 100)
HIT_KS = (1, 5, 10)
# Passages fetched per query: documents rank at their best passage, so recall@100 over
# documents needs more than 100 passages when documents are chunked.
DEPTH = 300


@dataclass
class EvalQuery:
    id: str
    text: str
    relevant: set[str] = field(default_factory=set)  # document ids (BEIR sets)
    answers: list[str] = field(default_factory=list)  # answer substrings (answer-string sets)


@dataclass
class EvalSet:
    name: str
    corpus: list[Path]
    queries: list[EvalQuery]
    kind: str  # "qrels" or "answers"


def load_eval_set(path: Path, corpus: Path | None = None) -> EvalSet:
    """A directory with corpus.jsonl, queries*.jsonl and qrels*.tsv (BEIR), or a .jsonl file of
    {"query", "answers"} or {"query", "relevant": [document ids]} lines searched against `corpus`
    (default: the bundled corpus)."""
    path = Path(path)
    if path.is_dir():
        queries_file = _one(path, "queries*.jsonl")
        qrels: dict[str, set[str]] = {}
        for line in _one(path, "qrels*.tsv").read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and parts[0] != "query-id" and (len(parts) < 3 or parts[2].strip() != "0"):
                qrels.setdefault(parts[0], set()).add(parts[1])
        records = [json.loads(line) for line in queries_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        queries = [
            EvalQuery(query_id, q["text"], relevant=qrels[query_id])
            for q in records
            if (query_id := q.get("id", q.get("_id"))) in qrels
        ]
        return EvalSet(path.name, [_one(path, "corpus.jsonl")], queries, "qrels")
    records = list(map(json.loads, filter(str.strip, path.read_text(encoding="utf-8").splitlines())))
    # questions about a third-party corpus name their passages by id: its text stays out of the project
    if records and all("relevant" in q for q in records):
        queries = [
            EvalQuery(q.get("id", str(n)), q["query"], relevant=set(q["relevant"])) for n, q in enumerate(records)
        ]
        return EvalSet(path.stem, [Path(corpus or "data/corpus")], queries, "qrels")
    queries = [EvalQuery(q.get("id", str(n)), q["query"], answers=q["answers"]) for n, q in enumerate(records)]
    return EvalSet(path.stem, [Path(corpus or "data/corpus")], queries, "answers")


def _one(directory: Path, pattern: str) -> Path:
    matches = sorted(directory.glob(pattern))
    if not matches:
        raise FileNotFoundError(f"{directory} has no {pattern}")
    return matches[0]


def subset(evalset: EvalSet, queries: int, distractors: int, out: Path, seed: int = 0) -> EvalSet:
    """A smaller BEIR set: `queries` queries (a seeded sample), the documents they need, and
    `distractors` other documents, written to `out` as a new corpus file."""
    rng = random.Random(seed)
    chosen = sorted(rng.sample(evalset.queries, min(queries, len(evalset.queries))), key=lambda q: q.id)
    needed = set().union(*(q.relevant for q in chosen))
    records = [json.loads(line) for path in evalset.corpus for line in path.read_text(encoding="utf-8").splitlines()]
    others = [r for r in records if r["id"] not in needed]
    picked = needed | {r["id"] for r in rng.sample(others, min(distractors, len(others)))}
    out.mkdir(parents=True, exist_ok=True)
    corpus = out / "corpus.jsonl"
    corpus.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records if r["id"] in picked), encoding="utf-8"
    )
    return EvalSet(f"{evalset.name}-subset", [corpus], chosen, evalset.kind)


def evaluate(
    searcher: Searcher,
    evalset: EvalSet,
    modes: Sequence[str] = MODES,
    unaccented: bool = False,
) -> dict[str, dict[str, float]]:
    """Mean metrics per mode. BEIR sets: Recall@k, MRR@10, nDCG@10 over documents (a document
    ranks at its best passage). Answer sets: Hit@k and MRR@10 over passages."""
    doc_of: dict[int, str] = {}  # filled as passages are ranked: a corpus of millions is never read whole
    report: dict[str, dict[str, float]] = {}
    for mode in modes:
        totals: dict[str, float] = {}
        for query in evalset.queries:
            text = fold(normalize(query.text)) if unaccented else query.text
            _, ids = searcher.rank(normalize(text), DEPTH, mode)
            if evalset.kind == "qrels":
                doc_of.update(searcher.index.passages.doc_ids_of([int(i) for i in ids if int(i) not in doc_of]))
                ranked = unique_in_order([doc_of[int(i)] for i in ids])
                scores = {f"Recall@{k}": recall_at(ranked, query.relevant, k) for k in RECALL_KS}
                scores["MRR@10"] = reciprocal_rank_at(ranked, query.relevant, 10)
                scores["nDCG@10"] = ndcg_at(ranked, query.relevant, 10)
            else:
                stored = searcher.index.passages.by_int_ids([int(i) for i in ids[: max(HIT_KS)]])
                texts = [normalize(stored[int(i)].text) for i in ids[: max(HIT_KS)] if int(i) in stored]
                answers = [normalize(a) for a in query.answers]
                first = next((rank for rank, t in enumerate(texts, 1) if any(a in t for a in answers)), None)
                scores = {f"Hit@{k}": float(first is not None and first <= k) for k in HIT_KS}
                scores["MRR@10"] = 1.0 / first if first else 0.0
            for name, value in scores.items():
                totals[name] = totals.get(name, 0.0) + value
        report[mode] = {name: value / max(len(evalset.queries), 1) for name, value in totals.items()}
    return report


def format_table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """results: {row label: {mode: {metric: value}}} -> a Markdown table."""
    metrics = list(next(iter(next(iter(results.values())).values())))
    lines = ["| set | mode | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
    for label, by_mode in results.items():
        for mode, values in by_mode.items():
            lines.append(f"| {label} | {mode} | " + " | ".join(f"{values[m]:.3f}" for m in metrics) + " |")
    return "\n".join(lines)
