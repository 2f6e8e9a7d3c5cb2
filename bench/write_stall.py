"""Do writes stall reads? Search latency over HTTP while the server is idle, and while a batch of
documents (the API's largest, embedded inside a serving worker) is being written.

Starts `semsearch serve` (2 workers) on a private copy of the index, sends searches from 2
clients, idle and then during each batch POST, and prints p50 / p99 (min / median / max over the
repeats). Every loop is bounded in requests and time.

    python bench/write_stall.py --index var/index [--documents 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from figures import p99, spread
from http_load import free_port, questions, start_server

ROOT = Path(__file__).resolve().parent.parent

KEY = "write-stall-bench"
MAX_SECONDS = 300
numbers = itertools.count()


def searches(port: int, queries: list[str], clients: int, until: threading.Event | None, limit: int) -> list[float]:
    """Latencies (ms) of searches sent by `clients` one after another, until `until` is set (or
    `limit` searches each when there is none)."""
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + MAX_SECONDS

    def client(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        n = 0
        while time.monotonic() < deadline and (until.is_set() is False if until else n < limit):
            # a number no other search has: the query cache must not answer for the encoder
            query = f"{queries[(offset + n * clients) % len(queries)]} {next(numbers)}"
            started = time.perf_counter()
            connection.request("GET", "/api/search?" + urllib.parse.urlencode({"q": query, "k": 10}))
            response = connection.getresponse()
            response.read()
            assert response.status == 200, response.status
            with lock:
                latencies.append((time.perf_counter() - started) * 1000)
            n += 1

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def batch(port: int, documents: int, tag: str) -> tuple[int, float]:
    body = json.dumps(
        [
            {
                "id": f"{tag}-{n}",
                "title": f"Bản tin {n}",
                "text": f"Bản tin số {n} về công tác xây dựng Đảng ở cơ sở năm 2024. " * 8
                + "\n\n"
                + f"Chi bộ số {n} tổ chức sinh hoạt chuyên đề, có {n % 90 + 10} đảng viên dự.",
            }
            for n in range(documents)
        ],
        ensure_ascii=False,
    ).encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=MAX_SECONDS)
    started = time.perf_counter()
    connection.request(
        "POST", "/api/documents", body, {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    )
    response = connection.getresponse()
    response.read()
    return response.status, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=ROOT / "var" / "index")
    parser.add_argument("--documents", type=int, default=1000, help="documents per batch (the API's cap: 1000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clients", type=int, default=2)
    args = parser.parse_args()

    queries = questions(2000)
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "copy"
        shutil.copytree(args.index.resolve().parent, copy, symlinks=True)
        port = free_port()
        import os

        os.environ["SEMSEARCH_API_KEYS"] = KEY
        server = start_server(copy / args.index.name, port, 2, 4)
        try:
            searches(port, queries, args.clients, None, 20)  # warm the encoder's first calls
            idle, busy, seconds = [], [], []
            for repeat in range(args.repeats):
                idle.append(searches(port, queries, args.clients, None, 300))
                done = threading.Event()
                during: list[float] = []
                reader = threading.Thread(
                    target=lambda during=during, done=done: during.extend(
                        searches(port, queries, args.clients, done, 0)
                    )
                )
                reader.start()
                status, took = batch(port, args.documents, f"r{repeat}")
                done.set()
                reader.join()
                assert status == 200, status
                busy.append(during)
                seconds.append(took)
        finally:
            server.terminate()
            server.wait(timeout=90)
    print(
        f"write_stall ({args.documents} documents a batch, {args.clients} search clients, 2 workers; "
        f"min / median / max of {args.repeats} repeats)"
    )
    print(f"  batch took (s):               {spread(seconds)}")
    for label, runs in (("idle", idle), ("during the batch", busy)):
        print(
            f"  search {label:<17} p50 (ms): {spread([statistics.median(r) for r in runs])}   "
            f"p99 (ms): {spread([p99(r) for r in runs])}   searches: {spread([len(r) for r in runs], 0)}"
        )
    ratio = [p99(b) / p99(i) for i, b in zip(idle, busy)]
    print(f"  p99 during / idle:            {spread(ratio, 2)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
