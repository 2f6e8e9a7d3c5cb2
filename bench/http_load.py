"""Search latency over HTTP against the production server under 1, 8 and 32 concurrent clients,
beside the same searches in process.

Starts `semsearch serve` on a free loopback port with the given index, sends distinct questions
(ViQuAD's when ../shared is here, so the query cache does not flatter the numbers), and stops
the server at the end. Every loop is bounded in requests and time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

from figures import p99, spread

ROOT = Path(__file__).resolve().parent.parent

MAX_SECONDS_PER_LEVEL = 120


def questions(limit: int) -> list[str]:
    viquad = ROOT.parent / "shared" / "eval" / "viquad" / "queries_dev.jsonl"
    source = viquad if viquad.exists() else ROOT.parent / "shared" / "eval" / "seed_queries_dev.jsonl"
    lines = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [q.get("text") or q["query"] for q in lines][:limit]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(
    index: Path, port: int, workers: int | None, threads: int, location: Sequence[str] = (), start_seconds: float = 180
) -> subprocess.Popen:
    """`semsearch serve` on `index`, or on what `location` names instead (say, --milvus-uri URI)."""
    # loopback load from one address: the per-client rate limit would measure itself
    options = ["--threads", str(threads), "--rate-limit", "off"] + (["--workers", str(workers)] if workers else [])
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            *(location or ["--index", str(index)]),
            "--port",
            str(port),
            *options,
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + start_seconds
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=start_seconds)
            connection.request("GET", "/api/health")
            if connection.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError("server did not start")


def load(port: int, queries: list[str], clients: int, mode: str) -> list[float]:
    """Each client sends its share of `queries` one after another on a kept-alive connection."""
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + MAX_SECONDS_PER_LEVEL

    def client(share: list[str]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for query in share:
            if time.monotonic() > deadline:
                return
            path = "/api/search?" + urllib.parse.urlencode({"q": query, "k": 10, "mode": mode})
            started = time.perf_counter()
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            elapsed = (time.perf_counter() - started) * 1000
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status} for {query!r}")
            with lock:
                latencies.append(elapsed)

    workers = [threading.Thread(target=client, args=(queries[i::clients],)) for i in range(clients)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sorted(latencies)


def in_process(index: Path, queries: list[str], mode: str) -> list[float]:
    from index.retrieve.search import Searcher

    searcher = Searcher.open(index)  # a new searcher each run: an empty query cache
    latencies = []
    for query in queries:
        started = time.perf_counter()
        searcher.search(query, 10, mode)
        latencies.append((time.perf_counter() - started) * 1000)
    return sorted(latencies)


def summary(run: tuple[list[float], float | None]) -> tuple[float, float, float | None]:
    """(p50, p99, requests/s) of one run's latencies and wall seconds."""
    latencies, seconds = run
    return statistics.median(latencies), p99(latencies), (len(latencies) / seconds if seconds else None)


def row(label: str, runs: list[tuple[list[float], float | None]]) -> str:
    """p50 min / median / max over the runs; p99 and requests/s medians."""
    p50s, p99s, rates = zip(*(summary(run) for run in runs))
    rate = f"{statistics.median(rates):.0f}" if rates[0] else "-"
    return f"| {label} | {len(runs[0][0])} | {spread(p50s)} | {statistics.median(p99s):.1f} | {rate} |"


def passage_count(index: Path) -> int:
    from index.store.embedded.publish import open_index

    opened = open_index(index)
    try:
        return opened.view.passages
    finally:
        opened.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index", type=Path, default=ROOT / "var" / "index")
    parser.add_argument("--requests", type=int, default=300, help="distinct queries per concurrency level")
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--mode", default="hybrid")
    parser.add_argument("--workers", type=int, help="server processes (default: the server's own)")
    parser.add_argument("--threads", type=int, default=4, help="threads per server process")
    parser.add_argument("--repeats", type=int, default=3, help="runs, each against a newly started server")
    args = parser.parse_args()

    levels = [int(c) for c in args.clients.split(",")]
    queries = questions(args.requests * (len(levels) + 1))
    # a slice of questions of its own per level, so no level is served from the query cache
    slices = [
        queries[i * args.requests : (i + 1) * args.requests] or queries[: args.requests] for i in range(len(levels) + 1)
    ]
    print(
        f"index {args.index} ({passage_count(args.index)} passages), mode {args.mode}, "
        f"{args.repeats} runs: p50 min / median / max, p99 and requests/s medians"
    )
    print("| where | requests | p50 ms | p99 ms | requests/s |")
    print("|---|---|---|---|---|")
    runs = [(in_process(args.index, slices[0], args.mode), None) for _ in range(args.repeats)]
    print(row("in process, 1 caller", runs), flush=True)
    by_level: dict[int, list] = {clients: [] for clients in levels}
    for _ in range(args.repeats):
        port = free_port()
        server = start_server(args.index, port, args.workers, args.threads)
        try:
            for clients, batch in zip(levels, slices[1:]):
                started = time.perf_counter()
                latencies = load(port, batch, clients, args.mode)
                by_level[clients].append((latencies, time.perf_counter() - started))
        finally:
            server.terminate()
            server.wait(timeout=30)
    for clients, level_runs in by_level.items():
        print(row(f"HTTP, {clients} clients", level_runs), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
