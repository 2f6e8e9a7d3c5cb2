"""The HTTP face of semsearch: a Flask app factory with a JSON API and a search page."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from index.retrieve.search import Searcher
from index.store.location import location_of, read_errors

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
    "DOCUMENTS_MAX_BYTES": 16 * 1024 * 1024,  # a write's body: documents, or files uploaded
    # each uploaded file is read in a child process within these (index/ingest/sandbox.py)
    "UPLOAD_LIMITS": {"memory_bytes": 1024 * 1024 * 1024, "cpu_seconds": 30, "wall_seconds": 60.0, "max_pages": 500},
    # for another process's write (or a build) to finish before answering 503 with Retry-After;
    # short, as the request thread waits meanwhile
    "WRITE_WAIT_SECONDS": 2.0,
    "ACCESS_LOG": True,
    "LOG_QUERIES": False,  # query text in the access log
}


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

    from . import api, documents, errors, guard, observability, openapi, state, web

    documents.configured_keys(app.config)  # a file of keys that cannot be read stops the start
    location = location_of(
        app.config["BACKEND"],
        app.config["INDEX_DIR"],
        app.config["MILVUS_URI"],
        app.config["MILVUS_COLLECTION"],
        app.config["MILVUS_TOKEN"],
        app.config["MILVUS_OPTIONS"],
    )
    searcher = app.config.get("SEARCHER") or Searcher.open(location, model=app.config["MODEL"])
    searcher.observer = observability.SearchMetrics()
    state.install(app, searcher)
    observability.record_index(searcher.index)

    guard.install(app)
    observability.install(app)
    errors.install(app, read_errors(searcher.followed.location))
    app.register_blueprint(api.bp)
    app.register_blueprint(documents.bp)
    app.register_blueprint(documents.files_bp)
    app.register_blueprint(web.bp)
    app.register_blueprint(openapi.bp)
    if float(app.config["RELOAD_SECONDS"]) > 0:
        state.follow(app, float(app.config["RELOAD_SECONDS"]))
    return app
