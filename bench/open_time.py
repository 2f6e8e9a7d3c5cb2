"""How long a new process takes to open an index, as a server starting (or a worker restarting)
would: the first open after the files changed reads and checks every byte; later ones find the
files unchanged since that check and read only what they keep in memory.

    python bench/open_time.py --index var/bench/synthetic-1m-whole [--runs 5] [--searcher]

Each open runs in a fresh interpreter, timed after its imports. `--searcher`
opens what `semsearch serve` opens (index and encoder) instead of the index alone.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_PROBE = """
import resource, sys, time
from index.store.embedded.publish import open_index
from index.retrieve.search import Searcher

def resident():
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()

before = resident()
started = time.perf_counter()
if sys.argv[2] == "searcher":
    Searcher.open(sys.argv[1])
else:
    open_index(sys.argv[1], reread=sys.argv[2] == "reread")
print(time.perf_counter() - started, resident() - before)
"""


def probe(index: Path, what: str) -> tuple[float, int]:
    """(seconds, resident bytes gained) of a new process opening `index`, after its imports:
    `what` is "reread" (every file checked), "open" (files unchanged since a check are not
    read) or "searcher" (index and encoder)."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(index), what], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), int(out[1])


def open_times(index: Path, runs: int, searcher: bool = False) -> tuple[float, list[float], float]:
    """(seconds of a first open reading every file, sorted seconds of `runs` later opens, their
    median resident bytes gained)."""
    first, _ = probe(index, "reread")
    later = [probe(index, "searcher" if searcher else "open") for _ in range(runs)]
    return first, sorted(s for s, _ in later), statistics.median(r for _, r in later)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--searcher", action="store_true", help="open the index and the encoder, as serve does")
    args = parser.parse_args()

    first, seconds, resident = open_times(args.index, args.runs, args.searcher)
    print(f"{args.index}: first open, every file read and checked: {first:.2f} s")
    print(
        f"later opens{' (index and encoder)' if args.searcher else ''}, {args.runs} runs: "
        f"min {seconds[0]:.2f} / median {statistics.median(seconds):.2f} / max {seconds[-1]:.2f} s; "
        f"{resident / 2**20:.0f} MiB more resident"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
