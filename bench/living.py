"""The living index: what a write costs as the index grows, search while a big batch is added,
and quality of an index built by writes against a one-shot build.

    python bench/living.py add [--sizes 10000,100000,1000000]
        adding 100 passages (100 documents) to a synthetic index of each size, embedding excluded;
        at the largest size also the lexical leg's and hybrid search's p50 in process
    python bench/living.py concurrent [--passages 100000]
        search p50 / p99 idle, then while another process adds a 10,000-passage batch (plainly,
        and at the lowest CPU priority); for scale, the same beside a process spinning on one core
        and one streaming memory on one core (what two cores sharing caches and memory allow)
    python bench/living.py quality [--sets ViQuAD,ViNewsQA]
        MRR@10 of a one-shot build against the same corpus written in 10 batches, then 5% of its
        documents deleted and written again; every mode, accented and unaccented questions

Synthetic passages are ViQuAD paragraph openings with their titles, cycled, each its own document
with one of five sources and a date over two years. Their vectors are pseudo-random unit vectors
(`HashVectors`): the cost of a write does not depend on what the vectors say. The quality runs
reuse the one-shot index's real vectors for the written index (`StoredVectors`), so the two
differ only in how the index was built; questions go through the real model.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from figures import p99

from index.build import build_from_documents, write_documents
from index.ingest.document import document_from_record
from index.retrieve.search import Searcher
from index.store.embedded.publish import writing
from index.text import normalize

ROOT = Path(__file__).resolve().parent.parent

VIQUAD = ROOT.parent / "shared" / "eval" / "viquad"
WORK = ROOT / "var" / "bench" / "living"
SOURCES = ("Báo A", "Báo B", "Báo C", "Đài D", "Tạp chí E")
ADDS = 15
WARM_UP = 3  # adds before timing: the first write to an index just opened reads cold pages


class HashVectors:
    """Stands in for the encoder: a pseudo-random unit vector per text, at almost no cost."""

    model_id = "bench/hash-vectors"
    dim = 384
    max_tokens = 10_000
    prompts = {"query": "", "document": ""}
    precision = "hash"

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _vectors(self, texts) -> np.ndarray:
        out = np.empty((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            out[row] = np.random.default_rng(seed).standard_normal(self.dim, dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def encode_passages(self, texts, batch_size: int = 32) -> np.ndarray:
        return self._vectors(texts)

    def encode_queries(self, texts) -> np.ndarray:
        return self._vectors(texts)


def viquad_openings(whole: bool = False) -> list[tuple[str, str]]:
    """ViQuAD's paragraphs' titles and opening sentences (or whole texts), once each."""
    from index.text import split_sentences

    found = []
    for line in (VIQUAD / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        text = normalize(record["text"])
        found.append((record.get("title", ""), text if whole else " ".join(split_sentences(text)[:2])))
    return list(dict.fromkeys(found))


def synthetic_documents(first: int, count: int, openings: list[tuple[str, str]], tag: str = "s"):
    start = datetime.date(2023, 1, 1)
    for n in range(first, first + count):
        title, text = openings[n % len(openings)]
        yield document_from_record(
            f"{tag}{n}",
            {
                "title": title,
                "text": text,
                "source": SOURCES[n % len(SOURCES)],
                "date": (start + datetime.timedelta(days=n % 730)).isoformat(),
            },
            "bench",
        )


def questions(count: int) -> list[str]:
    lines = (VIQUAD / "queries_dev.jsonl").read_text(encoding="utf-8").splitlines()
    return [normalize(json.loads(line)["text"]) for line in lines[:count]]


def synthetic_index(size: int, openings) -> Path:
    out = WORK / f"synthetic-{size}"
    if not out.exists():
        started = time.perf_counter()
        build_from_documents(list(synthetic_documents(0, size, openings)), out, HashVectors(), progress=True)
        print(f"built {size:,} passages in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return out


def search_p50(searcher: Searcher, queries: list[str], mode: str) -> float:
    times = []
    for query in queries:
        started = time.perf_counter()
        searcher.search(query, 10, mode=mode)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def add(args) -> None:
    openings = viquad_openings()
    encoder = HashVectors()
    print(f"| passages | add 100 passages ms, median of {ADDS} (min / max) | of which embedding ms |")
    print("|---|---|---|")
    medians = {}
    for size in [int(s) for s in args.sizes.split(",")]:
        out = synthetic_index(size, openings)
        times, embedding = [], []
        for attempt in range(WARM_UP + ADDS):
            documents = list(
                synthetic_documents(10_000_000 + attempt * 100, 100, openings, tag=f"add{size}-{time.time_ns()}-")
            )
            texts = [f"{d.title}\n{d.blocks[0].text}" for d in documents]
            started = time.perf_counter()
            encoder.encode_passages(texts)
            embedded = time.perf_counter() - started
            started = time.perf_counter()
            with writing(out) as writer:
                result = write_documents(writer, documents, encoder)
            assert result.commit.added >= 100 and not result.compacted  # an opening may make two passages
            if attempt < WARM_UP:
                continue
            times.append((time.perf_counter() - started - embedded) * 1000)
            embedding.append(embedded * 1000)
        medians[size] = statistics.median(times)
        print(
            f"| {size:,} | {medians[size]:.0f} ({min(times):.0f} / "
            f"{max(times):.0f}) | {statistics.median(embedding):.1f} |",
            flush=True,
        )
    sizes = sorted(medians)
    print(f"\nlargest / smallest: {medians[sizes[-1]] / medians[sizes[0]]:.2f}x")

    largest = WORK / f"synthetic-{sizes[-1]}"
    searcher = Searcher.open(largest, encoder=encoder)
    queries = questions(200)
    for mode in ("lexical", "dense", "hybrid"):
        search_p50(searcher, queries[:20], mode)  # warm the pages
        runs = [search_p50(searcher, queries, mode) for _ in range(3)]
        print(
            f"{sizes[-1]:,} passages, {mode}, in process, query "
            f"embedding excluded: p50 {statistics.median(runs):.1f} ms "
            f"(runs {', '.join(f'{r:.1f}' for r in runs)})"
        )


_BATCH_WRITER = """
import sys
from living import HashVectors, synthetic_documents, viquad_openings
from index.build import write_documents
from index.store.location import writing_at
from pathlib import Path
documents = list(synthetic_documents(20_000_000, 10_000, viquad_openings(), tag="batch-"))
print("ready", flush=True)
with writing_at(Path(sys.argv[1])) as writer:
    print(write_documents(writer, documents, HashVectors()).commit.added)
"""
_SPINNER = "import time\nend = time.time() + 15\nwhile time.time() < end: pass"
_STREAMER = (
    "import time\nimport numpy as np\nsource = np.ones(50_000_000)\nend = time.time() + 15\n"
    "while time.time() < end: source.copy()"
)


def concurrent(args) -> None:
    """Each case on a fresh copy of the index: searches idle, then while another process runs."""
    out = synthetic_index(args.passages, viquad_openings())
    queries = questions(400)
    cases = (
        ("a process spinning on one core for 15 s", ["-c", _SPINNER], []),
        ("a process copying 400 MB arrays on one core for 15 s", ["-c", _STREAMER], []),
        ("another process adds a 10,000-passage batch", ["-c", _BATCH_WRITER], []),
        ("the same, the writer at `nice -n 19`", ["-c", _BATCH_WRITER], ["nice", "-n", "19"]),
    )
    print(
        f"{args.passages:,} passages, hybrid, k=10, one searching thread (query embedding excluded) following "
        "the log every 0.25 s as a server process does"
    )
    print("| while | searches | p50 ms idle / busy | p99 ms idle / busy | p99 ratio | errors | visible after s |")
    print("|---|---|---|---|---|---|---|")
    for label, command, prefix in cases:
        copy = WORK / "concurrent-copy"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(out, copy, symlinks=True)
        os.sync()  # the copy's writeback would otherwise land in the measurement
        searcher = Searcher.open(copy, encoder=HashVectors())
        stop = threading.Event()

        def follow(stop=stop, searcher=searcher) -> None:  # as the server's follower thread does
            while not stop.wait(0.25):
                searcher.followed.reload_if_changed()

        threading.Thread(target=follow, daemon=True).start()

        def measure(until, searcher=searcher) -> tuple[list[float], int]:
            times, errors, n = [], 0, 0
            while until(len(times)):
                started = time.perf_counter()
                try:
                    searcher.search(queries[n % len(queries)], 10)
                except Exception:  # counted: the target is zero
                    errors += 1
                times.append((time.perf_counter() - started) * 1000)
                n += 1
            return sorted(times), errors

        measure(lambda done: done < 50)
        idle, _ = measure(lambda done: done < 600)
        before = searcher.index.view.version
        # run from bench/, where the writer finds this module
        process = subprocess.Popen(
            [*prefix, sys.executable, *command, str(copy)], stdout=subprocess.PIPE, text=True, cwd=ROOT / "bench"
        )
        if command[1] == _BATCH_WRITER:
            assert process.stdout.readline().strip() == "ready"  # documents made: the write begins
        busy, errors = measure(lambda done, process=process: process.poll() is None)
        finished = time.perf_counter()
        visible = "–"
        if command[1] == _BATCH_WRITER:
            while searcher.index.view.version == before:
                time.sleep(0.01)
            visible = f"{time.perf_counter() - finished:.2f}"
        stop.set()
        print(
            f"| {label} | {len(busy)} | {statistics.median(idle):.1f} / {statistics.median(busy):.1f} | "
            f"{p99(idle):.1f} / {p99(busy):.1f} | {p99(busy) / p99(idle):.2f}x | {errors} | {visible} |",
            flush=True,
        )
        searcher.index.close()
    shutil.rmtree(WORK / "concurrent-copy", ignore_errors=True)


class StoredVectors:
    """The vectors a one-shot index already holds, looked up by passage text: the written index
    gets exactly the embeddings the one-shot build computed."""

    def __init__(self, index_dir: Path, real):
        from index.store.embedded.publish import open_index

        index = open_index(index_dir)
        self.vectors = {}
        for rows in index.passages.all_rows(index.dim, texts=True):
            self.vectors.update(zip(rows.texts, rows.vectors.copy()))
        index.close()
        self.real = real
        self.model_id, self.dim, self.max_tokens = real.model_id, real.dim, real.max_tokens
        self.prompts, self.precision = real.prompts, real.precision

    def count_tokens(self, text: str) -> int:
        return self.real.count_tokens(text)

    def encode_passages(self, texts, batch_size: int = 32) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts])


def quality(args) -> None:
    from quality import SETS

    from index.build import build_index, is_current
    from index.encode.embed import load_encoder
    from index.evaluate.quality import evaluate, load_eval_set
    from index.ingest.files import find_files, read_documents
    from index.retrieve.search import MODES

    real = load_encoder()
    print("| set | questions | mode | one-shot MRR@10 | written MRR@10 | difference |")
    print("|---|---|---|---|---|---|")
    for label in args.sets.split(","):
        evalset = load_eval_set(SETS[label], ROOT / "data" / "corpus")
        one_shot = ROOT / "var" / "eval" / evalset.name
        if not is_current(evalset.corpus, one_shot, real.model_id, real.precision):
            build_index(evalset.corpus, one_shot, real)
        documents = list(read_documents(find_files(evalset.corpus)))
        stored = StoredVectors(one_shot, real)
        written = WORK / f"written-{evalset.name}"
        batches = np.array_split(np.arange(len(documents)), 10)
        build_from_documents([documents[i] for i in batches[0]], written, stored, progress=False)
        with writing(written) as writer:
            for batch in batches[1:]:
                write_documents(writer, [documents[i] for i in batch], stored)
            again = np.random.default_rng(0).choice(len(documents), max(1, len(documents) // 20), replace=False)
            writer.write(delete=[documents[i].doc_id for i in again])
            write_documents(writer, [documents[i] for i in again], stored)
        for unaccented in (False, True):
            reports = [
                evaluate(Searcher.open(index, encoder=real), evalset, MODES, unaccented=unaccented)
                for index in (one_shot, written)
            ]
            for mode in MODES:
                before, after = reports[0][mode]["MRR@10"], reports[1][mode]["MRR@10"]
                print(
                    f"| {label}{' unaccented' if unaccented else ''} | "
                    f"{len(evalset.queries)} | {mode} | {before:.4f} | "
                    f"{after:.4f} | {after - before:+.4f} |",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("add")
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.set_defaults(run=add)
    p = commands.add_parser("concurrent")
    p.add_argument("--passages", type=int, default=100_000)
    p.set_defaults(run=concurrent)
    p = commands.add_parser("quality")
    p.add_argument("--sets", default="ViQuAD,ViNewsQA")
    p.set_defaults(run=quality)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    args.run(args)


if __name__ == "__main__":
    main()
