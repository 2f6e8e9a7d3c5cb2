"""The search page, rendered on the server so it works without JavaScript."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request
from markupsafe import Markup, escape

from index.search import InvalidRequest, UnknownPassage
from index.text import query_terms, term_spans

from .api import k_from, searcher

bp = Blueprint("web", __name__)

K_CHOICES = (5, 10, 20, 50)


def highlight(text: str, query: str) -> Markup:
    """`text` escaped, with the query's words (any case or diacritics) wrapped in <mark>."""
    pieces: list[str] = []
    last = 0
    for start, end in term_spans(text, query_terms(query)):
        pieces += [escape(text[last:start]), Markup("<mark>"), escape(text[start:end]), Markup("</mark>")]
        last = end
    pieces.append(escape(text[last:]))
    return Markup("").join(pieces)


@bp.app_template_filter("highlight")
def _highlight_filter(text: str, query: str) -> Markup:
    return highlight(text, query)


@bp.get("/")
def search_page():
    query = request.args.get("q", "")
    results, error, status = [], None, 200
    try:
        k = k_from(request.args.get("k"))
        if query.strip():
            results = searcher().search(query, k)
    except InvalidRequest as exc:
        k, error, status = k_from(None), str(exc), 400
    return (
        render_template("search.html", query=query, k=k, k_choices=K_CHOICES, results=results, error=error,
                        size=searcher().size),
        status,
    )


@bp.get("/passages/<passage_id>")
def passage_page(passage_id: str):
    try:
        passage = searcher().passage(passage_id)
    except UnknownPassage as exc:
        abort(404, description=str(exc))
    return render_template(
        "passage.html",
        passage=passage,
        neighbours=searcher().neighbours(passage),
        similar=searcher().similar_to_passage(passage_id, 5),
    )
