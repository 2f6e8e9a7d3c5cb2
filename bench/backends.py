"""The embedded backend (SQLite, FAISS, tantivy) and the Milvus backend (milvus-lite here) side
by side, on the same machine and the same passages: index time per passage, search latency in
process, over HTTP with 1 and 8 connections (wrk), and memory.

Passages are ViQuAD's paragraphs, one per document: the corpus itself (5,109) or, with
--passages N, N of them cycled with new ids. Each gets its real e5 vector from the ViQuAD
evaluation index (`make eval` builds it), so indexing time is the backend's alone (embedding
costs the same on both: see bench/index_speed.py); queries go through the real model.

    python bench/backends.py [--passages 100000] [--queries 200] [--seconds 10] [--rebuild]

Both builds are kept under var/bench/backends-N with their times (built.json), and a later run
of the same size measures the searches again on them (milvus-lite takes ~30 min to build 100k).

The milvus-lite file is opened by the serving process itself, so that server has one worker
and the Milvus engine (pure Python) in its own interpreter; a Milvus server takes both out.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from figures import p99
from http_load import free_port, start_server
from soak import memory_kib, worker_pids
from synthetic_index import recycled_paragraphs, write_corpus
from wrk_load import lua_script, question_paths, run_wrk

from index.build import build_index
from index.encode.embed import load_encoder
from index.retrieve.search import Searcher
from index.store.milvus.store import MilvusTarget
from index.text import normalize

ROOT = Path(__file__).resolve().parent.parent

WHOLE = 10_000  # passage_tokens: each paragraph stays one passage, as the recycled vectors assume


def questions(count: int) -> list[str]:
    lines = (ROOT.parent / "shared" / "eval" / "viquad" / "queries_dev.jsonl").read_text(encoding="utf-8").splitlines()
    return list(dict.fromkeys(normalize(json.loads(line)["text"]) for line in lines))[:count]


def in_process(location, encoder, asked: list[str]) -> dict[str, float]:
    searcher = Searcher.open(location, encoder=encoder)
    searcher.search(asked[0], 10)  # first call: connections, caches
    latencies = []
    for question in asked[1:]:
        started = time.perf_counter()
        searcher.search(question, 10)
        latencies.append((time.perf_counter() - started) * 1000)
    searcher.index.close()
    return {"p50": statistics.median(latencies), "p99": p99(latencies)}


# milvus-lite loads a collection on its first request: 90 s and 9 GB at 100k passages
START_SECONDS = 900


def over_http(serve_location: list[str], clients: int, seconds: int, workers: int | None) -> dict[str, float]:
    script = lua_script(question_paths("hybrid"), 2, ROOT / "var" / "bench" / "wrk")
    port = free_port()
    server = start_server(Path("."), port, workers, 4, serve_location, START_SECONDS)
    try:
        result = run_wrk(port, script, clients, min(2, clients), seconds)
        # one worker is served by the process itself; more, by its children
        result["pss_mb"] = sum(memory_kib(pid)[1] for pid in worker_pids(server.pid) or [server.pid]) / 1024
        return result
    finally:
        server.terminate()
        server.wait(timeout=30)


def print_row(name: str, per_passage: float, latency: dict, http: dict) -> None:
    one, eight = http[1], http[8]
    print(
        f"| {name} | {per_passage:.2f} | {latency['p50']:.1f} / {latency['p99']:.1f} | "
        f"{one['rate']:.1f}, {one['p50']:.0f} / {one['p99']:.0f} | "
        f"{eight['rate']:.1f}, {eight['p50']:.0f} / {eight['p99']:.0f} | "
        f"{eight['pss_mb']:.0f} |",
        flush=True,
    )


def lite_server(data_dir: Path) -> tuple[subprocess.Popen, MilvusTarget]:
    """milvus-lite as a server process of its own, as Milvus would be: the service tier keeps no index."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "milvus_lite.cmdline", "server", "--data-dir", str(data_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    target = MilvusTarget(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 60
    while True:
        try:
            target.connect().close()
            return server, target
        except Exception:
            if time.monotonic() > deadline:
                server.kill()
                raise
            time.sleep(0.3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=0, help="0: the ViQuAD corpus itself")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument(
        "--rebuild", action="store_true", help="build again even if a finished build of this size is kept"
    )
    args = parser.parse_args()

    recycled, paragraphs = recycled_paragraphs(whole=True)
    size = args.passages or len(paragraphs)
    work = ROOT / "var" / "bench" / f"backends-{size}"
    corpus, times = work / "corpus.jsonl", work / "built.json"
    embedded, lite = work / "embedded", MilvusTarget(str(work / "milvus.db"))
    serve = {"embedded": ["--index", str(embedded)], "milvus-lite": ["--milvus-uri", lite.uri]}

    if times.exists() and not args.rebuild:
        built = json.loads(times.read_text())
        print(f"reusing the builds in {work} ({times.name})", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)
        write_corpus(corpus, paragraphs, size)
        built = {}
        for name, build in (
            ("embedded", lambda: build_index([corpus], embedded, recycled, passage_tokens=WHOLE, progress=False)),
            ("milvus-lite", lambda: build_index([corpus], lite, recycled, passage_tokens=WHOLE, progress=False)),
        ):
            started = time.perf_counter()
            build()
            built[name] = (time.perf_counter() - started) * 1000 / size
            print(f"{name}: built {size:,} passages, {built[name]:.2f} ms per passage", file=sys.stderr)
        times.write_text(json.dumps(built))
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(lite.uri)  # the file is the serving process's from here

    encoder = load_encoder()
    asked = questions(args.queries + 1)
    print(
        f"{size:,} passages, {len(asked) - 1} distinct ViQuAD questions in process (hybrid, k=10, one thread), "
        f"wrk {args.seconds} s per level, {os.cpu_count()} cores"
    )
    print(
        "| backend | index ms/passage | in process p50 / p99 ms | HTTP 1 client req/s, p50 / p99 ms "
        "| HTTP 8 clients req/s, p50 / p99 ms | server PSS MB (all processes) |"
    )
    print("|---|---|---|---|---|---|", flush=True)
    for name, location in (("embedded", embedded), ("milvus-lite", lite)):
        latency = in_process(location, encoder, asked)
        if name == "milvus-lite":
            server_manager_instance.release_server(lite.uri)
        http = {clients: over_http(serve[name], clients, args.seconds, None) for clients in (1, 8)}
        print_row(name, built[name], latency, http)
    # the same file behind a milvus-lite server process, and a stateless service of 2 workers
    server, target = lite_server(Path(lite.uri))
    try:
        latency = in_process(target, encoder, asked)
        http = {clients: over_http(["--milvus-uri", target.uri], clients, args.seconds, 2) for clients in (1, 8)}
        milvus_mb = memory_kib(server.pid)[1] / 1024
        print_row(
            f"milvus-lite server ({milvus_mb:.0f} MB PSS) + 2 service workers", built["milvus-lite"], latency, http
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"peak RSS of this script {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
