"""The lexical leg alone at scale: tantivy over N synthetic passages (ViQuAD paragraph openings
with their titles, or with --whole-paragraphs the whole paragraphs, cycled, as
bench/synthetic_index.py makes them; each passage its own document, so the documents' index is
as large), 200 ViQuAD questions, top 100.

Prints build time and size, search p50 / p99 (one thread, 3 passes), and recall of the top 100
against exhaustive BM25 (the same analyser, k1 1.2, b 0.75, exact document lengths). The corpus
repeats each opening ~N/5,109 times, so recall is counted by score: a returned passage is right
when its exact BM25 score reaches the exact 100th best score.

--plans also measures other query plans on the passages' index: one disjunction of every term
(the served plan without the documents' BM25), common terms dropped, and the rare terms required
with the common ones optional (Elasticsearch's common-terms idea).

    python bench/lexical.py [--passages 1000000] [--whole-paragraphs] [--index var/bench/lexical-1m] [--plans]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from figures import latency_passes, spread
from living import viquad_openings

from index.ingest.chunk import passage_context
from index.store.analysis import K1, B, analyze
from index.store.embedded import lexical
from index.store.embedded.lexical import LexicalEntry, LexicalIndex
from index.text import VIETNAMESE, normalize

ROOT = Path(__file__).resolve().parent.parent

VIQUAD = ROOT.parent / "shared" / "eval" / "viquad"
DEPTH = 100
PASSES = 3


def openings(whole: bool) -> list[str]:
    """The openings (or whole paragraphs) as their passages are embedded: the title's context
    line, then the text."""
    joined = (
        f"{context}\n{opening}" if (context := passage_context(title, None)) else opening
        for title, opening in viquad_openings(whole)
    )
    return list(dict.fromkeys(joined))


class ExactBM25:
    """Exhaustive BM25 over the unique texts, with document frequencies and lengths as if each
    text occurred `copies[u]` times."""

    def __init__(self, unique: list[str], copies: np.ndarray):
        self.terms = [Counter(analyze(text)) for text in unique]
        lengths = np.array([sum(c.values()) for c in self.terms], dtype=np.float64)
        self.norm = K1 * (1 - B + B * lengths / (float(copies @ lengths) / copies.sum()))
        self.frequency: Counter = Counter()
        for counts, n in zip(self.terms, copies):
            for term in counts:
                self.frequency[term] += int(n)
        self.total = int(copies.sum())

    def scores(self, query: str) -> np.ndarray:
        scores = np.zeros(len(self.terms))
        for term in analyze(query):
            df = self.frequency.get(term, 0)
            if not df:
                continue
            idf = math.log(1 + (self.total - df + 0.5) / (df + 0.5))
            tf = np.array([counts.get(term, 0) for counts in self.terms], dtype=np.float64)
            scores += idf * tf * (K1 + 1) / (tf + self.norm)
        return scores


@contextmanager
def analysed_once() -> Iterator[None]:
    """The index's analyser, remembering each text's terms: the corpus repeats ~5,000 texts, and
    analysing each copy again would make the build an hour of Python."""
    remembered = functools.cache(lambda text, language: tuple(analyze(text, language)))
    original = lexical.analyze
    lexical.analyze = lambda text, language: list(remembered(text, language))
    try:
        yield
    finally:
        lexical.analyze = original


def measured(search, questions: list[str], exact: ExactBM25, unique: list[str], copies: np.ndarray):
    """p50s and p99s (ms) of PASSES passes of `search` over the questions, and the share of its
    top DEPTH reaching the exhaustive DEPTH-th best score."""
    medians, tails, ranked = latency_passes(search, questions, PASSES)
    found = total = 0
    for question, ids in zip(questions, ranked):
        truth = exact.scores(question)
        expanded = np.repeat(truth, copies)
        if not (expanded > 0).any():
            continue
        kth = np.sort(expanded)[::-1][min(DEPTH, int((expanded > 0).sum())) - 1]
        found += int((truth[np.asarray(ids, dtype=np.int64) % len(unique)] >= kth - 1e-6).sum())
        total += min(DEPTH, int((expanded > 0).sum()))
    return medians, tails, found / total


def query_plans(lexical: LexicalIndex) -> dict:
    """Other ways to ask tantivy for the top DEPTH passages (their own BM25 only), for --plans:
    what they cost and how much of the exhaustive top they keep."""
    import tantivy

    searcher = lexical.parts[VIETNAMESE].searcher
    schema = lexical.parts[VIETNAMESE].passages.schema
    share = functools.cache(lambda term: searcher.doc_freq(lexical.TERMS, term) / searcher.num_docs)

    def term(t):
        return tantivy.Query.term_query(schema, lexical.TERMS, t)

    def top(query) -> list[int]:
        return searcher.fast_field_values(lexical.ID, [a for _, a in searcher.search(query, DEPTH, count=False).hits])

    def disjunction(terms):
        return tantivy.Query.boolean_query([(tantivy.Occur.Should, term(t)) for t in terms])

    def dropped(at: float):
        return lambda q: top(disjunction([t for t in analyze(q) if share(t) <= at] or analyze(q)))

    def rare_required(at: float):
        def search(q):
            terms = analyze(q)
            rare, common = [t for t in terms if share(t) <= at], [t for t in terms if share(t) > at]
            if not rare or not common:
                return top(disjunction(terms))
            clauses = [(tantivy.Occur.Must, disjunction(rare))] + [(tantivy.Occur.Should, term(t)) for t in common]
            return top(tantivy.Query.boolean_query(clauses))

        return search

    return {
        "passages' BM25 alone, one disjunction": lambda q: top(disjunction(analyze(q))),
        "terms in > 10% of passages dropped": dropped(0.10),
        "terms in > 5% of passages dropped": dropped(0.05),
        "a term in <= 5% required, the rest optional": rare_required(0.05),
        "a term in <= 2% required, the rest optional": rare_required(0.02),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--whole-paragraphs", action="store_true", help="real-length passages, not openings")
    parser.add_argument("--index", type=Path, help="build here and keep it, or reuse the one built here before")
    parser.add_argument("--plans", action="store_true", help="also measure other query plans (bench's docstring)")
    args = parser.parse_args()

    unique = openings(args.whole_paragraphs)
    texts = [unique[n % len(unique)] for n in range(args.passages)]
    copies = np.bincount(np.arange(args.passages) % len(unique), minlength=len(unique))
    directory = args.index or Path(tempfile.mkdtemp(prefix="semsearch-lexical-"))
    try:
        started, built = time.perf_counter(), "reused"
        if not (directory / "lexical").exists():
            LexicalIndex.create(directory)
            entries = [LexicalEntry(n, n, text, "vi", f"s{n}", None, None) for n, text in enumerate(texts)]
            with analysed_once():
                LexicalIndex.apply(directory, (), entries, entries, progress=True)
            built = f"{time.perf_counter() - started:.0f}"
        size = sum(p.stat().st_size for p in (directory / "lexical").rglob("*") if p.is_file())
        lexical = LexicalIndex.load(directory)  # as a server would open it
        questions = [
            json.loads(line)["text"] for line in (VIQUAD / "queries_dev.jsonl").read_text(encoding="utf-8").splitlines()
        ]
        questions = [normalize(q) for q in questions[: args.queries]]

        exact = ExactBM25(unique, copies)
        plans = {"as served (passages' and documents' BM25)": lambda q: lexical.search(q, DEPTH)[1]}
        if args.plans:
            plans.update(query_plans(lexical))
        print(
            "| passages | build s | size bytes/passage | query plan | search p50 ms min / median / max | p99 ms "
            f"| recall@{DEPTH} vs exhaustive |"
        )
        print("|---|---|---|---|---|---|---|")
        for label, search in plans.items():
            medians, tails, recall = measured(search, questions, exact, unique, copies)
            print(
                f"| {args.passages:,} | {built} | {size / args.passages:.0f} | {label} | "
                f"{spread(medians)} | {sorted(tails)[1]:.2f} | {recall:.4f} |",
                flush=True,
            )
    finally:
        if not args.index:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
