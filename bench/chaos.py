"""Chaos soak: searches and writes over HTTP while workers are killed and the server restarted.

Starts `semsearch serve` (2 workers) on a private copy of the index, then for --seconds: 2 clients
search, 1 client writes (PUT, DELETE and small batch POSTs over a pool of document ids), a worker
is kill -9'd every ~60 s, and the server is SIGTERM'd and started again twice. At the end the index
is opened in this process and checked against a model of the writes: every acknowledged write is
there, every write that got no answer is wholly there or wholly absent, and `verify` passes.
Searches may fail only inside a restart window or at a worker's kill; every other failure is
counted against the run. Every loop is bounded in time.

    python bench/chaos.py --index var/index [--seconds 600]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from http_load import free_port, questions

ROOT = Path(__file__).resolve().parent.parent

KEY = "chaos-bench"
DOCUMENTS = 40
KILL_EVERY = 60.0
KILL_GRACE = 2.0  # requests in flight on a killed worker fail with it


class Server:
    def __init__(self, index: Path, port: int):
        self.index, self.port, self.process = index, port, None

    def start(self) -> None:
        import subprocess

        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service.cli",
                "serve",
                "--index",
                str(self.index),
                "--port",
                str(self.port),
                "--workers",
                "2",
                "--rate-limit",
                "off",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "SEMSEARCH_API_KEYS": KEY},
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if request(self.port, "GET", "/api/health")[0] == 200:
                return
            time.sleep(0.2)
        raise RuntimeError("the server did not start")

    def workers(self) -> list[int]:
        with open(f"/proc/{self.process.pid}/task/{self.process.pid}/children") as f:
            return [int(pid) for pid in f.read().split()]

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=120)


def request(port: int, method: str, path: str, body=None) -> tuple[int, dict]:
    """(status, JSON answer); status 0 when there was no answer."""
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Authorization": f"Bearer {KEY}"}
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body, ensure_ascii=False).encode(), "application/json"
        connection.request(method, path, data, headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    except (OSError, http.client.HTTPException, ValueError):
        return 0, {}


def text_of(doc_id: str, version: int) -> str:
    return (
        f"Tài liệu {doc_id} phiên bản {version} về công tác xây dựng Đảng ở cơ sở.\n\n"
        f"Chi bộ của tài liệu {doc_id} họp phiên bản {version}, có {version % 50 + 3} đảng viên dự."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=ROOT / "var" / "index")
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    queries = questions(2000)

    scratch = Path(tempfile.mkdtemp(prefix="semsearch-chaos-"))
    shutil.copytree(args.index.resolve().parent, scratch / "copy", symlinks=True)
    server = Server(scratch / "copy" / args.index.name, free_port())
    server.start()
    started = time.monotonic()
    lock = threading.RLock()
    windows: list[list[float]] = []  # [from, to] of restarts and kills, in seconds since the start
    searches = {"ok": 0, "failed in a window": 0, "failed outside": 0}
    outside: list[str] = []
    # doc_id -> the states it may be in: {version} once acknowledged, more while unanswered; 0 is absent
    model: dict[str, set[int]] = {f"chaos-{n}": {0} for n in range(DOCUMENTS)}
    writes = {"acknowledged": 0, "refused (503)": 0, "unanswered": 0}
    stop = threading.Event()

    def now() -> float:
        return time.monotonic() - started

    def in_window(at: float) -> bool:
        with lock:
            return any(a - 0.5 <= at <= (b if b else now()) + 0.5 for a, b in windows)

    def searcher(offset: int) -> None:
        n = 0
        while not stop.is_set():
            at = now()
            query = f"{queries[(offset + 2 * n) % len(queries)]}"
            status, _ = request(server.port, "GET", "/api/search?" + urllib.parse.urlencode({"q": query, "k": 5}))
            with lock:
                if status == 200:
                    searches["ok"] += 1
                elif in_window(at) or in_window(now()):
                    searches["failed in a window"] += 1
                else:
                    searches["failed outside"] += 1
                    outside.append(f"{at:.1f}s: {status}")
            if status != 200:
                time.sleep(0.1)  # a server restarting: no busy loop
            n += 1

    def writer() -> None:
        version = 0
        while not stop.is_set():
            version += 1
            kind = rng.random()
            ids = rng.sample(sorted(model), 3 if kind < 0.2 else 1)
            if kind < 0.2:
                status, _ = request(
                    server.port,
                    "POST",
                    "/api/documents",
                    [{"id": d, "title": d, "text": text_of(d, version)} for d in ids],
                )
                outcome = version
            elif kind < 0.35:
                status, _ = request(server.port, "DELETE", f"/api/documents/{ids[0]}")
                outcome = 0
                if status == 404:
                    status = 200  # already absent: the model holds
            else:
                status, _ = request(
                    server.port, "PUT", f"/api/documents/{ids[0]}", {"title": ids[0], "text": text_of(ids[0], version)}
                )
                outcome = version
            with lock:
                for d in ids:
                    if status == 200:
                        model[d] = {outcome}
                        writes["acknowledged"] += 1
                    elif status == 503:
                        writes["refused (503)"] += 1  # nothing was written
                    else:
                        model[d] = model[d] | {outcome}
                        writes["unanswered"] += 1
            if status != 200:
                time.sleep(0.1)

    threads = [threading.Thread(target=searcher, args=(i,)) for i in range(2)] + [threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    kills = restarts = 0
    restart_at = [args.seconds / 3, 2 * args.seconds / 3]
    next_kill = KILL_EVERY / 2
    try:
        while now() < args.seconds:
            time.sleep(0.2)
            if restart_at and now() >= restart_at[0]:
                restart_at.pop(0)
                with lock:
                    windows.append([now(), 0.0])
                code = server.stop()
                server.start()
                with lock:
                    windows[-1][1] = now()
                restarts += 1
                print(
                    f"{now():6.1f}s restart (SIGTERM exit {code}) took {windows[-1][1] - windows[-1][0]:.1f} s",
                    flush=True,
                )
            elif now() >= next_kill:
                next_kill += KILL_EVERY * rng.uniform(0.8, 1.2)
                victim = rng.choice(server.workers())
                with lock:
                    windows.append([now(), now() + KILL_GRACE])
                os.kill(victim, signal.SIGKILL)
                kills += 1
                print(f"{now():6.1f}s kill -9 of worker {victim}", flush=True)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        code = server.stop()

    from index.store.embedded.publish import open_index, verify_index

    index = open_index(server.index)
    wrong = []
    for doc_id, states in model.items():
        stored = index.passages.document(doc_id)
        if stored is None:
            found = 0
        else:
            texts = [
                p.text
                for p in index.passages.by_int_ids(
                    [index.passages.by_id(p).int_id for p in stored["passages"]]
                ).values()
            ]
            versions = {int(t.split("phiên bản ")[1].split()[0].rstrip(".,")) for t in texts}
            found = versions.pop() if len(versions) == 1 else -1  # -1: passages of two writes
        if found not in states:
            wrong.append(f"{doc_id}: found {found}, expected one of {sorted(states)}")
    index.close()
    verified = bool(verify_index(server.index))
    shutil.rmtree(scratch, ignore_errors=True)

    print(
        f"chaos ({args.seconds:.0f} s, 2 workers, 2 search clients and 1 writer; {kills} kill -9 of a worker, "
        f"{restarts} SIGTERM and restart; last stop exit {code})"
    )
    print(f"  searches: {searches}")
    print(f"  writes:   {writes}")
    print(
        f"  documents checked against the model: {len(model)}, wrong: "
        f"{len(wrong)}; verify: {'passed' if verified else 'failed'}"
    )
    for line in wrong[:10] + outside[:10]:
        print(f"    {line}")
    return 0 if not wrong and verified and not searches["failed outside"] else 1


if __name__ == "__main__":
    sys.exit(main())
