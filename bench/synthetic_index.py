"""Build a full semsearch index (passages, BM25, vectors, manifest) of N synthetic passages, to
measure the service at sizes this machine cannot embed (a million passages would take hours).

Passages are the opening sentences of ViQuAD's paragraphs (with --whole-paragraphs: the whole
paragraphs, real length, ~700 characters), cycled with new document ids; each passage's vector
is the real e5 vector of its paragraph (from the ViQuAD evaluation index that `make eval`
builds) plus a little noise. Prints the build's peak resident memory. Queries at serve time go
through the real model, so search behaves as it would on real text. Runs the ordinary
`build_index`, progress bars included.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from open_time import open_times

from index.build import build_index
from index.encode.e5_build import DEFAULT_MODEL_ID
from index.store.embedded.publish import open_index
from index.text import normalize, split_sentences

ROOT = Path(__file__).resolve().parent.parent

VIQUAD = ROOT.parent / "shared" / "eval" / "viquad" / "corpus.jsonl"
REAL_INDEX = ROOT / "var" / "eval" / "viquad"


def recycling_key(text: str) -> str:
    """A passage's opening words: cleaning may change a whole paragraph's end (quotes, say)."""
    return " ".join(text.split()[:12])


class RecycledVectors:
    """Stands in for the encoder at indexing time: each passage gets its source paragraph's real
    vector plus noise. Token counts are word counts (the synthetic passages are short)."""

    model_id = DEFAULT_MODEL_ID
    dim = 384
    max_tokens = 508
    prompts = {"query": "query: ", "document": "passage: "}
    precision = "recycled"

    def __init__(self, vector_of_text: dict[str, np.ndarray], noise: float = 0.02):
        self.vector_of_text = vector_of_text
        self.fallback = list(vector_of_text.values())
        self.noise = noise
        self.rng = np.random.default_rng(0)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def encode_passages(self, texts, batch_size: int = 32) -> np.ndarray:
        base = np.stack([self._vector(t.split("\n", 1)[-1]) for t in texts])
        vectors = base + self.noise * self.rng.standard_normal(base.shape, dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def _vector(self, text: str) -> np.ndarray:
        """The paragraph's vector; a window of a paragraph split for length gets another real one."""
        known = self.vector_of_text.get(recycling_key(text))
        return known if known is not None else self.fallback[zlib.crc32(text.encode()) % len(self.fallback)]

    def encode_queries(self, texts):
        raise NotImplementedError("queries use the real model")


def recycled_paragraphs(whole: bool = True) -> tuple[RecycledVectors, list[tuple[str, str]]]:
    """ViQuAD's paragraphs (whole, or their openings) with titles, and an encoder giving each its
    real vector from the ViQuAD evaluation index."""
    real = open_index(REAL_INDEX)
    records = [json.loads(line) for line in VIQUAD.read_text(encoding="utf-8").splitlines()]
    vector_of_text: dict[str, np.ndarray] = {}
    paragraphs: list[tuple[str, str]] = []
    first_passage = {}
    for row in real.passages.catalog():
        first_passage.setdefault(row.doc_id, row.int_id)
    for record in records:
        if record["id"] not in first_passage:
            continue
        text = normalize(record["text"])
        opening = text if whole else " ".join(split_sentences(text)[:2])
        vector_of_text[recycling_key(opening)] = real.vector(first_passage[record["id"]])
        paragraphs.append((record.get("title", ""), opening))
    real.close()
    return RecycledVectors(vector_of_text), paragraphs


def write_corpus(path: Path, paragraphs: list[tuple[str, str]], count: int) -> None:
    """`count` documents of one paragraph each, cycling through `paragraphs` with new ids."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for n in range(count):
            title, text = paragraphs[n % len(paragraphs)]
            f.write(json.dumps({"id": f"s{n}", "title": title, "text": text}, ensure_ascii=False) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--passages", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench" / "synthetic-1m")
    parser.add_argument("--memory-saving", action="store_true")
    parser.add_argument("--whole-paragraphs", action="store_true", help="real-length passages, not openings")
    args = parser.parse_args()

    encoder, paragraphs = recycled_paragraphs(args.whole_paragraphs)
    corpus = args.out.parent / f"{args.out.name}.jsonl"
    write_corpus(corpus, paragraphs, args.passages)

    started = time.perf_counter()
    commit = build_index([corpus], args.out, encoder, memory_saving=args.memory_saving, passage_tokens=10_000).commit
    passages = commit.added
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"built {passages:,} passages in {time.perf_counter() - started:.0f} s, peak resident {peak / 2**30:.2f} GiB")

    # fresh processes, as a server starting on this index would be: the first checks every file
    first, later, resident = open_times(args.out, runs=1)
    files = sum(p.stat().st_size for p in args.out.resolve().rglob("*") if p.is_file())
    print(
        f"open_index in a new process: {first:.2f} s checking every file, then {later[0]:.2f} s; "
        f"{resident / 2**20:.0f} MiB resident = {resident / passages:.0f} bytes/passage; "
        f"on disk {files / passages:.0f} bytes/passage"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
