"""The search page, rendered on the server so it works without JavaScript."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template, request, url_for
from markupsafe import Markup, escape
from pydantic import ValidationError
from spectree.utils import get_multidict_items

from index.retrieve.search import MAX_DEPTH, InvalidRequest, SearchResult, UnknownPassage
from index.store.base import DiskFull, IndexBusy

from . import documents, state
from .errors import ConfigurationError
from .openapi import MAX_UPLOAD_FILES, PageQuery, page_answers, spec, validation_messages
from .state import default_k, searcher

bp = Blueprint("web", __name__)

K_CHOICES = (5, 10, 20, 50)
MODE_LABELS = {"hybrid": "Kết hợp", "dense": "Ngữ nghĩa", "lexical": "Từ khóa"}


def passage_html(result: SearchResult) -> Markup:
    """The passage escaped, its matched query words in <mark>, its answer sentence in a span."""
    opening: dict[int, list[Markup]] = {}
    closing: dict[int, list[Markup]] = {}
    if result.answer:
        opening.setdefault(result.answer[0], []).append(Markup('<span class="answer">'))
        closing.setdefault(result.answer[1], []).append(Markup("</span>"))
    for start, end in result.highlights:
        opening.setdefault(start, []).append(Markup("<mark>"))
        closing.setdefault(end, []).insert(0, Markup("</mark>"))
    pieces: list[str] = []
    last = 0
    for at in sorted(set(opening) | set(closing)):
        pieces += [escape(result.text[last:at]), *closing.get(at, []), *opening.get(at, [])]
        last = at
    pieces.append(escape(result.text[last:]))
    return Markup("").join(pieces)


bp.add_app_template_filter(passage_html)


@bp.get("/")
@spec.validate(query=PageQuery, resp=page_answers(200, 400), skip_validation=True, tags=["pages"])
def search_page():
    """The search form with source and date filters; with q, a page of results rendered on the
    server (HTML, works without JavaScript) with links to the pages before and after."""
    query = request.args.get("q", "")
    results, error, status = [], None, 200
    # checked against the same model as the document says, by hand: spectree's errors are JSON;
    # the form sends empty fields for filters left alone
    given = {
        key: value for key, value in get_multidict_items(request.args, PageQuery).items() if value not in ("", [""])
    }
    try:
        asked = PageQuery.model_validate(given)
    except ValidationError as exc:
        asked, error, status = PageQuery(), validation_messages(exc), 400
    k = default_k(asked.k)
    if error is None and query.strip():
        try:
            results = searcher().search(query, k, asked.mode, asked.filters(), asked.offset)
        except InvalidRequest as exc:
            error, status = str(exc), 400
    return (
        render_template(
            "search.html",
            query=query,
            k=k,
            k_choices=K_CHOICES,
            mode=asked.mode,
            modes=MODE_LABELS,
            results=results,
            error=error,
            size=searcher().size,
            asked=asked,
            sources=searcher().sources(),
            previous_page=_page_link(given, asked.offset - k) if asked.offset else None,
            next_page=_page_link(given, asked.offset + k)
            if len(results) == k and asked.offset + 2 * k <= MAX_DEPTH
            else None,
        ),
        status,
    )


def _page_link(given: dict, offset: int) -> str:
    return url_for("web.search_page", **{**given, "offset": max(offset, 0)})


@bp.get("/passages/<passage_id>")
@spec.validate(resp=page_answers(200, 404), tags=["pages"])
def passage_page(passage_id: str):
    """A passage in its context (the paragraphs around it) and the passages most similar to it (HTML)."""
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


@bp.get("/upload")
@spec.validate(resp=page_answers(200), tags=["pages"])
def upload_page():
    """A form to add files to the index, for holders of an API key (HTML, works without JavaScript)."""
    return render_template("upload.html", max_files=MAX_UPLOAD_FILES, limits=current_app.config["UPLOAD_LIMITS"])


@bp.post("/upload")
@spec.validate(resp=page_answers(200, 400, 401, 403, 413, 422, 503, 507), skip_validation=True, tags=["pages"])
def upload_files():
    """The upload form sent (multipart/form-data: `key` and `files`): the files read and indexed as
    POST /api/files does, and a page saying what each gave or why it was skipped."""
    page = {"max_files": MAX_UPLOAD_FILES, "limits": current_app.config["UPLOAD_LIMITS"]}
    try:
        keys = documents.configured_keys(current_app.config)
        if not keys:
            return render_template(
                "upload.html", error="Máy chủ này không nhận tài liệu mới (chưa có khóa API).", **page
            ), 403
        if not documents.is_key(request.form.get("key", ""), keys):
            return render_template("upload.html", error="Khóa API không đúng.", **page), 401
        committed, reading = documents.write_uploads(request.files.getlist("files"))
    except InvalidRequest as exc:
        return render_template("upload.html", error=str(exc), **page), 400
    except (ConfigurationError, IndexBusy) as exc:  # keys unreadable, another write or upload under way
        return render_template("upload.html", error=f"{exc}; hãy thử lại sau.", **page), 503
    except DiskFull as exc:
        state.current().disk_full = str(exc)
        return render_template("upload.html", error=str(exc), **page), 507
    status = 200 if committed else 422
    return render_template("upload.html", committed=committed, reading=reading, **page), status
