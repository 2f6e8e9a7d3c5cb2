"""The OpenAPI 3.1 document, generated from the routes' own pydantic models by spectree, served at
/openapi.json with Swagger UI at /docs.

spectree was chosen over flask-smorest and flask-openapi3: it decorates ordinary Flask views
(the app factory and blueprints stay as they are), validates query strings and bodies with
pydantic (already a dependency) and writes OpenAPI 3.1; flask-smorest needs marshmallow and
writes 3.0 by default, flask-openapi3 replaces the Flask class. Swagger UI's files come from the
swagger-ui-bundle-v2 package, so /docs works offline; its start-up script is a file of ours,
because the security policy allows no inline script.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from flask import Blueprint, jsonify, render_template, request, send_from_directory
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from spectree import Response, SpecTree
from spectree.utils import parse_code
from swagger_ui_bundle import swagger_ui_path

from index.ingest.document import ID_FORBIDDEN, ID_SPACES, MAX_ID_CHARS, document_id
from index.retrieve.confidence import ANSWERED_AT
from index.retrieve.search import GROUPS, MAX_DEPTH, MAX_K, MAX_QUERY_CHARS, MAX_SIMILAR_TEXT_CHARS, MODES, SORTS
from index.store.filters import Filters

# Text with at least one character that is not white space to Python or to ECMA (whose \s lacks
# Python's \x1c-\x1f and \x85, and has \ufeff), and no NUL.
NOT_BLANK = r"^[^\x00]*[^\s\x00\x1c-\x1f\x85\ufeff][^\x00]*$"
PASSAGE_ID = r"^[0-9a-f]{16}$"
# A document id (the rules of index.ingest.document.document_id, which also makes it NFC) as two
# regular expressions without look-arounds, which pydantic's engine lacks, both of which it must
# match: the whole id has no control, invisible or direction characters, no white space at
# either end, is not "." or "..", and has at most MAX_ID_CHARS characters; and each of its parts
# between slashes is neither empty, "." nor "..".
_NOT_DOT, _EDGE, _INSIDE = f"[^{ID_FORBIDDEN}{ID_SPACES}.]", f"[^{ID_FORBIDDEN}{ID_SPACES}]", f"[^{ID_FORBIDDEN}]"
DOCUMENT_ID = f"^(?:{_NOT_DOT}|{_NOT_DOT}{_EDGE}|\\.{_NOT_DOT}|{_EDGE}{_INSIDE}{{1,{MAX_ID_CHARS - 2}}}{_EDGE})$"
_PART = "(?:[^/.]|[^/.][^/]|\\.[^/.]|[^/]{3,})"
DOCUMENT_ID_PARTS = f"^{_PART}(?:/{_PART})*$"
ID_RULE = (
    f"a document id is 1 to {MAX_ID_CHARS} characters without control, zero-width or direction characters "
    "or white space at either end; its parts between '/' are not empty, '.' or '..' (a file's id is its "
    "path in the folder indexed)"
)
DocumentId = Annotated[
    str,
    Field(pattern=DOCUMENT_ID, json_schema_extra={"allOf": [{"pattern": DOCUMENT_ID_PARTS}]}),
    AfterValidator(document_id),
]
# What one write may ask of a serving worker (each document is chunked and embedded there; larger
# loads go through `semsearch add`, in a process of its own): a 20,000-document batch held the
# index's lock for 220 s.
MAX_BATCH_DOCUMENTS = 1_000
MAX_DOCUMENT_CHARS = 200_000  # about 80 pages of text
MAX_UPLOAD_FILES = 20  # files in one POST /api/files, each read in a child process of its own
ISO_DATE = r"^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"


def _ascii_digits(value: object) -> object:
    """k in a query string: digits 0-9 only (int() would also take "1_0" and "١٠")."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError(f"must be a whole number from 1 to {MAX_K}")
    return value


def _whole_number(value: object) -> object:
    """k in a JSON body: JSON Schema counts 10.0 as an integer, so it is one; "10" and true are not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _no_default(schema: dict) -> None:
    schema.pop("default", None)


def validated() -> Any:
    """What spectree checked of this request: its `query` and `json` models."""
    return request.context  # type: ignore[attr-defined]


def k_parameter() -> Any:
    """k in a query string; absent: the server's DEFAULT_K (so the schema shows no default)."""
    return Field(None, ge=1, le=MAX_K, description="number of results", json_schema_extra=_no_default)


QueryK = Annotated[int, BeforeValidator(_ascii_digits)]


def _calendar_date(value: str) -> str:
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        raise ValueError("is not a calendar date (YYYY-MM-DD)") from None
    return value


IsoDate = Annotated[str, Field(pattern=ISO_DATE, json_schema_extra={"format": "date"}), AfterValidator(_calendar_date)]


OFFSET_DESCRIPTION = (
    f"results to skip: the next page; results are served to depth {MAX_DEPTH}, a page reaching past it is cut short"
)


class Filtered(BaseModel):
    """Filters and paging shared by every search."""

    source: list[Annotated[str, Field(min_length=1, max_length=200, pattern=NOT_BLANK)]] = Field(
        [], max_length=50, description="only passages from these sources (repeatable)"
    )
    doc_id: list[DocumentId] = Field([], max_length=50, description="only passages of these documents (repeatable)")
    path: list[Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS, pattern=NOT_BLANK)]] = Field(
        [], max_length=50, description="only passages of files whose path in the folder indexed starts so (repeatable)"
    )
    date_from: IsoDate | None = Field(None, description="only documents dated on or after this day (YYYY-MM-DD)")
    date_to: IsoDate | None = Field(
        None, description="only documents dated on or before this day (YYYY-MM-DD); before date_from, nothing matches"
    )
    offset: QueryK = Field(0, ge=0, le=MAX_DEPTH - 1, description=OFFSET_DESCRIPTION)

    def filters(self) -> Filters:
        return Filters(
            tuple(s for s in self.source if s),
            tuple(self.doc_id),
            tuple(p for p in self.path if p),
            datetime.date.fromisoformat(self.date_from) if self.date_from else None,
            datetime.date.fromisoformat(self.date_to) if self.date_to else None,
        )


GROUP_DESCRIPTION = (
    "passage: every passage ranked; document: each document's best passage, with how many more of "
    "its passages are ranked (k and offset count documents)"
)
SORT_DESCRIPTION = (
    "relevance: best first; date: newest first among the results at least 10% likely to answer, "
    "then the rest by relevance"
)


class SearchQuery(Filtered):
    q: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, pattern=NOT_BLANK, description="the question")
    k: QueryK = k_parameter()
    mode: Literal[MODES] = "hybrid"  # type: ignore[valid-type]
    group: Literal[GROUPS] = Field("passage", description=GROUP_DESCRIPTION)  # type: ignore[valid-type]
    sort: Literal[SORTS] = Field("relevance", description=SORT_DESCRIPTION)  # type: ignore[valid-type]


class SimilarQuery(Filtered):
    k: QueryK = k_parameter()


class PageQuery(Filtered):
    # the form sends its fields even when left empty: empty means no filter
    source: list[Annotated[str, Field(max_length=200, pattern=r"^[^\x00]*$")]] = Field(
        [], max_length=50, description="only this source; empty: any"
    )
    path: list[Annotated[str, Field(max_length=MAX_ID_CHARS, pattern=r"^[^\x00]*$")]] = Field(
        [], max_length=50, description="only files whose path starts so; empty: any"
    )
    date_from: IsoDate | Literal[""] | None = Field(
        None, description="only documents dated on or after this day; empty: any"
    )
    date_to: IsoDate | Literal[""] | None = Field(
        None, description="only documents dated on or before this day; empty: any"
    )
    q: str | None = Field(None, max_length=MAX_QUERY_CHARS, description="the question; without it, the empty form")
    k: QueryK = k_parameter()
    mode: Literal[MODES] = "hybrid"  # type: ignore[valid-type]
    group: Literal[GROUPS] = Field("document", description=GROUP_DESCRIPTION)  # type: ignore[valid-type]
    sort: Literal[SORTS] = Field("relevance", description=SORT_DESCRIPTION)  # type: ignore[valid-type]


class SimilarTextBody(Filtered):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(
        min_length=1,
        max_length=MAX_SIMILAR_TEXT_CHARS,
        pattern=NOT_BLANK,
        description="text to find passages like; its first passage window (256 tokens) is read",
    )
    k: Annotated[int, Field(strict=True, ge=1, le=MAX_K), BeforeValidator(_whole_number)] | None = Field(
        None, description="number of results; null or absent: the server's default"
    )
    offset: Annotated[int, Field(strict=True, ge=0, le=MAX_DEPTH - 1), BeforeValidator(_whole_number)] = Field(
        0, description=OFFSET_DESCRIPTION
    )


class Span(BaseModel):
    text: str
    start: int = Field(description="where it starts in the passage's text (characters)")
    end: int


class Answer(Span):
    key: Span | None = Field(
        description="within the sentence, the words answering a question that asks for a number, a date or a name"
    )


LANGUAGE = (
    "the language it is written in (ISO 639-1, identified when indexed), which decides how its words "
    "are matched; null where the index does not record it (Milvus)"
)


class Result(BaseModel):
    id: str = Field(pattern=PASSAGE_ID)
    score: float
    text: str
    doc_id: str
    title: str
    date: str | None
    source: str | None
    position: int
    heading: str | None
    path: str | None = Field(None, description="the file it was read from, relative to the folder indexed")
    page: int | None = Field(None, description="the page of its file it starts on (PDF)")
    row: int | None = Field(None, description="its document's row in its file (CSV, TSV, JSON, JSON Lines)")
    language: str | None = Field(None, description=LANGUAGE)
    highlights: list[Annotated[list[int], Field(min_length=2, max_length=2)]] = Field(
        description="[start, end) character spans of the query's words in text"
    )
    answer: Answer | None = Field(description="the sentence that best answers the query")
    confidence: float | None = Field(
        ge=0,
        le=1,
        description="the probability that it answers the question (calibrated on the dev sets; "
        "docs/quality.md); null for similar passages",
    )
    more: int | None = Field(description="with group=document: how many more of its document's passages are ranked")


class SearchAnswer(BaseModel):
    query: str
    k: int
    mode: str
    group: str
    sort: str
    offset: int
    answered: bool = Field(
        description="whether the best result is likely enough to answer the question (confidence "
        f"{ANSWERED_AT} or more); when false, the results are only the nearest passages"
    )
    results: list[Result]
    took_ms: float


class SimilarAnswer(BaseModel):
    id: str | None = None
    k: int
    offset: int
    results: list[Result]
    took_ms: float


class Passage(BaseModel):
    id: str
    text: str
    doc_id: str
    title: str
    date: str | None
    source: str | None
    byline: str | None
    position: int
    heading: str | None
    path: str | None = Field(None, description="the file it was read from, relative to the folder indexed")
    page: int | None = Field(None, description="the page of its file it starts on (PDF)")
    row: int | None = Field(None, description="its document's row in its file (CSV, TSV, JSON, JSON Lines)")
    language: str | None = Field(None, description=LANGUAGE)


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    model: str
    passages: int
    documents: int
    index_version: int
    index_generation: str
    index_created_at: str
    checks: dict[str, str] = Field(description="each part of the index read just now: ok, or what failed")
    reload_error: str | None = Field(description="why a newer published index could not be switched to")
    disk: str = Field(
        description='"ok", or why writes are refused for a full disk (searches go on); writes '
        "succeed again by themselves once there is room"
    )
    process: int = Field(description="id of the server process that answered")


class DocumentBody(BaseModel):
    """A document to index: cleaned and cut into passages as files are."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(
        min_length=1,
        max_length=MAX_DOCUMENT_CHARS,
        pattern=NOT_BLANK,
        description="paragraphs separated by blank lines (or one per line)",
    )
    title: str = Field("", max_length=1000)
    date: IsoDate | None = None
    source: str | None = Field(None, min_length=1, max_length=200, pattern=NOT_BLANK)
    byline: str | None = Field(None, max_length=1000)


class DocumentItem(DocumentBody):
    id: DocumentId


class DocumentBatch(BaseModel):
    """POST /api/documents: a JSON array of documents, or NDJSON (one per line). Written in order,
    so of two with the same id the later one stays."""

    documents: list[DocumentItem] = Field(
        min_length=1,
        max_length=MAX_BATCH_DOCUMENTS,
        description=f"at most {MAX_BATCH_DOCUMENTS}, and as many as the body limit (16 MiB) holds",
    )


class Committed(BaseModel):
    version: int = Field(description="the index version this write created")
    documents: list[str] = Field(description="ids of the documents written or deleted")
    passages_added: int
    passages_removed: int
    passages_embedded: int = Field(description="passages the encoder read (unchanged ones keep their vectors)")
    compacted: bool = Field(description="whether this write also folded recent changes into a new checkpoint")


class Skipped(BaseModel):
    file: str = Field(description="the file (or 'file:row' for a row of a table file)")
    reason: str


class Reading(BaseModel):
    files: dict[str, int] = Field(description="files read, by format")
    documents: int
    skipped: list[Skipped]


class FilesRead(Committed):
    read: Reading = Field(description="what the files gave, and what was skipped and why")


def upload_body(**fields: dict) -> dict:
    """A multipart body of files and `fields`: POST /api/files and the upload page read their bodies
    themselves (werkzeug's multipart parser), so spectree has no model of them."""
    files = {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_UPLOAD_FILES,
        "items": {"type": "string", "format": "binary"},
        "description": "the files: PDF, Word (.docx), OpenDocument (.odt), EPUB, HTML, Markdown, text, CSV, TSV, "
        "JSON, JSON Lines; the type is told from the bytes and the name's suffix",
    }
    schema = {"type": "object", "required": ["files", *fields], "properties": {"files": files, **fields}}
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}


class StoredDocument(BaseModel):
    id: str
    title: str
    date: str | None
    byline: str | None
    source: str | None
    original_name: str | None = Field(None, description="the name of the file it was read from")
    origin: str | None = Field(
        None,
        description='"build" (read by `semsearch index`), "add" (`semsearch add`) or "api" (written '
        "over HTTP); a build keeps documents of the last two",
    )
    path: str | None = Field(None, description="the file it was read from, relative to the folder indexed")
    format: str | None = Field(None, description="how the file was read: pdf, docx, html, markdown, text, csv, ...")
    row: int | None = Field(None, description="its row in a table file")
    encoding: str | None = Field(None, description="the text file's encoding, as detected")
    passages: list[str] = Field(description="its passages' ids, in reading order")


class ErrorDetail(BaseModel):
    code: str
    message: str


class Error(BaseModel):
    error: ErrorDetail


_MESSAGES = {
    "missing": "{where} is required",
    "string_too_short": "{where} is empty",
    "string_pattern_mismatch": "{where} is empty or contains a NUL character",
    "string_too_long": "{where} is longer than {max_length} characters",
    "greater_than_equal": "{where} must be a whole number from {ge} up",
    "less_than_equal": "{where} must be a whole number up to {le}",
    "too_long": "{where} has more than {max_length} values",
    "too_short": "{where} has fewer than {min_length} values",
}


_PATTERN_MESSAGES = {ISO_DATE: "{where} is not a date (YYYY-MM-DD)", DOCUMENT_ID: "{where}: " + ID_RULE}


def validation_message(item: Mapping[str, Any]) -> str:
    """One pydantic error as a sentence for the person who sent the request."""
    where = ".".join(str(part) for part in item.get("loc", ())) or "the body"
    template = _MESSAGES.get(item.get("type", ""))
    if item.get("type") == "string_pattern_mismatch" and item.get("ctx", {}).get("pattern") in _PATTERN_MESSAGES:
        template = _PATTERN_MESSAGES[item["ctx"]["pattern"]]
    if where == "k" and item.get("type") in ("greater_than_equal", "less_than_equal"):
        template = "{where} must be a whole number from 1 to " + str(MAX_K)
    if template:
        return template.format(where=where, **item.get("ctx", {}))
    if item.get("type") == "value_error":  # this module's own validators say what is wanted
        return f"{where} {str(item.get('msg', '')).removeprefix('Value error, ')}"
    return f"{where}: {item.get('msg', '')}"


def validation_messages(error: ValidationError) -> str:
    return "; ".join(validation_message(item) for item in error.errors(include_url=False))


def _error_body(req, resp, error, instance, model_adapter) -> None:
    """spectree's validation errors, in this API's error shape."""
    if error is None or resp is None:
        return
    resp.set_data(jsonify({"error": {"code": "bad_request", "message": validation_messages(error)}}).get_data())
    resp.mimetype = "application/json"


spec = SpecTree(
    "flask",
    title="semsearch",
    version="1",
    description="Semantic search over your own documents: questions, similar passages, a search page.",
    path="_spectree",  # spectree's own page routes are not used: /docs and /openapi.json are ours
    page_templates={},
    mode="strict",
    annotations=False,
    validation_error_status=400,
    before=_error_body,
)

# Answers every route can give besides its own.
COMMON = {"HTTP_429": Error, "HTTP_503": Error}


def json_answers(ok: type[BaseModel], *errors: int) -> Response:
    return Response(HTTP_200=ok, **{f"HTTP_{code}": Error for code in errors}, **COMMON)


class MediaAnswers(Response):
    """Answers that are not JSON (pages, metrics, files): documented with their media type.
    spectree writes application/json for every response model, so these carry none."""

    def __init__(self, media_type: str, *codes: int):
        super().__init__(*(f"HTTP_{code}" for code in codes))
        self.media_type = media_type

    def generate_spec(self, naming_strategy=None) -> dict:
        codes = dict.fromkeys([*self.codes, *self.code_models])  # spectree may add its 400 model
        return {
            parse_code(code): {
                "description": self.get_code_description(code),
                "content": {self.media_type: {"schema": {"type": "string"}}},
            }
            for code in codes
        }


def page_answers(*codes: int) -> MediaAnswers:
    """A page answers in HTML whatever its status, 429 and 503 included."""
    return MediaAnswers("text/html", *codes, 429, 503)


bp = Blueprint("docs", __name__)

# Where an answer's passage ids lead: OpenAPI links, which clients and schemathesis's stateful
# tests follow (spectree has no notation for them, so they are added to its document here).
_PASSAGE_ROUTES = {
    "passage": "/api/passages/{passage_id}",
    "similar_passages": "/api/passages/{passage_id}/similar",
    "passage_page": "/passages/{passage_id}",
}
_LINKED_ANSWERS = {
    ("/api/search", "get"): "$response.body#/results/0/id",
    ("/api/similar", "post"): "$response.body#/results/0/id",
    ("/api/passages/{passage_id}/similar", "get"): "$response.body#/results/0/id",
}


def document() -> dict:
    """spectree's document with the links between operations, and what a document id may be."""
    generated = spec.spec
    json_error = generated["paths"]["/api/search"]["get"]["responses"]["429"]["content"]
    for operations in generated["paths"].values():
        for operation in operations.values():
            operation["responses"].setdefault(
                "414",
                {
                    "description": "URI Too Long: a request line over 8,190 bytes, answered by the server "
                    "before any route",
                    "content": json_error,
                },
            )
    for operation in generated["paths"].get("/api/documents/{doc_id}", {}).values():
        for parameter in operation.get("parameters", []):
            if parameter["name"] == "doc_id":
                parameter["schema"] = {
                    "type": "string",
                    "pattern": DOCUMENT_ID,
                    "allOf": [{"pattern": DOCUMENT_ID_PARTS}],
                    "description": ID_RULE,
                }
    generated["paths"]["/api/files"]["post"]["requestBody"] = upload_body()
    generated["paths"]["/upload"]["post"]["requestBody"] = upload_body(
        key={"type": "string", "description": "an API key"}
    )
    for (path, method), source in _LINKED_ANSWERS.items():
        answer = generated["paths"][path][method]["responses"]["200"]
        answer["links"] = {
            name: {
                "operationRef": "#/paths/" + route.replace("~", "~0").replace("/", "~1") + "/get",
                "parameters": {"passage_id": source},
            }
            for name, route in _PASSAGE_ROUTES.items()
        }
    return generated


@bp.get("/openapi.json")
@spec.validate(resp=MediaAnswers("application/json", 200), tags=["documentation"])
def openapi():
    """This document."""
    return jsonify(document())


@bp.get("/docs")
@spec.validate(resp=MediaAnswers("text/html", 200), tags=["documentation"])
def docs_page():
    """Swagger UI over this document, served from this server (no network needed)."""
    return render_template("docs.html")


@bp.get("/docs/assets/<path:filename>")
@spec.validate(resp=MediaAnswers("*/*", 200, 404), tags=["documentation"])
def assets(filename: str):
    """Swagger UI's own files."""
    response = send_from_directory(swagger_ui_path, filename, max_age=86400)
    response.direct_passthrough = False  # spectree reads the body to check the answer
    return response
