"""The HTTP face of semsearch: a Flask app factory with a JSON API and a search page."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, render_template, request
from werkzeug.exceptions import HTTPException

from index.retrieve.search import Searcher
from index.store.location import location_of, read_errors
from index.store.publish import IndexProblem

from .errors import ConfigurationError, error_response

log = logging.getLogger("semsearch")

DEFAULTS: dict[str, Any] = {
    "INDEX_DIR": "var/index",
    # the milvus backend: chosen by BACKEND "milvus", or by a MILVUS_URI alone (see index/store/location.py)
    "BACKEND": "",
    "MILVUS_URI": "",
    "MILVUS_COLLECTION": "semsearch",
    "MILVUS_TOKEN": "",
    "MILVUS_OPTIONS": "",  # JSON for pymilvus, e.g. {"secure": true, "server_pem_path": "ca.pem"}
    "MODEL": None,  # None: the model recorded in the index's manifest
    "DEFAULT_K": 10,
    "MAX_CONTENT_LENGTH": 256 * 1024,
    # per client address; "off" for loopback benchmarks (see service/guard.py)
    "RATE_LIMIT": "20/second;600/minute",
    "RATE_LIMIT_STORAGE": "memory://",
    # how often each process looks for writes and newly published indexes; 0: never
    "RELOAD_SECONDS": 0.25,
    # writes: keys (comma-separated) and a file of keys, one per line; with neither, writes are off
    "API_KEYS": "",
    "API_KEYS_FILE": None,
    "DOCUMENTS_MAX_BYTES": 16 * 1024 * 1024,
    # for another process's write (or a build) to finish before answering 503 with Retry-After;
    # short, as the request thread waits meanwhile
    "WRITE_WAIT_SECONDS": 2.0,
    "ACCESS_LOG": True,
    "LOG_QUERIES": False,  # query text in the access log
}


@dataclass
class IndexState:
    reload_error: str | None = None
    disk_full: str | None = None  # why the last write was refused for a full disk, until one succeeds


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Configuration comes from DEFAULTS, then the file named by $SEMSEARCH_CONFIG, then
    SEMSEARCH_* environment variables, then `config`. A ready `SEARCHER` may be passed in
    `config`; otherwise the index at INDEX_DIR is loaded now, so a broken index fails at start."""
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    app.config.from_envvar("SEMSEARCH_CONFIG", silent=True)
    app.config.from_prefixed_env("SEMSEARCH")
    if config:
        app.config.from_mapping(config)

    from . import api, documents, guard, observability, openapi, web

    documents.configured_keys(app.config)  # a file of keys that cannot be read stops the start
    location = location_of(app.config["BACKEND"], app.config["INDEX_DIR"], app.config["MILVUS_URI"],
                           app.config["MILVUS_COLLECTION"], app.config["MILVUS_TOKEN"], app.config["MILVUS_OPTIONS"])
    searcher = app.config.get("SEARCHER") or Searcher.open(location, model=app.config["MODEL"])
    searcher.observer = observability.SearchMetrics()
    app.extensions["searcher"] = searcher
    app.extensions["index_state"] = IndexState()
    observability.record_index(searcher.index)

    guard.install(app)
    observability.install(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(documents.bp)
    app.register_blueprint(web.bp)
    app.register_blueprint(openapi.bp)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(IndexProblem, _index_unavailable)
    for error in read_errors(searcher.index):
        app.register_error_handler(error, _index_unavailable)
    if float(app.config["RELOAD_SECONDS"]) > 0:
        _follow_published_index(app, float(app.config["RELOAD_SECONDS"]))
    return app


def _follow_published_index(app: Flask, interval: float) -> None:
    """A thread per process: follow writes to the index, and when the index link points to a new
    build, switch to it. Searches under way finish on the state they started with."""
    from .observability import RELOADS, record_index

    searcher: Searcher = app.extensions["searcher"]
    state: IndexState = app.extensions["index_state"]
    stop = threading.Event()
    app.extensions["stop_following"] = stop

    def follow() -> None:
        failed_target = None
        while not stop.wait(interval):
            # a directory's link may point to a new build; a Milvus collection is never replaced
            target = Path(searcher.location).resolve() if searcher.index.directory is not None else None
            if target is not None and target == failed_target:
                continue
            serving = searcher.index
            try:
                if searcher.reload_if_changed():
                    record_index(searcher.index)
                    if searcher.index is not serving:
                        gc.collect()  # the old index's files are unmapped once nothing refers to them
                        RELOADS.labels("ok").inc()
                        log.warning("now serving %s (version %d)", searcher.index.name, searcher.index.view.version)
                    state.reload_error, failed_target = None, None
            except IndexProblem as exc:
                RELOADS.labels("failed").inc()
                if str(exc) != state.reload_error:  # an unreachable Milvus is retried each interval, said once
                    log.error("kept serving %s: %s", searcher.index.name, exc)
                state.reload_error, failed_target = str(exc), target

    threading.Thread(target=follow, name="semsearch-index-follower", daemon=True).start()


def _index_unavailable(error: Exception):
    """The index failed under a request (its files damaged after start, say): 503, not a 500."""
    log.error("index unavailable: %s: %s", type(error).__name__, error)
    message = f"the index cannot be read right now ({type(error).__name__}); see /api/health"
    return _error_page(503, "index_unavailable", message)


def _http_error(error: HTTPException):
    body, status = _error_page(error.code or 500, _ERROR_CODES.get(error.code, "error"), error.description or "")
    # keep headers such as Allow on a 405 and Retry-After on a 429
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    return body, status, headers


def _error_page(status: int, code: str, message: str):
    if request.path.startswith("/api/"):
        return error_response(status, code, message)
    return render_template("error.html", status=status, message=message), status


_ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    401: "unauthorized",
    403: "forbidden",
    415: "unsupported_media_type",
    429: "too_many_requests",
    500: "internal_error",
    507: "disk_full",
}


