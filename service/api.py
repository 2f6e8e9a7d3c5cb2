"""JSON API: each route only translates HTTP to a Searcher call and the answer back."""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Blueprint, current_app, jsonify, request

from index.search import MAX_K, InvalidRequest, Searcher, SearchResult, UnknownPassage

from . import error_response

bp = Blueprint("api", __name__, url_prefix="/api")


def searcher() -> Searcher:
    return current_app.extensions["searcher"]


def k_from(value: object) -> object:
    """The k of a request as an int when it reads as one; Searcher gives the error otherwise."""
    if value is None:
        return current_app.config["DEFAULT_K"]
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise InvalidRequest(f"k must be a whole number from 1 to {MAX_K}") from None
    return value


def timed_results(run: Callable[[], list[SearchResult]], **fields) -> dict:
    started = time.perf_counter()
    results = run()
    took_ms = round((time.perf_counter() - started) * 1000, 2)
    return {**fields, "results": [r.to_dict() for r in results], "took_ms": took_ms}


@bp.errorhandler(InvalidRequest)
def _invalid(error: InvalidRequest):
    return error_response(400, "bad_request", str(error))


@bp.errorhandler(UnknownPassage)
def _unknown(error: UnknownPassage):
    return error_response(404, "not_found", str(error))


@bp.get("/search")
def search():
    query = request.args.get("q", "")
    k = k_from(request.args.get("k"))
    mode = request.args.get("mode", "hybrid")
    return jsonify(timed_results(lambda: searcher().search(query, k, mode), query=query, k=k, mode=mode))


@bp.get("/passages/<passage_id>")
def passage(passage_id: str):
    return jsonify(searcher().passage(passage_id).to_dict())


@bp.get("/passages/<passage_id>/similar")
def similar_to_passage(passage_id: str):
    k = k_from(request.args.get("k"))
    return jsonify(timed_results(lambda: searcher().similar_to_passage(passage_id, k), id=passage_id, k=k))


@bp.post("/similar")
def similar_to_text():
    if not request.is_json:
        return error_response(415, "unsupported_media_type", "send a JSON body with Content-Type: application/json")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidRequest('the body must be a JSON object like {"text": "...", "k": 10}')
    k = k_from(body.get("k"))
    return jsonify(timed_results(lambda: searcher().similar_to_text(body.get("text"), k), k=k))


@bp.get("/health")
def health():
    manifest = searcher().index.manifest
    return jsonify(
        {
            "status": "ok", "model": manifest.model, "passages": manifest.passages, "documents": manifest.documents,
            "index_created_at": manifest.created_at,
        }
    )
