"""JSON API: each route only translates HTTP to a Searcher call and the answer back. Parameters
and bodies are checked by the routes' models (service/openapi.py), which the OpenAPI document
is generated from."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable

from flask import Blueprint, current_app, jsonify, request
from spectree import Response

from index.retrieve.search import InvalidRequest, Searcher, SearchResult, UnknownPassage

from .errors import error_response
from .observability import SEARCH_SECONDS
from .openapi import Health, Passage, SearchAnswer, SearchQuery, SimilarAnswer, SimilarQuery, SimilarTextBody, json_answers, spec

bp = Blueprint("api", __name__, url_prefix="/api")


def searcher() -> Searcher:
    return current_app.extensions["searcher"]


def default_k(k: int | None) -> int:
    """A request's k, already checked by its model; absent, the configured default."""
    return current_app.config["DEFAULT_K"] if k is None else k


def timed_results(run: Callable[[], list[SearchResult]], kind: str, **fields) -> dict:
    started = time.perf_counter()
    results = run()
    seconds = time.perf_counter() - started
    SEARCH_SECONDS.labels(kind, fields.get("mode", "dense")).observe(seconds)
    return {**fields, "results": [r.to_dict() for r in results], "took_ms": round(seconds * 1000, 2)}


@bp.errorhandler(InvalidRequest)
def _invalid(error: InvalidRequest):
    return error_response(400, "bad_request", str(error))


@bp.errorhandler(UnknownPassage)
def _unknown(error: UnknownPassage):
    return error_response(404, "not_found", str(error))


@bp.get("/search")
@spec.validate(query=SearchQuery, resp=json_answers(SearchAnswer, 400), tags=["search"])
def search():
    """Passages answering a question, best first, with highlights and the answering sentence."""
    query = request.context.query
    k = default_k(query.k)
    answer = timed_results(lambda: searcher().search(query.q, k, query.mode, query.filters(), query.offset), "search",
                           query=query.q, k=k, mode=query.mode, offset=query.offset)
    return jsonify(answer)


@bp.get("/passages/<passage_id>")
@spec.validate(resp=json_answers(Passage, 404), tags=["passages"])
def passage(passage_id: str):
    """One passage with its document's title, date, byline and source."""
    return jsonify(searcher().passage(passage_id).to_dict())


@bp.get("/passages/<passage_id>/similar")
@spec.validate(query=SimilarQuery, resp=json_answers(SimilarAnswer, 400, 404), tags=["passages"])
def similar_to_passage(passage_id: str):
    """Passages nearest to a stored one (itself and exact copies left out)."""
    query = request.context.query
    k = default_k(query.k)
    return jsonify(timed_results(lambda: searcher().similar_to_passage(passage_id, k, query.filters(), query.offset),
                                 "similar_passage", id=passage_id, k=k, offset=query.offset))


@bp.post("/similar")
@spec.validate(json=SimilarTextBody, resp=json_answers(SimilarAnswer, 400, 413, 415), tags=["search"])
def similar_to_text():
    """Passages nearest to pasted text."""
    body = request.context.json
    k = default_k(body.k)
    return jsonify(timed_results(lambda: searcher().similar_to_text(body.text, k, body.filters(), body.offset),
                                 "similar_text", k=k, offset=body.offset))


@bp.before_request
def _json_bodies_only():
    if request.method == "POST" and not request.is_json:
        return error_response(415, "unsupported_media_type", "send a JSON body with Content-Type: application/json")
    return None


# Below this much free space at the index, writes are bound to fail: health says so before one does.
DISK_HEADROOM_BYTES = 16 * 1024 * 1024


def _disk(index, state) -> str:
    if index.directory is None:  # on Milvus: its servers' disks are theirs to watch
        return "ok"
    free = shutil.disk_usage(index.directory).free
    if free < DISK_HEADROOM_BYTES:
        return f"full: {free // 1024} KiB free at {index.directory}; writes are refused until there is room"
    if state.disk_full:
        return f"low: the last write found the disk full ({free // 1024} KiB free now); the next one may succeed"
    return "ok"


@bp.get("/health")
@spec.validate(resp=Response(HTTP_200=Health, HTTP_503=Health), tags=["operations"])
def health():
    """Reads from every part of the index (passages, vectors, lexical index, encoder): 200 when all
    answer, 503 when one fails. Shows the index version being served."""
    state = current_app.extensions["index_state"]
    current = searcher().index
    checks = searcher().health(current)
    healthy = all(value == "ok" for value in checks.values())
    manifest, view = current.manifest, current.view
    try:
        documents = current.documents()
    except Exception as exc:  # a damaged database: the checks say what failed
        documents = 0
        checks.setdefault("passages", f"{type(exc).__name__}: {exc}")
    body = {
        "status": "ok" if healthy else "unavailable", "model": manifest.model, "passages": view.passages,
        "documents": documents, "index_version": view.version, "index_generation": current.name,
        "index_created_at": manifest.created_at, "checks": checks, "reload_error": state.reload_error,
        "disk": _disk(current, state), "process": os.getpid(),
    }
    return jsonify(body), 200 if healthy else 503
