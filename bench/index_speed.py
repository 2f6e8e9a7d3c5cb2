"""Indexing speed end to end against a bare sentence-transformers fp32 encode of the same texts.

Takes the first N ViQuAD paragraphs, and per run: (a) encodes them with sentence-transformers
fp32 (`encode_document`, batch 32: what a user would write by hand) and (b) builds a semsearch
index of them with the default encoder (`build_index`: reading, chunking, embedding, SQLite,
tantivy, FAISS, publishing), the model loaded beforehand in both cases (start-up excluded).
Prints the speed-up min / median / max over the runs, where the build's time goes, and the
cosine of the index's vectors to fp32 vectors of the same passages.

    python bench/index_speed.py [--passages 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from figures import spread
from search_cpu import timed

from index.build import build_index
from index.encode.embed import SentenceTransformerEncoder, load_encoder
from index.store.embedded.publish import open_index
from index.text import normalize

ROOT = Path(__file__).resolve().parent.parent

VIQUAD = ROOT.parent / "shared" / "eval" / "viquad" / "corpus.jsonl"


def wall_and_cpu(step, *args) -> tuple[float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    step(*args)
    return time.perf_counter() - started, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    work = ROOT / "var" / "bench" / "index-speed"
    work.mkdir(parents=True, exist_ok=True)
    records = [json.loads(line) for line in VIQUAD.read_text(encoding="utf-8").splitlines()[: args.passages]]
    corpus = work / "corpus.jsonl"
    corpus.write_text(
        "".join(json.dumps({"id": r["id"], "text": r["text"]}, ensure_ascii=False) + "\n" for r in records),
        encoding="utf-8",
    )
    texts = [normalize(r["text"]) for r in records]

    fp32 = SentenceTransformerEncoder(precision="fp32")
    bare_runs = [wall_and_cpu(lambda: fp32.model.encode_document(texts, batch_size=32)) for _ in range(args.repeats)]
    encoder = load_encoder()
    # the baseline ran before OpenVINO started its threads, which would share the cores with torch
    spent: dict[str, float] = defaultdict(float)
    timed(encoder, "encode_passages", "embedding", spent, [])
    build_runs = []
    out = work / "index"
    for _ in range(args.repeats):
        shutil.rmtree(work / "generations", ignore_errors=True)
        out.unlink(missing_ok=True)
        embedding_before = spent["embedding"]
        wall, cpu = wall_and_cpu(lambda: build_index([corpus], out, encoder, progress=False))
        build_runs.append((wall, cpu, spent["embedding"] - embedding_before))

    built = open_index(out)
    try:
        stored = built.passages.by_int_ids(built.passages.all_int_ids())
        passages = [p.embedding_text for p in stored.values()]
        ours = np.stack([built.vector(i) for i in stored])
    finally:
        built.close()
    cosines = (ours * fp32.encode_passages(passages)).sum(axis=1)

    speedups = [bare[0] / build[0] for bare, build in zip(bare_runs, build_runs)]
    print(f"{len(texts)} ViQuAD paragraphs -> {len(passages)} passages, {args.repeats} runs (min / median / max)\n")
    print("| what | wall s | process CPU s |")
    print("|---|---|---|")
    print(
        "| sentence-transformers fp32 encode_document | "
        f"{spread([b[0] for b in bare_runs], 2)} | {spread([b[1] for b in bare_runs], 2)} |"
    )
    print(
        f"| semsearch build_index, end to end | {spread([b[0] for b in build_runs], 2)} "
        f"| {spread([b[1] for b in build_runs], 2)} |"
    )
    print(f"| of which embedding (tokenising, network, pooling) | | {spread([b[2] for b in build_runs], 2)} |")
    print(f"\nend to end speed-up over bare fp32 encode: {spread(speedups, 2)}x")
    print(f"cosine to fp32 of the same passages: mean {cosines.mean():.4f}, min {cosines.min():.4f}")
    print(f"embedding share of the build (median): {statistics.median(b[2] / b[1] for b in build_runs):.0%} of its CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
