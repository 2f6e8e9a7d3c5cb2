"""The HTTP face of semsearch: a Flask app factory with a JSON API and a search page."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from index.search import Searcher

DEFAULTS: dict[str, Any] = {
    "INDEX_DIR": "var/index",
    "MODEL": None,  # None: the model recorded in the index's manifest
    "DEFAULT_K": 10,
    "MAX_CONTENT_LENGTH": 256 * 1024,
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

    searcher = app.config.get("SEARCHER") or Searcher.open(Path(app.config["INDEX_DIR"]), model=app.config["MODEL"])
    app.extensions["searcher"] = searcher

    from . import api, web

    app.register_blueprint(api.bp)
    app.register_blueprint(web.bp)
    app.register_error_handler(HTTPException, _http_error)
    return app


def _http_error(error: HTTPException):
    if request.path.startswith("/api/"):
        body, status = error_response(error.code or 500, _ERROR_CODES.get(error.code, "error"), error.description or "")
    else:
        body, status = render_template("error.html", status=error.code, message=error.description), error.code
    # keep headers such as Allow on a 405
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    return body, status, headers


_ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    500: "internal_error",
}


def error_response(status: int, code: str, message: str):
    return jsonify({"error": {"code": code, "message": message}}), status
