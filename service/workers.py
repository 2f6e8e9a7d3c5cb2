"""The production server: gunicorn, with threaded workers (`gthread`, the Flask convention).

gunicorn supervises: a worker that dies is replaced at once, workers leave when their parent is
gone, and SIGTERM stops accepting, lets the requests in flight finish (up to GRACEFUL_SECONDS),
then exits, so an acknowledged write always gets its answer. It replaced a home-made fork loop
that did none of this.

Inside a worker the GIL serialises the Python parts of a search; the encoder and FAISS release
it. Each worker loads the app itself after the fork, because the thread pools of torch, OpenVINO
and OpenMP do not survive one; the index files are memory-mapped, so the workers still share one
copy of the vectors and postings in the page cache.

Four things of the threaded worker are changed here, each because a client the server does not
control could otherwise tie it up:
- a new connection waits in the worker's poller, not in a thread, until its first bytes arrive
  (gunicorn gives it a thread for up to 5 s first: 300 idle connections kept real requests
  waiting for minutes);
- reading a request (its head and its body) has a deadline: a client that stops sending is cut
  off after READ_SECONDS of silence, and a body still arriving after BODY_SECONDS is answered 408;
- the unread rest of a body the app refused is drained for DRAIN_SECONDS at most, not 5 s;
- gunicorn's own answers to malformed requests are the API's JSON errors with the security
  headers, as the app's are.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import selectors
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from flask import Flask
from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.errors import AppImportError, HaltServer
from gunicorn.workers import gthread
from werkzeug.exceptions import RequestTimeout

from index.store.base import IndexProblem

from . import state
from .errors import ConfigurationError
from .guard import SECURITY_HEADERS

# gunicorn's exit status when the app could not be loaded (Arbiter.APP_LOAD_ERROR)
APP_LOAD_ERROR = 4
# Silence a request may keep while it is being read, and how long its body may take in all.
READ_SECONDS = 10.0
BODY_SECONDS = 60.0
# How long the unread rest of a refused body may take to arrive before its connection is closed.
DRAIN_SECONDS = 0.5
# How long a stopping worker lets the requests in flight finish (a batch write takes longer than
# a search), and how long a worker may go without a sign of life before it is replaced.
GRACEFUL_SECONDS = 60
HEARTBEAT_SECONDS = 300  # loading the model at boot sends none
# The one-line request and each header line, at most (gunicorn refuses more than 8190 for the first).
MAX_REQUEST_LINE = 8190
MAX_HEADER_LINE = 8190
MAX_HEADERS = 100


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class Limits:
    """Connections cost a file descriptor and a few KB each but no thread until a request's first
    bytes arrive, so the limit is high and an idle keep-alive is closed soon."""

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


_STATUS_CODES = {
    400: "bad_request",
    408: "request_timeout",
    413: "payload_too_large",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "request_header_fields_too_large",
    500: "internal_error",
    501: "not_implemented",
}


def json_error(sock, status: int, reason: str, message: str) -> None:
    """gunicorn's answer to a request it could not parse, as the app would give it."""
    body = json.dumps(
        {"error": {"code": _STATUS_CODES.get(status, "error"), "message": f"{reason}: {message}"}}
    ).encode()
    head = [
        f"HTTP/1.1 {status} {reason}",
        "Connection: close",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in SECURITY_HEADERS.items()),
    ]
    util.write_nonblock(sock, ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)


class _TimedSocket(socket.socket):
    """A client socket whose blocking reads and writes give up after READ_SECONDS of silence
    (gunicorn sets its sockets blocking, with no timeout, while a thread reads a request)."""

    def setblocking(self, flag: bool) -> None:
        if flag:
            self.settimeout(READ_SECONDS)
        else:
            super().setblocking(False)

    @classmethod
    def of(cls, sock: socket.socket) -> _TimedSocket:
        timed = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        timed.setblocking(True)
        return timed


class _TimedBody:
    """The request body as gunicorn streams it, answered 408 when the client stops sending it or
    takes longer than BODY_SECONDS (Werkzeug would call either a disconnection, a 400)."""

    def __init__(self, body, deadline: float):
        self._body = body
        self._deadline = deadline

    def _timed(self, read, *args):
        if time.monotonic() > self._deadline:
            raise RequestTimeout(f"the body took longer than {BODY_SECONDS:.0f} s to arrive")
        try:
            return read(*args)
        except TimeoutError:
            raise RequestTimeout(f"the body stopped arriving for {READ_SECONDS:.0f} s") from None

    def read(self, *args):
        return self._timed(self._body.read, *args)

    def readline(self, *args):
        return self._timed(self._body.readline, *args)

    def readlines(self, *args):
        return self._timed(self._body.readlines, *args)

    def __iter__(self):
        return iter(self.readline, b"")


def timed_bodies(app: Flask) -> Callable:
    """WSGI middleware: the body deadline of every request."""
    wsgi_app = app.wsgi_app

    def timed(environ, start_response):
        environ["wsgi.input"] = _TimedBody(environ["wsgi.input"], time.monotonic() + BODY_SECONDS)
        return wsgi_app(environ, start_response)

    return timed


class Worker(gthread.ThreadWorker):
    def init_process(self):
        util.write_error = json_error  # gunicorn's own answers, in this worker process
        super().init_process()

    def _keepalive_after(self, conn, keepalive):
        """What is left of a body the app did not read (one it refused) is drained only while it
        is already there: gunicorn waits up to 5 s for the rest, holding the thread."""
        return keepalive and bool(conn.parser.finish_body(deadline=time.monotonic() + DRAIN_SECONDS))

    def accept(self, listener):
        """A new connection waits in the poller until it sends, like a kept-alive one."""
        try:
            client, address = listener.accept()
        except OSError:
            return  # another worker took it, or the client left
        self.nr_conns += 1
        conn = gthread.TConn(self.cfg, _TimedSocket.of(client), address, listener.getsockname())
        conn.timeout = time.monotonic() + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn))


def _forget_metrics_of(arbiter, worker) -> None:
    from prometheus_client import multiprocess  # imported once PROMETHEUS_MULTIPROC_DIR is set

    multiprocess.mark_process_dead(worker.pid)


class _SilentTimeouts(logging.Filter):
    """A client cut off for its silence is routine, not an error with a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], TimeoutError))


def serve(make_app: Callable[[], Flask], host: str, port: int, workers: int, threads: int, limits: Limits) -> int:
    """Serve until stopped; 0 on a clean stop, 2 when the app cannot start (a missing or broken
    index, a file of keys it cannot read: its error is printed), else gunicorn's exit status."""
    # every worker writes its metrics here and /metrics adds them up (prometheus-client's
    # multiprocess mode reads this variable when it is first imported, so set it before any worker)
    metrics_dir = None
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        metrics_dir = tempfile.mkdtemp(prefix="semsearch-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    connections = limits.connections()  # raises this process's file limit, which workers inherit

    def load() -> Callable:
        try:
            app = make_app()
        except (IndexProblem, ConfigurationError) as exc:
            raise AppImportError(f"semsearch: {exc}") from None  # gunicorn prints it and stops
        logging.getLogger("gunicorn.error").addFilter(_SilentTimeouts())
        print(
            f"semsearch: process {os.getpid()} serving {state.of(app).searcher.size} passages on "
            f"http://{host}:{port}/ (up to {connections} connections, idle ones closed after "
            f"{limits.idle_seconds} s)",
            flush=True,
        )
        return timed_bodies(app)

    class Server(BaseApplication):
        def load_config(self):
            settings = {
                "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
                "workers": workers,
                "worker_class": f"{__name__}.Worker",
                "threads": threads,
                "worker_connections": connections,
                "keepalive": limits.idle_seconds,
                "graceful_timeout": GRACEFUL_SECONDS,
                "timeout": HEARTBEAT_SECONDS,
                "limit_request_line": MAX_REQUEST_LINE,
                "limit_request_field_size": MAX_HEADER_LINE,
                "limit_request_fields": MAX_HEADERS,
                "backlog": 2048,
                "accesslog": None,
                "loglevel": "warning",
                "proc_name": "semsearch",
                "control_socket_disable": True,
                "child_exit": _forget_metrics_of,
            }
            for name, value in settings.items():
                self.cfg.set(name, value)

        def load(self):
            return load()

    master = os.getpid()
    try:
        Server().run()
        return 0
    except (SystemExit, HaltServer) as stop:
        if os.getpid() != master:  # a worker leaving: its exit status is gunicorn's to tell
            raise
        # HaltServer escapes gunicorn's halt() when a second worker fails to load while it stops
        code = stop.exit_status if isinstance(stop, HaltServer) else stop.code if isinstance(stop.code, int) else 1
        return 2 if code == APP_LOAD_ERROR else code
    finally:
        if metrics_dir and os.getpid() == master:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        sys.stderr.flush()
