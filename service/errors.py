"""The service's errors: the one JSON shape every API error has (an HTML page elsewhere), the
handlers that give each error its status, and what stops the service from starting."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from index.retrieve.search import InvalidRequest, UnknownPassage
from index.store.base import IndexProblem

log = logging.getLogger("semsearch")

_ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    401: "unauthorized",
    403: "forbidden",
    415: "unsupported_media_type",
    429: "too_many_requests",
    500: "internal_error",
    507: "disk_full",
}


# A page's errors in the page's language (the API keeps its codes and English messages).
_PAGE_ERRORS = {
    400: ("Yêu cầu không hợp lệ", "Máy chủ không hiểu yêu cầu này."),
    401: ("Chưa được phép", "Cần một khóa API hợp lệ."),
    403: ("Không được phép", "Máy chủ này không cho phép việc này."),
    404: ("Không tìm thấy trang", "Không có trang nào ở địa chỉ này."),
    405: ("Không hỗ trợ", "Trang này không nhận yêu cầu kiểu này."),
    408: ("Hết thời gian", "Yêu cầu gửi đến quá chậm; hãy thử lại."),
    413: ("Quá lớn", "Nội dung gửi lên vượt quá giới hạn của máy chủ."),
    415: ("Không hỗ trợ", "Máy chủ không đọc được kiểu nội dung này."),
    429: ("Quá nhiều yêu cầu", "Bạn đã gửi quá nhiều yêu cầu; hãy thử lại sau ít phút."),
    503: ("Tạm thời không phục vụ được", "Chỉ mục đang tạm thời không đọc được; hãy thử lại sau."),
    507: ("Ổ đĩa đầy", "Ổ đĩa của máy chủ đã đầy."),
}
_UNKNOWN_PASSAGE = "Không có đoạn văn này (có thể nó đã bị xóa khỏi chỉ mục)."


class ConfigurationError(RuntimeError):
    """A setting the service cannot work with (a file of API keys it cannot read, say): refused at
    start, answered 503 when it goes bad at run time."""


def error_response(status: int, code: str, message: str):
    return jsonify({"error": {"code": code, "message": message}}), status


def install(app: Flask, read_errors: tuple[type[Exception], ...]) -> None:
    """Handlers for errors any route may meet; `read_errors` are what the index's store raises
    when it fails under a request."""
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(InvalidRequest, _invalid)
    app.register_error_handler(UnknownPassage, _unknown)
    unavailable: tuple[type[Exception], ...] = (IndexProblem, *read_errors)
    for error in unavailable:
        app.register_error_handler(error, _index_unavailable)


def _invalid(error: InvalidRequest):
    return _error_page(400, "bad_request", str(error))


def _unknown(error: UnknownPassage):
    return _error_page(404, "not_found", str(error), _UNKNOWN_PASSAGE)


def _index_unavailable(error: Exception):
    """The index failed under a request (its files damaged after start, say): 503, not a 500."""
    log.error("index unavailable: %s: %s", type(error).__name__, error)
    message = f"the index cannot be read right now ({type(error).__name__}); see /api/health"
    return _error_page(503, "index_unavailable", message)


def _http_error(error: HTTPException):
    body, status = _error_page(error.code or 500, _ERROR_CODES.get(error.code or 500, "error"), error.description or "")
    # keep headers such as Allow on a 405 and Retry-After on a 429
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    return body, status, headers


def _error_page(status: int, code: str, message: str, page_message: str | None = None):
    if request.path.startswith("/api/"):
        return error_response(status, code, message)
    return page_error(status, page_message)


def page_error(status: int, message: str | None = None):
    """An error page in the page's language: `message`, or what the status says."""
    heading, said = _PAGE_ERRORS.get(status, ("Lỗi máy chủ", "Đã có lỗi xảy ra; hãy thử lại sau."))
    return render_template("error.html", heading=f"{heading} ({status})", message=message or said), status
