"""What stands in front of the work: a request that is not clean text is refused before any route
sees it, a client over its rate gets 429, and every answer carries the security headers.

Rate limits are Flask-Limiter's (moving windows per client address, `RATE_LIMIT` in the
configuration, storage from `RATE_LIMIT_STORAGE`: `memory://` counts per server process, a
`redis://` URI shares the count between processes and machines).
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

import numpy as np
from flask import Flask, Request, current_app, request
from flask.json.provider import DefaultJSONProvider
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

MAX_JSON_DEPTH = 64
WRITE_METHODS = ("PUT", "POST", "DELETE")
# The blueprints whose writes need a key and take the larger body limit (service/documents.py).
WRITING_BLUEPRINTS = ("documents", "files")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)

SECURITY_HEADERS = {
    # no inline script anywhere: the search page needs none, the API docs load their own files
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # queries are in URLs; they are nobody else's business
    "Cross-Origin-Opener-Policy": "same-origin",
}

# Routes whose cost is negligible and that monitoring polls: never rate limited.
UNLIMITED_ENDPOINTS = {"api.health", "observability.metrics", "docs.openapi", "docs.docs_page", "static", "docs.assets"}


def json_nesting(text: str) -> int:
    """Deepest nesting of arrays and objects in JSON text (strings ignored), without parsing it."""
    structure = np.frombuffer(_JSON_STRING.sub("", text).encode("utf-8"), dtype=np.uint8)
    opened = (structure == ord("[")) | (structure == ord("{"))
    closed = (structure == ord("]")) | (structure == ord("}"))
    steps = opened.astype(np.int32) - closed.astype(np.int32)
    return int(np.cumsum(steps).max()) if len(steps) else 0


class GuardedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, refusing what would break or mislead the code behind it: bytes that are not
    UTF-8, nesting deeper than MAX_JSON_DEPTH (Python's parser recurses), lone surrogates."""

    def loads(self, s: str | bytes, **kwargs):
        if isinstance(s, bytes):
            s = s.decode("utf-8")  # UnicodeDecodeError is a ValueError: Flask answers 400
        if json_nesting(s) > MAX_JSON_DEPTH:
            raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        value = json.loads(s, **kwargs)
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("the JSON holds a lone surrogate (\\ud800-\\udfff), which is not text") from None
        return value


class GuardedRequest(Request):
    def on_json_loading_failed(self, e: ValueError | None):
        raise BadRequest(f"the body is not valid JSON: {e}")


def _clean_text(raw: bytes, what: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"the {what} is not valid UTF-8 once percent-decoded") from None
    if "\x00" in text:
        raise BadRequest(f"the {what} contains a NUL character")
    return text


def _check_request_text() -> None:
    """Werkzeug decodes bad UTF-8 leniently and keeps NULs; a search engine must not guess."""
    _clean_text(request.environ.get("PATH_INFO", "").encode("latin-1"), "path")
    query = request.query_string
    if query:
        try:
            pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            raise BadRequest("the query string is not valid UTF-8 once percent-decoded") from None
        for name, value in pairs:
            if "\x00" in name or "\x00" in value:
                raise BadRequest("the query string contains a NUL character")
        # parameters as decoded strictly here, not as Werkzeug's lenient decoding left them
        request.args = ImmutableMultiDict(pairs)
    # parse now (and cache) so a bad body is a 400 before validation; a document write's body is
    # parsed after its key is checked, so no anonymous request makes the server read a large one
    if request.is_json and request.content_length and request.blueprint not in WRITING_BLUEPRINTS:
        request.get_json()


def _limit_body() -> None:
    """Each route's body limit, refused from Content-Length before a byte of the body is read
    (a body sent without one stops being read at the limit: Werkzeug's max_content_length)."""
    writes = (request.blueprint in WRITING_BLUEPRINTS or request.endpoint == "web.upload_files") and (
        request.method in WRITE_METHODS
    )
    limit = current_app.config["DOCUMENTS_MAX_BYTES" if writes else "MAX_CONTENT_LENGTH"]
    request.max_content_length = limit
    if (request.content_length or 0) > limit:
        raise RequestEntityTooLarge(f"the body is {request.content_length} bytes; {request.path} takes at most {limit}")


def _security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.method == "OPTIONS" and response.status_code == 200:
        # Flask's automatic answer is an empty text/html 200; say it plainly: no content, Allow
        response.status_code = 204
        response.set_data(b"")
        del response.headers["Content-Type"]
    return response


def rate_limits(app: Flask) -> list[str]:
    """The RATE_LIMIT setting as Flask-Limiter limits: "20/second;300/minute" gives two, "off" none."""
    setting = str(app.config.get("RATE_LIMIT") or "").strip()
    if setting.lower() in ("", "off", "none", "0"):
        return []
    return [part.strip() for part in setting.split(";") if part.strip()]


def install(app: Flask) -> None:
    app.json = GuardedJSONProvider(app)
    app.request_class = GuardedRequest
    app.before_request(_limit_body)
    app.before_request(_check_request_text)
    app.after_request(_security_headers)
    limits: list = rate_limits(app)
    Limiter(
        key_func=get_remote_address,
        app=app,
        default_limits=limits,
        default_limits_exempt_when=lambda: request.endpoint in UNLIMITED_ENDPOINTS or request.method == "OPTIONS",
        headers_enabled=True,
        storage_uri=app.config.get("RATE_LIMIT_STORAGE", "memory://"),
        strategy="moving-window",
        enabled=bool(limits),
    )
