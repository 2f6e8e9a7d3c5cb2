"""CPU time of the most expensive requests the limits allow, in process (the whole process's CPU,
so the encoder's own threads count): the longest query at the largest k, long pasted text, and a
typical question for comparison. Each case is repeated with the query cache cleared; min and median.

    python bench/request_cost.py [--index var/index]
"""

from __future__ import annotations

import argparse
import resource
import statistics
from pathlib import Path

from index.retrieve.search import MAX_K, MAX_QUERY_CHARS, MAX_SIMILAR_TEXT_CHARS, Searcher

ROOT = Path(__file__).resolve().parent.parent

REPEATS = 7


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=ROOT / "var" / "index")
    args = parser.parse_args()
    searcher = Searcher.open(args.index)
    article = " ".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "data" / "corpus").glob("*.txt"))).split()
    prose = " ".join(article)
    longest_query = prose[:MAX_QUERY_CHARS]
    cases = {
        "typical question, k=10": lambda: searcher.search("Đảng bộ Khối có bao nhiêu đảng viên?", 10),
        f"{MAX_QUERY_CHARS}-character query, k=10": lambda: searcher.search(longest_query, 10),
        f"{MAX_QUERY_CHARS}-character query, k={MAX_K}": lambda: searcher.search(longest_query, MAX_K),
        f"{MAX_SIMILAR_TEXT_CHARS:,}-character similar text, k={MAX_K}": lambda: searcher.similar_to_text(
            (prose * 10)[:MAX_SIMILAR_TEXT_CHARS], MAX_K
        ),
    }
    searcher.search("khởi động", 1)
    print("| request | CPU ms min | CPU ms median |\n|---|---|---|")
    for label, run in cases.items():
        spent = []
        for _ in range(REPEATS):
            searcher._query_vector.cache_clear()
            started = cpu_seconds()
            run()
            spent.append((cpu_seconds() - started) * 1000)
        print(f"| {label} | {min(spent):.1f} | {statistics.median(spent):.1f} |")


if __name__ == "__main__":
    main()
