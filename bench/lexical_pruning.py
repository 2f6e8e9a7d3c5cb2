"""What dropping common query terms would buy and cost: tantivy's p50 at N synthetic passages
(bench/lexical.py's corpus) and MRR@10 on ViQuAD dev (hybrid and lexical, with and without
diacritics) for each rule; a term's share is its document frequency over the passages.

    python bench/lexical_pruning.py [--passages 1000000] [--whole-paragraphs]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lexical import DEPTH, VIQUAD, analysed_once, openings

from index.store.analysis import analyze
from index.store.embedded.lexical import LexicalEntry, LexicalIndex
from index.text import VIETNAMESE, normalize

ROOT = Path(__file__).resolve().parent.parent

Rule = Callable[[str, float], bool]  # (term, share of passages holding it) -> keep it
RULES: dict[str, Rule | None] = {
    "every term (as served)": None,
    "drop terms in > 10%": lambda term, share: share <= 0.10,
    "drop terms in > 5%": lambda term, share: share <= 0.05,
    "drop terms in > 2%": lambda term, share: share <= 0.02,
    "drop syllables in > 10%, keep pairs": lambda term, share: "_" in term or share <= 0.10,
    "drop syllables in > 5%, keep pairs": lambda term, share: "_" in term or share <= 0.05,
    "drop syllables in > 2%, keep pairs": lambda term, share: "_" in term or share <= 0.02,
    "syllable pairs only": lambda term, share: "_" in term,
}


class PrunedLexical(LexicalIndex):
    rules: list[Rule | None] = [None]  # the rule in force, shared by every instance

    def query_terms(self, query: str, analysis: str = VIETNAMESE) -> list[str]:
        terms, rule = analyze(query, analysis), self.rules[0]
        if rule is None or analysis not in self.parts:
            return terms
        searcher, kept = self.parts[analysis].searcher, []
        for term in terms:
            if rule(term, searcher.doc_freq(self.TERMS, term) / max(searcher.num_docs, 1)):
                kept.append(term)
        return kept or terms


def latency(lexical: PrunedLexical, questions: list[str]) -> float:
    times = []
    for question in questions:
        started = time.perf_counter()
        lexical.search(question, DEPTH)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=1_000_000)
    parser.add_argument("--whole-paragraphs", action="store_true", help="real-length passages, not openings")
    args = parser.parse_args()

    from quality import SETS

    from index.build import build_index, is_current
    from index.encode.embed import load_encoder
    from index.evaluate.quality import evaluate, load_eval_set
    from index.retrieve.search import Searcher

    encoder = load_encoder()
    evalset = load_eval_set(SETS["ViQuAD"])
    built = ROOT / "var" / "eval" / evalset.name
    if not is_current(evalset.corpus, built, encoder.model_id, encoder.precision):
        build_index(evalset.corpus, built, encoder)
    searcher = Searcher.open(built, encoder=encoder)
    searcher.index.lexical.__class__ = PrunedLexical

    unique = openings(args.whole_paragraphs)
    directory = Path(tempfile.mkdtemp(prefix="semsearch-pruning-"))
    try:
        LexicalIndex.create(directory)
        entries = [LexicalEntry(n, n, unique[n % len(unique)], "vi", f"s{n}", None, None) for n in range(args.passages)]
        with analysed_once():
            LexicalIndex.apply(directory, (), entries, entries, progress=True)
        synthetic = LexicalIndex.load(directory)
        synthetic.__class__ = PrunedLexical
        lines = (VIQUAD / "queries_dev.jsonl").read_text(encoding="utf-8").splitlines()
        questions = [normalize(json.loads(line)["text"]) for line in lines[:200]]
        print(
            f"| rule | terms per question | p50 ms at {args.passages:,} | hybrid MRR@10 | lexical | "
            "hybrid unaccented | lexical unaccented |"
        )
        print("|---|---|---|---|---|---|---|")
        for label, rule in RULES.items():
            PrunedLexical.rules[0] = rule
            terms = statistics.mean(len(synthetic.query_terms(q)) for q in questions)
            latency(synthetic, questions[:20])  # warm the pages
            p50 = statistics.median(latency(synthetic, questions) for _ in range(3))
            figures = [
                evaluate(searcher, evalset, ("hybrid", "lexical"), unaccented=unaccented)
                for unaccented in (False, True)
            ]
            mrr = [f"{report[mode]['MRR@10']:.4f}" for report in figures for mode in ("hybrid", "lexical")]
            print(f"| {label} | {terms:.1f} | {p50:.2f} | {' | '.join(mrr)} |", flush=True)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
