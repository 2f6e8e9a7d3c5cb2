"""The production server: waitress threads in one or several processes on one listening socket.

Inside a process the GIL serialises the Python parts of a search (BM25's score sum, highlights,
Flask); the encoder and FAISS release it. Processes do not share a GIL, so several of them keep
every core busy. Each worker loads the app itself after the fork, because the thread pools of
torch, OpenVINO and OpenMP do not survive one; the index files are memory-mapped, so the workers
still share one copy of the vectors and BM25 postings in the page cache.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable

from flask import Flask

from index.store import IndexProblem


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def serve(make_app: Callable[[], Flask], host: str, port: int, workers: int, threads: int) -> int:
    """Serve until stopped; 0 on a clean stop, else the exit code of the worker that failed
    (2 for a missing or broken index, as the other commands; its error is printed)."""
    listener = socket.create_server((host, port), backlog=2048)
    if workers <= 1:
        _serve_on(listener, make_app, threads)
        return 0
    children: set[int] = set()
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            os._exit(_worker(listener, make_app, threads))
        children.add(pid)
    listener.close()

    stopping = False

    def stop(signum=None, frame=None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    while children:
        pid, wait_status = os.wait()
        children.discard(pid)
        code = os.waitstatus_to_exitcode(wait_status)
        if not stopping and code != 0:
            # a worker that cannot start (a broken index, say) stops the whole server
            status = code if code > 0 else 1
            stop()
    return status


def _worker(listener: socket.socket, make_app: Callable[[], Flask], threads: int) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    try:
        _serve_on(listener, make_app, threads)
        return 0
    except IndexProblem as exc:
        print(f"semsearch: {exc}", file=sys.stderr)
        return 2
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def _serve_on(listener: socket.socket, make_app: Callable[[], Flask], threads: int) -> None:
    import waitress

    app = make_app()
    host, port = listener.getsockname()[:2]
    print(f"semsearch: process {os.getpid()} serving {app.extensions['searcher'].size} passages on http://{host}:{port}/", flush=True)
    waitress.serve(app, sockets=[listener], threads=threads, ident="semsearch")
