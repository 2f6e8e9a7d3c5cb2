"""The search page, rendered on the server so it works without JavaScript."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request, send_from_directory, url_for
from markupsafe import Markup, escape
from pydantic import ValidationError
from spectree.utils import get_multidict_items

from index.retrieve.search import MAX_DEPTH, MAX_QUERY_CHARS, InvalidRequest, Results, SearchResult
from index.store.base import DiskFull, IndexBusy

from . import documents, state
from .errors import ConfigurationError, page_error
from .openapi import MAX_UPLOAD_FILES, MediaAnswers, PageQuery, page_answers, spec
from .state import default_k, searcher

bp = Blueprint("web", __name__)

K_CHOICES = (5, 10, 20, 50)
MODE_LABELS = {"hybrid": "Kết hợp", "dense": "Ngữ nghĩa", "lexical": "Từ khóa"}
GROUP_LABELS = {"document": "Theo bài viết", "passage": "Mọi đoạn văn"}
SORT_LABELS = {"relevance": "Phù hợp nhất", "date": "Mới nhất"}
# The page's fields by name, for its error messages (the API keeps its English ones)
FIELD_LABELS = {
    "q": "Câu hỏi",
    "k": "Số kết quả",
    "mode": "Cách tìm",
    "group": "Cách hiển thị",
    "sort": "Thứ tự",
    "offset": "Trang",
    "source": "Nguồn",
    "doc_id": "Bài viết",
    "path": "Tệp",
    "date_from": "Từ ngày",
    "date_to": "Đến ngày",
}
# What the page's links carry from one page to the next: the question and how it was asked.
CARRIED = ("q", "k", "mode", "group", "sort", "source", "doc_id", "path", "date_from", "date_to")


def passage_html(result: SearchResult, underline: bool = True) -> Markup:
    """The passage escaped, its matched query words in <mark>; with `underline`, its answer
    sentence in a span and the words answering in <strong>."""
    spans: list[tuple[tuple[int, int] | None, str, str]] = [
        (result.answer if underline else None, '<span class="answer">', "</span>"),
        (result.key if underline else None, "<strong>", "</strong>"),
        *((span, "<mark>", "</mark>") for span in result.highlights),
    ]
    opening: dict[int, list[Markup]] = {}
    closing: dict[int, list[Markup]] = {}
    for span, start_tag, end_tag in spans:  # outermost first: the tags nest
        if span:
            opening.setdefault(span[0], []).append(Markup(start_tag))
            closing.setdefault(span[1], []).insert(0, Markup(end_tag))
    pieces: list[str] = []
    last = 0
    for at in sorted(set(opening) | set(closing)):
        pieces += [escape(result.text[last:at]), *closing.get(at, []), *opening.get(at, [])]
        last = at
    pieces.append(escape(result.text[last:]))
    return Markup("").join(pieces)


def key_html(result: SearchResult) -> Markup:
    """The answer sentence alone, the words answering in <strong>."""
    if not result.answer:
        return Markup("")
    start, end = result.answer
    if not result.key:
        return escape(result.text[start:end])
    a, b = result.key
    return (
        escape(result.text[start:a])
        + Markup("<strong>")
        + escape(result.text[a:b])
        + Markup("</strong>")
        + escape(result.text[b:end])
    )


bp.add_app_template_filter(passage_html)
bp.add_app_template_filter(key_html)


def page_message(error: ValidationError) -> str:
    """A form's mistakes in Vietnamese, one per field."""
    fields = dict.fromkeys(str(item["loc"][0]) if item["loc"] else "" for item in error.errors(include_url=False))
    return "; ".join(f"{FIELD_LABELS.get(field, field)}: giá trị không hợp lệ" for field in fields) + "."


@bp.get("/")
@spec.validate(query=PageQuery, resp=page_answers(200, 400), skip_validation=True, tags=["pages"])
def search_page():
    """The search form with source and date filters; with q, a page of results rendered on the
    server (HTML, works without JavaScript): an answer box when the best result answers the
    question, "no answer" when none does, results grouped by document unless group=passage, and
    links to the pages before and after."""
    query = request.args.get("q", "")
    results, error, status = Results(), None, 200
    given, asked, error = _asked()
    if error:
        status = 400
    k = default_k(asked.k)
    if error is None and query.strip():
        try:
            results = searcher().search(query, k, asked.mode, asked.filters(), asked.offset, asked.group, asked.sort)
        except InvalidRequest:
            error, status = "Câu hỏi không đọc được (trống, hoặc có ký tự không phải chữ); hãy nhập lại.", 400
    return (
        render_template(
            "search.html",
            query=query,
            k=k,
            k_choices=K_CHOICES,
            modes=MODE_LABELS,
            groups=GROUP_LABELS,
            sorts=SORT_LABELS,
            results=results,
            error=error,
            size=searcher().size,
            asked=asked,
            filtered=bool(asked.source or asked.path or asked.date_from or asked.date_to or asked.sort != "relevance"),
            sources=searcher().sources(),
            max_query=MAX_QUERY_CHARS,
            carried=_carried(given),
            first_page=_page_link(given, 0) if asked.offset else None,
            previous_page=_page_link(given, asked.offset - k) if asked.offset and results else None,
            next_page=_page_link(given, asked.offset + k)
            if len(results) == k and asked.offset + 2 * k <= MAX_DEPTH
            else None,
        ),
        status,
    )


def _asked() -> tuple[dict, PageQuery, str | None]:
    """The page's parameters as given (empty form fields left out), checked against the model the
    document shows, by hand: spectree's errors are JSON."""
    given = {
        key: value for key, value in get_multidict_items(request.args, PageQuery).items() if value not in ("", [""])
    }
    try:
        return given, PageQuery.model_validate(given), None
    except ValidationError as exc:
        return given, PageQuery(), page_message(exc)


def _carried(given: dict) -> dict:
    return {key: value for key, value in given.items() if key in CARRIED}


def _page_link(given: dict, offset: int) -> str:
    return url_for("web.search_page", **{**_carried(given), "offset": max(offset, 0)})


@bp.get("/passages/<passage_id>")
@spec.validate(query=PageQuery, resp=page_answers(200, 400, 404), skip_validation=True, tags=["pages"])
def passage_page(passage_id: str):
    """A passage in its context (the paragraphs around it) and the passages most similar to it
    (HTML). The search's parameters, when given, make the link back to its results."""
    passage = searcher().passage(passage_id)  # UnknownPassage: a 404 page (service/errors.py)
    given, _, error = _asked()
    if error:
        return page_error(400, error)
    return render_template(
        "passage.html",
        passage=passage,
        neighbours=searcher().neighbours(passage),
        similar=searcher().similar_to_passage(passage_id, 5),
        back=url_for("web.search_page", **_carried(given)),
        carried=_carried(given),
    )


@bp.get("/favicon.ico")
@spec.validate(resp=MediaAnswers("image/vnd.microsoft.icon", 200), tags=["pages"])
def favicon():
    """The site's icon."""
    response = send_from_directory(current_app.static_folder or "static", "favicon.ico", max_age=86400)
    response.direct_passthrough = False  # spectree reads the body to check the answer
    return response


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
    except InvalidRequest:  # no files, or too many
        return render_template("upload.html", error=f"Hãy chọn từ 1 đến {MAX_UPLOAD_FILES} tệp.", **page), 400
    except (ConfigurationError, IndexBusy):  # keys unreadable, another write or upload under way
        return render_template("upload.html", error="Máy chủ đang bận ghi tài liệu khác; hãy thử lại sau.", **page), 503
    except DiskFull as exc:
        state.current().disk_full = str(exc)
        return render_template("upload.html", error="Ổ đĩa của máy chủ đã đầy: chưa thêm được tài liệu.", **page), 507
    status = 200 if committed else 422
    return render_template("upload.html", committed=committed, reading=reading, **page), status
