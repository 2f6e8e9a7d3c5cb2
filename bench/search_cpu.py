"""CPU per search, in process, and where it goes: hybrid (or --mode), k=10, distinct questions
(the query cache never hits; --unaccented: typed without diacritics or capitals), one calling
thread; the process's CPU, so the encoder's own threads count.

Each step is timed by wrapping the method that does it, less the timed steps it calls; "other"
is what is left (checks, fusion, building results). Prints min / median / max over repeated
passes of the mean CPU per search.

    python bench/search_cpu.py [--index var/eval/viquad] [--queries 200] [--passes 5]
                               [--mode dense] [--unaccented]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path

from figures import spread

from index.retrieve.search import MODES, Searcher
from index.text import fold, normalize

ROOT = Path(__file__).resolve().parent.parent

VIQUAD = ROOT.parent / "shared" / "eval" / "viquad"


def timed(owner, name: str, step: str, spent: dict[str, float], nested: list[float]) -> None:
    """Replace owner.name with a wrapper adding its process CPU to spent[step], less that of the
    timed calls it makes (`nested` holds each running call's share of those)."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        started = time.process_time()
        nested.append(0.0)
        try:
            return original(*args, **kwargs)
        finally:
            elapsed = time.process_time() - started
            spent[step] += elapsed - nested.pop()
            if nested:
                nested[-1] += elapsed

    setattr(owner, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=ROOT / "var" / "eval" / "viquad")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--mode", choices=MODES, default="hybrid")
    parser.add_argument("--unaccented", action="store_true", help="the questions typed without diacritics or capitals")
    args = parser.parse_args()

    searcher = Searcher.open(args.index)
    lines = (VIQUAD / "queries_dev.jsonl").read_text(encoding="utf-8").splitlines()
    questions = list(dict.fromkeys(normalize(json.loads(line)["text"]) for line in lines))
    if args.unaccented:
        questions = list(dict.fromkeys(fold(question) for question in questions))
    needed = args.queries * (args.passes + 1)
    questions = (questions * (needed // len(questions) + 1))[:needed]

    spent: dict[str, float] = defaultdict(float)
    nested: list[float] = []
    index = searcher.index
    timed(searcher.encoder, "encode_queries", "embed the query", spent, nested)
    timed(index, "dense", "dense leg (FAISS)", spent, nested)
    timed(index, "lexical_search", "lexical leg (tantivy)", spent, nested)
    timed(index.accents, "restore", "accents and coverage", spent, nested)
    timed(index.accents, "coverage", "accents and coverage", spent, nested)
    timed(index.passages, "by_int_ids", "read passages (SQLite)", spent, nested)
    timed(searcher, "_by_sentences", "sentence evidence (read and score candidates)", spent, nested)
    timed(searcher, "_results", "results: highlights, answers, confidence", spent, nested)

    def run(batch: list[str]) -> float:
        # distinct questions: a cached query vector would hide the encoder
        searcher._query_vector.cache_clear()
        started = time.process_time()
        for question in batch:
            searcher.search(question, 10, mode=args.mode)
        return (time.process_time() - started) / len(batch) * 1000

    run(questions[: args.queries])  # warm-up: pages, compiled shapes
    spent.clear()
    per_pass = [run(questions[(p + 1) * args.queries : (p + 2) * args.queries]) for p in range(args.passes)]
    searches = args.queries * args.passes
    steps = {step: seconds / searches * 1000 for step, seconds in spent.items()}
    total = statistics.mean(per_pass)
    print(f"{searcher.size:,} passages, {args.queries} distinct questions x {args.passes} passes, {args.mode}, k=10")
    print(f"CPU per search ms (min / median / max of passes): {spread(per_pass)}")
    print("| step | CPU ms per search |")
    print("|---|---|")
    for step, ms in sorted(steps.items(), key=lambda item: -item[1]):
        print(f"| {step} | {ms:.2f} |")
    print(f"| other (checks, fusion, Python around the steps) | {total - sum(steps.values()):.2f} |")


if __name__ == "__main__":
    main()
