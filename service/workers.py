"""The production server: waitress threads in one or several processes on one listening socket.

Inside a process the GIL serialises the Python parts of a search (BM25's score sum, highlights,
Flask); the encoder and FAISS release it. Processes do not share a GIL, so several of them keep
every core busy. Each worker loads the app itself after the fork, because the thread pools of
torch, OpenVINO and OpenMP do not survive one; the index files are memory-mapped, so the workers
still share one copy of the vectors and BM25 postings in the page cache.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask

from index.store.publish import IndexProblem

from .guard import SECURITY_HEADERS


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class Limits:
    """What waitress enforces before a request reaches the app. Connections cost a file
    descriptor and a few KB each but no thread until a request arrives, so the limit is high and
    an idle keep-alive is closed soon: a few hundred idle sockets no longer lock clients out."""

    max_header_bytes: int = 32 * 1024  # a 500-character query is at most ~4.5 KB percent-encoded
    connection_limit: int = 0  # per process; 0: from the file descriptors this process may open
    idle_seconds: int = 15

    def connections(self) -> int:
        if self.connection_limit:
            return self.connection_limit
        return max(100, min(4096, _raise_file_limit() - 64))


def _raise_file_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


_WAITRESS_ERROR_CODES = {400: "bad_request", 413: "payload_too_large", 431: "request_header_fields_too_large",
                         500: "internal_error", 501: "not_implemented"}


def _json_error_channel():
    """waitress answers malformed and oversized requests itself, in plain text; this channel
    answers them as the app would: the JSON error shape, with the security headers."""
    from waitress.channel import HTTPChannel
    from waitress.task import ErrorTask

    class JsonErrorTask(ErrorTask):
        def execute(self):
            error = self.request.error
            message = f"{error.reason}: {error.body}"
            body = json.dumps({"error": {"code": _WAITRESS_ERROR_CODES.get(error.code, "error"), "message": message}}).encode()
            self.status = f"{error.code} {error.reason}"
            self.response_headers.extend([("Content-Type", "application/json"), *SECURITY_HEADERS.items()])
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)

    class JsonErrorChannel(HTTPChannel):
        error_task_class = JsonErrorTask

    return JsonErrorChannel


def serve(make_app: Callable[[], Flask], host: str, port: int, workers: int, threads: int, limits: Limits) -> int:
    """Serve until stopped; 0 on a clean stop, else the exit code of the worker that failed
    (2 for a missing or broken index, as the other commands; its error is printed)."""
    listeners = _listeners(host, port, workers)
    # every worker writes its metrics here and /metrics adds them up (prometheus-client's
    # multiprocess mode reads this variable when it is first imported, so set it before any worker)
    metrics_dir = None
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        metrics_dir = tempfile.mkdtemp(prefix="semsearch-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        return _run(listeners, make_app, threads, limits)
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _listeners(host: str, port: int, workers: int) -> list[socket.socket]:
    """A listening socket per worker on one port (SO_REUSEPORT: the kernel spreads new connections
    across them). One socket shared by every worker let whichever woke first accept a burst of
    connections: under 8 kept-alive clients one worker served them all while the other idled.
    A plain socket is bound first, so a port another server holds is refused as always."""
    probe = socket.create_server((host, port), backlog=2048)
    if workers <= 1 or not hasattr(socket, "SO_REUSEPORT"):
        return [probe] * max(workers, 1)
    port = probe.getsockname()[1]
    probe.close()
    return [socket.create_server((host, port), backlog=2048, reuse_port=True) for _ in range(workers)]


def _run(listeners: list[socket.socket], make_app: Callable[[], Flask], threads: int, limits: Limits) -> int:
    if len(listeners) <= 1:
        _serve_on(listeners[0], make_app, threads, limits)
        return 0
    children: set[int] = set()
    for listener in listeners:
        pid = os.fork()
        if pid == 0:
            for other in listeners:
                if other is not listener:
                    other.close()
            os._exit(_worker(listener, make_app, threads, limits))
        children.add(pid)
    for listener in listeners:
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
        _forget_metrics_of(pid)
        code = os.waitstatus_to_exitcode(wait_status)
        if not stopping and code != 0:
            # a worker that cannot start (a broken index, say) stops the whole server
            status = code if code > 0 else 1
            stop()
    return status


def _forget_metrics_of(pid: int) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)


def _worker(listener: socket.socket, make_app: Callable[[], Flask], threads: int, limits: Limits) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    try:
        _serve_on(listener, make_app, threads, limits)
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


def _serve_on(listener: socket.socket, make_app: Callable[[], Flask], threads: int, limits: Limits) -> None:
    import waitress

    app = make_app()
    host, port = listener.getsockname()[:2]
    connections = limits.connections()  # raises this process's file limit to allow them
    server = waitress.create_server(
        app, sockets=[listener], threads=threads, ident="semsearch", asyncore_use_poll=True,
        connection_limit=connections, channel_timeout=limits.idle_seconds,
        cleanup_interval=max(1, limits.idle_seconds // 2),  # how often idle channels are looked for
        # the app's own body limit, so bigger bodies are refused before they are read
        max_request_body_size=max(app.config["MAX_CONTENT_LENGTH"], app.config["DOCUMENTS_MAX_BYTES"]), max_request_header_size=limits.max_header_bytes,
    )
    server.channel_class = _json_error_channel()
    print(f"semsearch: process {os.getpid()} serving {app.extensions['searcher'].size} passages on http://{host}:{port}/ "
          f"(up to {connections} connections, idle ones closed after {limits.idle_seconds} s)", flush=True)
    server.run()
