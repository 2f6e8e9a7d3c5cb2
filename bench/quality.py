"""Retrieval quality on the full evaluation sets, every mode, accented and unaccented queries.

Prints one table and writes it into docs/quality.md between the quality markers (`make eval`).
The third-party sets are read from ../shared/eval and never copied into the project; their
indexes are built once under var/eval/ and reused while the corpus and model are unchanged.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from index.build import build_index, is_current
from index.encode.embed import load_encoder
from index.evaluate.quality import EvalSet, evaluate, format_table, load_eval_set
from index.retrieve.search import MODES, Searcher

ROOT = Path(__file__).resolve().parent.parent

SHARED_EVAL = ROOT.parent / "shared" / "eval"
SEED_CORPUS = ROOT / "data" / "corpus"
# label: (queries, corpus of an answer-string set, index directory under var/eval/); sets over
# one corpus share its index
SETS = {
    "ViQuAD": (SHARED_EVAL / "viquad", None, "viquad"),
    "ViNewsQA": (SHARED_EVAL / "vinewsqa", None, "vinewsqa"),
    "seed dev": (SHARED_EVAL / "seed_queries_dev.jsonl", SEED_CORPUS, "seed"),
    "English seed": (ROOT / "data" / "eval" / "english_seed.jsonl", SEED_CORPUS, "seed"),
    "English ViQuAD": (
        ROOT / "data" / "eval" / "english_viquad.jsonl",
        SHARED_EVAL / "viquad" / "corpus.jsonl",
        "viquad",
    ),
    "SciFact": (SHARED_EVAL / "scifact", None, "scifact"),
}
# English has no diacritics to strip
ENGLISH = {"English seed", "English ViQuAD", "SciFact"}
START, END = "<!-- quality:start -->", "<!-- quality:end -->"


def run(evalset: EvalSet, encoder, label: str, index_name: str) -> dict:
    out = ROOT / "var" / "eval" / index_name
    if not is_current(evalset.corpus, out, encoder.model_id, encoder.precision):
        build_index(evalset.corpus, out, encoder)
    searcher = Searcher.open(out, encoder=encoder)
    rows = {}
    for unaccented in (False,) if label in ENGLISH else (False, True):
        started = time.perf_counter()
        rows[f"{label}{' unaccented' if unaccented else ''}"] = evaluate(
            searcher, evalset, MODES, unaccented=unaccented
        )
        print(f"{label} unaccented={unaccented}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated names of " + ", ".join(SETS))
    parser.add_argument("--print-only", action="store_true", help="do not write docs/quality.md")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON")
    args = parser.parse_args()

    encoder = load_encoder()
    tables, numbers = [], {}
    for label in args.sets.split(","):
        queries, corpus, index_name = SETS[label]
        evalset = load_eval_set(queries, corpus)
        rows = run(evalset, encoder, label, index_name)
        numbers.update(rows)
        tables.append(f"{label}: {len(evalset.queries)} queries\n\n{format_table(rows)}")
    text = "\n\n".join(tables)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2))
    if not args.print_only:
        page = ROOT / "docs" / "quality.md"
        content = page.read_text(encoding="utf-8")
        stamp = f"Measured by `make eval` on {time.strftime('%Y-%m-%d')}."
        block = f"{START}\n{stamp}\n\n{text}\n{END}"
        page.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, content, flags=re.S))
    return 0


if __name__ == "__main__":
    sys.exit(main())
