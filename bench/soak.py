"""Soak: `semsearch serve` under a steady mixed load for a long time, with idle connections held open.

8 clients (kept-alive connections) cycle through hybrid, dense and lexical searches, similar-by-id,
similar-by-text and search pages, with distinct questions (ViQuAD's when ../shared is here); 300
more connections sit idle, and each is opened again as soon as the server closes it for idling.
Every 10 s the workers' resident memory (RSS and PSS) is sampled. Prints errors per kind of
request, latency, and memory growth from the end of the warm-up to the end. Loopback only; bounded
in time.

    python bench/soak.py --index var/index [--minutes 10] [--clients 8] [--idle 300]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import selectors
import socket
import threading
import time
import urllib.parse
from pathlib import Path

from figures import p99
from http_load import free_port, questions, start_server

ROOT = Path(__file__).resolve().parent.parent

WARM_UP_SECONDS = 60
SAMPLE_SECONDS = 10


def worker_pids(server_pid: int) -> list[int]:
    with open(f"/proc/{server_pid}/task/{server_pid}/children") as f:
        return [int(pid) for pid in f.read().split()]


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in KiB."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("Rss", "Pss"):
                fields[name] = int(rest.split()[0])
    return fields["Rss"], fields["Pss"]


def requests_for(rng: random.Random, queries: list[str], passage_ids: list[str]) -> tuple[str, str, str, bytes | None]:
    """(kind, method, path, body) of one request of the mix."""
    query = rng.choice(queries)
    kind = rng.choice(["hybrid", "dense", "lexical", "hybrid", "similar_id", "similar_text", "page"])
    if kind in ("hybrid", "dense", "lexical"):
        return kind, "GET", "/api/search?" + urllib.parse.urlencode({"q": query, "k": 10, "mode": kind}), None
    if kind == "similar_id":
        return kind, "GET", f"/api/passages/{rng.choice(passage_ids)}/similar?k=10", None
    if kind == "similar_text":
        return kind, "POST", "/api/similar", json.dumps({"text": query, "k": 10}).encode()
    return kind, "GET", "/?" + urllib.parse.urlencode({"q": query, "k": 10}), None


def hold_idle(port: int, count: int, stop: threading.Event, reopened: list[int]) -> None:
    """Keep `count` idle connections open, replacing each one the server closes."""
    selector = selectors.DefaultSelector()

    def open_one() -> None:
        connection = socket.create_connection(("127.0.0.1", port), timeout=10)
        connection.setblocking(False)
        selector.register(connection, selectors.EVENT_READ)

    for _ in range(count):
        open_one()
    while not stop.is_set():
        for key, _ in selector.select(timeout=1):
            connection = key.fileobj
            try:
                data = connection.recv(1024)
            except OSError:
                data = b""
            if not data:
                selector.unregister(connection)
                connection.close()
                reopened[0] += 1
                open_one()
    for key in list(selector.get_map().values()):
        key.fileobj.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=ROOT / "var" / "index")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--idle", type=int, default=300)
    args = parser.parse_args()

    port = free_port()
    server = start_server(args.index, port, None, 4)
    workers = worker_pids(server.pid)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("GET", "/api/search?q=%C4%91%E1%BA%A3ng&k=100&mode=lexical")
    passage_ids = [r["id"] for r in json.loads(connection.getresponse().read())["results"]]
    queries = questions(2000)

    stop = threading.Event()
    reopened = [0]
    idle = threading.Thread(target=hold_idle, args=(port, args.idle, stop, reopened), daemon=True)
    idle.start()

    lock = threading.Lock()
    latencies: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    deadline = time.monotonic() + args.minutes * 60

    def client(seed: int) -> None:
        rng = random.Random(seed)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.monotonic() < deadline:
            kind, method, path, body = requests_for(rng, queries, passage_ids)
            headers = {"Content-Type": "application/json"} if body else {}
            started = time.perf_counter()
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.setdefault(kind, []).append(elapsed)
                if not ok:
                    errors[kind] = errors.get(kind, 0) + 1

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(args.clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    samples: list[tuple[float, list[tuple[int, int]]]] = []
    while any(thread.is_alive() for thread in threads):
        samples.append((time.monotonic() - started, [memory_kib(pid) for pid in workers]))
        time.sleep(SAMPLE_SECONDS)
    for thread in threads:
        thread.join()
    samples.append((time.monotonic() - started, [memory_kib(pid) for pid in workers]))
    stop.set()
    idle.join(10)
    server.terminate()
    server.wait(30)

    total = sum(len(v) for v in latencies.values())
    seconds = time.monotonic() - started
    print(
        f"soak: {seconds / 60:.1f} min, {args.clients} clients, {args.idle} idle connections "
        f"(reopened {reopened[0]} times after the server closed them), {len(workers)} workers"
    )
    print(f"requests: {total} ({total / seconds:.0f}/s), errors: {sum(errors.values())}")
    print("| request | count | errors | p50 ms | p99 ms |\n|---|---|---|---|---|")
    for kind, values in sorted(latencies.items()):
        values.sort()
        print(
            f"| {kind} | {len(values)} | {errors.get(kind, 0)} | {values[len(values) // 2]:.1f} | {p99(values):.1f} |"
        )
    warm = next(sample for sample in samples if sample[0] >= WARM_UP_SECONDS)
    print("| worker | RSS MiB after warm-up | RSS MiB at end | growth | PSS MiB at end |\n|---|---|---|---|---|")
    for n, pid in enumerate(workers):
        rss_warm, rss_end, pss_end = warm[1][n][0], samples[-1][1][n][0], samples[-1][1][n][1]
        print(
            f"| {pid} | {rss_warm / 1024:.0f} | {rss_end / 1024:.0f} | "
            f"{100 * (rss_end - rss_warm) / rss_warm:+.1f}% | {pss_end / 1024:.0f} |"
        )


if __name__ == "__main__":
    main()
