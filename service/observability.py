"""Request ids, one JSON access-log line per request, and Prometheus metrics at /metrics.

`semsearch serve` runs several processes; prometheus-client's multiprocess mode (the directory in
$PROMETHEUS_MULTIPROC_DIR, set by the server before any worker starts) adds them up, so /metrics
counts every worker whichever one answers. Without that variable (tests, `flask run`) the metrics
are this process's own.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from .openapi import MediaAnswers, spec

bp = Blueprint("observability", __name__)
access_log = logging.getLogger("semsearch.access")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)

REQUESTS = Counter("semsearch_requests", "HTTP requests answered", ["route", "method", "status"])
SEARCH_SECONDS = Histogram(
    "semsearch_search_seconds",
    "Time to answer a search or similarity request",
    ["kind", "mode"],
    buckets=_LATENCY_BUCKETS,
)
ENCODER_SECONDS = Histogram(
    "semsearch_encoder_seconds", "Time the encoder took per query embedded", buckets=_LATENCY_BUCKETS
)
QUERY_CACHE = Counter("semsearch_query_cache", "Query embeddings looked up in the cache", ["result"])
INDEX_PASSAGES = Gauge("semsearch_index_passages", "Passages in the index being served", multiprocess_mode="livemax")
INDEX_DOCUMENTS = Gauge("semsearch_index_documents", "Documents in the index being served", multiprocess_mode="livemax")
INDEX_VERSION = Gauge("semsearch_index_version", "Version of the index being served", multiprocess_mode="livemax")
RELOADS = Counter("semsearch_index_reloads", "Switches to a newly published index", ["result"])
WRITES = Counter("semsearch_writes", "Document writes asked for over HTTP", ["operation", "result"])
WRITE_SECONDS = Histogram(
    "semsearch_write_seconds",
    "Time to commit a write, embedding included",
    ["operation"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
WRITE_PASSAGES = Counter("semsearch_write_passages", "Passages added or removed by writes", ["change"])


def record_index(index) -> None:
    INDEX_PASSAGES.set(index.view.passages)
    INDEX_DOCUMENTS.set(index.documents())
    INDEX_VERSION.set(index.view.version)


class SearchMetrics:
    """What the Searcher reports, as metrics (see index.search.SearchObserver)."""

    def query_embedding(self, cached: bool, seconds: float) -> None:
        QUERY_CACHE.labels("hit" if cached else "miss").inc()
        if not cached:
            ENCODER_SECONDS.observe(seconds)


def _start() -> None:
    g.started = time.perf_counter()
    incoming = request.headers.get("X-Request-Id", "")
    g.request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex


def _finish(response: Response) -> Response:
    seconds = time.perf_counter() - g.get("started", time.perf_counter())
    route = request.url_rule.rule if request.url_rule else "unmatched"
    response.headers["X-Request-Id"] = g.get("request_id", "")
    REQUESTS.labels(route, request.method, str(response.status_code)).inc()
    entry = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "request_id": g.get("request_id"),
        "pid": os.getpid(),
        "client": request.remote_addr,
        "method": request.method,
        "route": route,
        "path": request.path,
        "status": response.status_code,
        "ms": round(seconds * 1000, 2),
        "bytes": response.calculate_content_length(),
    }
    if current_app.config.get("LOG_QUERIES"):
        entry["query"] = request.query_string.decode("latin-1")
    # headers are never logged: Authorization carries API keys
    access_log.info(json.dumps(entry, ensure_ascii=False))
    return response


def install(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)
    app.register_blueprint(bp)
    if not access_log.handlers and app.config.get("ACCESS_LOG"):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_log.addHandler(handler)
        access_log.setLevel(logging.INFO)
        access_log.propagate = False


@bp.get("/metrics")
@spec.validate(resp=MediaAnswers("text/plain", 200), tags=["operations"])
def metrics():
    """Prometheus text format: requests by route and status, search latency by kind and mode,
    encoder time, query cache hits, the index served and its reloads."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY as registry
    return Response(
        generate_latest(registry),
        mimetype=CONTENT_TYPE_LATEST.split(";")[0],
        headers={"Content-Type": CONTENT_TYPE_LATEST},
    )
