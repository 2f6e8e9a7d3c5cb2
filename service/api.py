"""JSON API: each route only translates HTTP to a Searcher call and the answer back. Parameters
and bodies are checked by the routes' models (service/openapi.py), which the OpenAPI document
is generated from."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from flask import Blueprint, jsonify, request
from spectree import Response

from index.retrieve.search import Results, SearchResult

from .errors import error_response
from .observability import SEARCH_SECONDS
from .openapi import (
    Health,
    Passage,
    SearchAnswer,
    SearchQuery,
    SimilarAnswer,
    SimilarQuery,
    SimilarTextBody,
    json_answers,
    spec,
    validated,
)
from .state import current, default_k, disk, searcher
from .state import health as read_health

bp = Blueprint("api", __name__, url_prefix="/api")


def timed_results(run: Callable[[], list[SearchResult]], kind: str, **fields) -> dict:
    started = time.perf_counter()
    results = run()
    seconds = time.perf_counter() - started
    SEARCH_SECONDS.labels(kind, fields.get("mode", "dense")).observe(seconds)
    answered = {"answered": results.answered} if isinstance(results, Results) else {}
    return {**fields, **answered, "results": [r.to_dict() for r in results], "took_ms": round(seconds * 1000, 2)}


@bp.get("/search")
@spec.validate(query=SearchQuery, resp=json_answers(SearchAnswer, 400), tags=["search"])
def search():
    """Passages answering a question, best first, with highlights and the answering sentence."""
    query = validated().query
    k = default_k(query.k)
    answer = timed_results(
        lambda: searcher().search(query.q, k, query.mode, query.filters(), query.offset, query.group, query.sort),
        "search",
        query=query.q,
        k=k,
        mode=query.mode,
        group=query.group,
        sort=query.sort,
        offset=query.offset,
    )
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
    query = validated().query
    k = default_k(query.k)
    return jsonify(
        timed_results(
            lambda: searcher().similar_to_passage(passage_id, k, query.filters(), query.offset),
            "similar_passage",
            id=passage_id,
            k=k,
            offset=query.offset,
        )
    )


@bp.post("/similar")
@spec.validate(json=SimilarTextBody, resp=json_answers(SimilarAnswer, 400, 413, 415), tags=["search"])
def similar_to_text():
    """Passages nearest to pasted text."""
    body = validated().json
    k = default_k(body.k)
    return jsonify(
        timed_results(
            lambda: searcher().similar_to_text(body.text, k, body.filters(), body.offset),
            "similar_text",
            k=k,
            offset=body.offset,
        )
    )


@bp.before_request
def _json_bodies_only():
    if request.method == "POST" and not request.is_json:
        return error_response(415, "unsupported_media_type", "send a JSON body with Content-Type: application/json")
    return None


@bp.get("/health")
@spec.validate(resp=Response(HTTP_200=Health, HTTP_503=Health), tags=["operations"])
def health():
    """Reads from every part of the index (passages, vectors, lexical index, encoder): 200 when all
    answer, 503 when one fails. Shows the index version being served."""
    state = current()
    index = state.followed.reader
    checks = read_health(index)
    healthy = all(value == "ok" for value in checks.values())
    manifest, view = index.manifest, index.view
    try:
        documents = index.documents()
    except Exception as exc:  # a damaged database: the checks say what failed
        documents = 0
        checks.setdefault("passages", f"{type(exc).__name__}: {exc}")
    body = {
        "status": "ok" if healthy else "unavailable",
        "model": manifest.model,
        "passages": view.passages,
        "documents": documents,
        "index_version": view.version,
        "index_generation": index.name,
        "index_created_at": manifest.created_at,
        "checks": checks,
        "reload_error": str(state.followed.problem) if state.followed.problem else None,
        "disk": disk(state),
        "process": os.getpid(),
    }
    return jsonify(body), 200 if healthy else 503
