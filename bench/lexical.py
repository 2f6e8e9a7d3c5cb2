"""The lexical leg alone at scale: tantivy over N synthetic passages (ViQuAD paragraph openings
with their titles, cycled, as bench/synthetic_index.py makes them), 200 ViQuAD questions, top 100.

Prints build time and size, search p50 / p99 (one thread, 3 passes), and recall of the top 100
against exhaustive BM25 (the same analyser, k1 1.2, b 0.75, exact document lengths). The corpus
repeats each opening ~N/5,109 times, so recall is counted by score: a returned passage is right
when its exact BM25 score reaches the exact 100th best score.

    python bench/lexical.py [--passages 1000000]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from figures import p99, spread
from living import viquad_openings

from index.ingest.chunk import passage_context
from index.store.analysis import K1, B, analyze
from index.store.embedded.lexical import LexicalEntry, LexicalIndex
from index.text import normalize

ROOT = Path(__file__).resolve().parent.parent

VIQUAD = ROOT.parent / "shared" / "eval" / "viquad"
DEPTH = 100
PASSES = 3


def openings() -> list[str]:
    """The openings as their passages are embedded: the title's context line, then the text."""
    joined = (
        f"{context}\n{opening}" if (context := passage_context(title, None)) else opening
        for title, opening in viquad_openings()
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()

    unique = openings()
    texts = [unique[n % len(unique)] for n in range(args.passages)]
    copies = np.bincount(np.arange(args.passages) % len(unique), minlength=len(unique))
    directory = Path(tempfile.mkdtemp(prefix="semsearch-lexical-"))
    try:
        started = time.perf_counter()
        LexicalIndex.create(directory)
        LexicalIndex.apply(
            directory,
            (),
            [LexicalEntry(n, n, text, "vi", f"s{n}", None, None) for n, text in enumerate(texts)],
            progress=True,
        )
        built = time.perf_counter() - started
        size = sum(p.stat().st_size for p in (directory / "lexical").rglob("*") if p.is_file())
        lexical = LexicalIndex.load(directory)  # as a server would open it
        questions = [
            json.loads(line)["text"] for line in (VIQUAD / "queries_dev.jsonl").read_text(encoding="utf-8").splitlines()
        ]
        questions = [normalize(q) for q in questions[: args.queries]]

        medians, tails = [], []
        for _ in range(PASSES):
            times = []
            for question in questions:
                begun = time.perf_counter()
                lexical.search(question, DEPTH)
                times.append((time.perf_counter() - begun) * 1000)
            times.sort()
            medians.append(times[len(times) // 2])
            tails.append(p99(times))

        exact = ExactBM25(unique, copies)
        found = total = 0
        for question in questions:
            truth = exact.scores(question)
            expanded = np.repeat(truth, copies)
            if not (expanded > 0).any():
                continue
            kth = np.sort(expanded)[::-1][min(DEPTH, int((expanded > 0).sum())) - 1]
            _, ids = lexical.search(question, DEPTH)
            found += int((truth[ids % len(unique)] >= kth - 1e-6).sum())
            total += min(DEPTH, int((expanded > 0).sum()))
        print(
            "| passages | build s | size bytes/passage | search p50 ms "
            f"min / median / max | p99 ms | recall@{DEPTH} vs exhaustive |"
        )
        print("|---|---|---|---|---|---|")
        print(
            f"| {args.passages:,} | {built:.0f} | {size / args.passages:.0f} | "
            f"{spread(medians)} | {sorted(tails)[1]:.2f} | {found / total:.4f} |"
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
