"""semsearch against the stock baselines on a BEIR set (SciFact dev by default): BM25 with
stemming and stop words (bm25s + PyStemmer, their defaults), and reciprocal-rank fusion (k 60) of
that BM25 with semsearch's own dense ranking, beside semsearch's three modes, all at document
level on the same questions (a document ranks at its best passage).

    python bench/baselines.py [--set ../shared/eval/scifact] [--language english]

The set's index is built once under var/eval/NAME (as `semsearch eval` builds it) and reused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from index.build import build_index, is_current
from index.encode.embed import load_encoder
from index.evaluate.baselines import compared
from index.evaluate.quality import load_eval_set
from index.retrieve.search import Searcher

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--set", type=Path, default=ROOT.parent / "shared" / "eval" / "scifact")
    parser.add_argument("--language", default="english", help="PyStemmer's name of the set's language")
    parser.add_argument("--index", type=Path, help="default: var/eval/NAME")
    args = parser.parse_args()

    evalset = load_eval_set(args.set)
    encoder = load_encoder()
    out = args.index or ROOT / "var" / "eval" / evalset.name
    if not is_current(evalset.corpus, out, encoder.model_id, encoder.precision):
        build_index(evalset.corpus, out, encoder)
    searcher = Searcher.open(out, encoder=encoder)
    report = compared(searcher, evalset, args.language)
    print(f"{evalset.name}: {len(evalset.queries)} questions, {searcher.size} passages\n")
    print("| system | MRR@10 | nDCG@10 | R@10 |\n|---|---|---|---|")
    for system, values in report.items():
        print(f"| {system} | " + " | ".join(f"{v:.3f}" for v in values.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
