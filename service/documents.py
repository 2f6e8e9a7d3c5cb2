"""Writes over HTTP: create, replace and delete documents while the service runs. Each route only
translates HTTP into one commit of the index's writer (index/store/base.py) and its result back.

Writing needs an API key (`Authorization: Bearer <key>`): keys come from SEMSEARCH_API_KEYS
(comma-separated) and from the file named by SEMSEARCH_API_KEYS_FILE (one per line). With no key
configured, writes are off. Keys are compared in constant time and never logged."""

from __future__ import annotations

import hmac
import logging
import tempfile
import threading
import time
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from pydantic import ValidationError
from werkzeug.datastructures import FileStorage

from index.build import write_documents
from index.ingest.document import document_from_record, document_id
from index.ingest.files import InputFile, Reading
from index.ingest.sandbox import SandboxLimits, read_untrusted
from index.retrieve.search import InvalidRequest
from index.store.base import DiskFull, IndexBusy

from . import state
from .errors import ConfigurationError, error_response
from .observability import WRITE_PASSAGES, WRITE_SECONDS, WRITES
from .openapi import (
    MAX_UPLOAD_FILES,
    Committed,
    DocumentBatch,
    DocumentBody,
    DocumentItem,
    FilesRead,
    StoredDocument,
    json_answers,
    spec,
    validated,
    validation_messages,
)

log = logging.getLogger("semsearch")

bp = Blueprint("documents", __name__, url_prefix="/api/documents")
# Files to read and index: POST /api/files (multipart), the same key, limits and commit.
files_bp = Blueprint("files", __name__, url_prefix="/api/files")

NDJSON = "application/x-ndjson"


def configured_keys(config: Mapping) -> list[bytes]:
    """The keys of API_KEYS and API_KEYS_FILE, read anew each time so that keys can be changed
    without a restart; ConfigurationError when the file cannot be read as UTF-8 text."""
    keys = [k.strip() for k in str(config.get("API_KEYS") or "").split(",")]
    if config.get("API_KEYS_FILE"):
        path = Path(config["API_KEYS_FILE"])
        try:
            keys += path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"the API keys file {path} cannot be read ({exc})") from None
    return [k.strip().encode() for k in keys if k.strip()]


def _authorized() -> tuple | None:
    """None when the request carries a configured key; else the 403 or 401 answer."""
    keys = configured_keys(current_app.config)
    if not keys:
        return error_response(
            403,
            "writes_disabled",
            "writing is off on this server: start it with "
            "SEMSEARCH_API_KEYS=<key>[,<key>...] or SEMSEARCH_API_KEYS_FILE=<file>",
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not is_key(given, keys):
        body, status = error_response(401, "unauthorized", "send a valid API key: Authorization: Bearer <key>")
        return body, status, {"WWW-Authenticate": 'Bearer realm="semsearch"'}
    return None


def is_key(given: str, keys: list[bytes]) -> bool:
    presented = given.strip().encode("utf-8", "replace")
    # every key is compared, so the time taken says nothing about which one nearly matched
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented, key)
    return matched


@files_bp.before_request
def _uploads_need_a_key():
    refused = _authorized()
    if refused is None and request.mimetype != "multipart/form-data":
        return error_response(415, "unsupported_media_type", "send the files as multipart/form-data, field 'files'")
    return refused


@bp.before_request
def _writes_need_a_key():
    if request.method in ("PUT", "POST", "DELETE"):
        refused = _authorized()
        if refused is not None:
            return refused
    if (
        request.method == "PUT"
        and not request.is_json
        or request.method == "POST"
        and not (request.is_json or request.mimetype == NDJSON)
    ):
        return error_response(
            415,
            "unsupported_media_type",
            f"send JSON (application/json){' or NDJSON (' + NDJSON + ')' if request.method == 'POST' else ''}",
        )
    return None


@files_bp.errorhandler(ConfigurationError)
@bp.errorhandler(ConfigurationError)
def _keys_unavailable(error: ConfigurationError):
    log.error("writes refused: %s", error)
    body, status = error_response(
        503,
        "keys_unavailable",
        "the server cannot read its API keys right now; writes are refused until it can (the operator is told)",
    )
    return body, status, {"Retry-After": "30"}


@files_bp.errorhandler(DiskFull)
@bp.errorhandler(DiskFull)
def _disk_full(error: DiskFull):
    log.error("write refused: %s", error)
    state.current().disk_full = str(error)
    body, status = error_response(507, "disk_full", str(error))
    return body, status, {"Retry-After": "60"}


@files_bp.errorhandler(IndexBusy)
@bp.errorhandler(IndexBusy)
def _busy(error: IndexBusy):
    body, status = error_response(503, "index_busy", str(error))
    return body, status, {"Retry-After": "1"}


# One write at a time per process: the others are answered 503 at once instead of holding request
# threads while they wait, so searches keep this process's threads.
_WRITING = threading.Lock()
# One upload read at a time per process: each file's child may take UPLOAD_LIMITS' memory.
_READING = threading.Lock()


def _commit(operation: str, documents=(), delete=()) -> dict | None:
    started = time.perf_counter()
    if not _WRITING.acquire(blocking=False):
        WRITES.labels(operation, "busy").inc()
        raise IndexBusy("another write is under way in this server process; try again shortly")
    try:
        with state.writing(current_app.config["WRITE_WAIT_SECONDS"]) as writer:
            if operation == "delete" and writer.missing(delete):
                WRITES.labels(operation, "not_found").inc()
                return None
            result = write_documents(writer, documents, state.searcher().encoder, delete)
    except IndexBusy:
        WRITES.labels(operation, "busy").inc()
        raise
    except DiskFull:
        WRITES.labels(operation, "disk_full").inc()
        raise
    finally:
        _WRITING.release()
    WRITES.labels(operation, "ok").inc()
    state.current().disk_full = None
    WRITE_SECONDS.labels(operation).observe(time.perf_counter() - started)
    WRITE_PASSAGES.labels("added").inc(result.commit.added)
    WRITE_PASSAGES.labels("removed").inc(result.commit.removed)
    state.reload_if_changed(state.current())  # this process answers with the write at once; others within a second
    return {
        "version": result.commit.version,
        "documents": list(result.commit.documents),
        "passages_added": result.commit.added,
        "passages_removed": result.commit.removed,
        "passages_embedded": result.embedded,
        "compacted": result.compacted,
    }


@bp.put("/<path:doc_id>")
@spec.validate(json=DocumentBody, resp=json_answers(Committed, 400, 401, 403, 408, 413, 415, 507), tags=["documents"])
def put_document(doc_id: str):
    """Create or replace a document (needs an API key)."""
    body = validated().json
    return jsonify(_commit("put", [_document(_checked_id(doc_id), body)]))


@bp.post("")
@spec.validate(
    json=DocumentBatch,
    resp=json_answers(Committed, 400, 401, 403, 408, 413, 415, 507),
    skip_validation=True,
    tags=["documents"],
)
def post_documents():
    """Create or replace many documents in one atomic commit: a JSON array of documents with
    their `id`, or NDJSON (`Content-Type: application/x-ndjson`, one document per line). Needs an API key."""
    latest = {item.id: item for item in _batch()}  # of two with the same id, the later one
    return jsonify(_commit("post", [_document(doc_id, item) for doc_id, item in latest.items()]))


def _document(doc_id: str, body: DocumentBody):
    """Cleaned and cut as files are; a document whose text is all boilerplate is kept without passages."""
    return document_from_record(doc_id, body.model_dump(), None, origin="api")


def _batch() -> list[DocumentItem]:
    if request.mimetype == NDJSON:
        records: Any
        try:
            text = request.get_data().decode("utf-8")
            # "\n" alone ends a line: U+2028, U+0085 and the like are text inside a JSON string
            records = [current_app.json.loads(line) for line in text.split("\n") if line.strip()]
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidRequest(f"the NDJSON body is not valid: {exc}") from None
    elif request.is_json:
        records = request.get_json()
    else:
        raise InvalidRequest(f"send a JSON array (application/json) or NDJSON ({NDJSON})")
    if isinstance(records, list):
        records = {"documents": records}
    try:
        return DocumentBatch.model_validate(records).documents
    except ValidationError as exc:
        raise InvalidRequest(validation_messages(exc)) from None


@bp.delete("/<path:doc_id>")
@spec.validate(resp=json_answers(Committed, 401, 403, 404, 507), tags=["documents"])
def delete_document(doc_id: str):
    """Delete a document and its passages (needs an API key)."""
    doc_id = unicodedata.normalize("NFC", doc_id)  # as stored; an id nothing could store is not found
    committed = _commit("delete", delete=[doc_id])
    if committed is None:
        return error_response(404, "not_found", f"no document with id {doc_id!r}")
    return jsonify(committed)


@bp.get("/<path:doc_id>")
@spec.validate(resp=json_answers(StoredDocument, 404), tags=["documents"])
def get_document(doc_id: str):
    """A document's metadata and its passages' ids."""
    found = state.searcher().document(unicodedata.normalize("NFC", doc_id))
    if found is None:
        return error_response(404, "not_found", f"no document with id {doc_id!r}")
    return jsonify(found)


def _checked_id(doc_id: str) -> str:
    """The id in a route's path, as stored (NFC)."""
    try:
        return DocumentItem.model_validate({"id": doc_id, "text": "x"}).id
    except ValidationError as exc:
        raise InvalidRequest(validation_messages(exc)) from None


@files_bp.post("")
@spec.validate(
    resp=json_answers(FilesRead, 400, 401, 403, 408, 413, 415, 422, 507), skip_validation=True, tags=["documents"]
)
def post_files():
    """Read uploaded files (multipart/form-data, field `files`, one or more) as `semsearch index`
    reads a folder, and write their documents in one commit (needs an API key). Each file is read in
    a child process within a memory, CPU time and page limit; its type is told from its bytes. The
    answer says what each file gave and what was skipped and why; 422 when nothing could be read."""
    committed, reading = write_uploads(request.files.getlist("files"))
    if committed is None:
        return error_response(422, "unreadable", "; ".join(f"{what}: {why}" for what, why in reading.skipped))
    return jsonify({**committed, "read": reading.describe()})


def write_uploads(uploads: list[FileStorage]) -> tuple[dict | None, Reading]:
    """Read `uploads`, each in a child within the configured limits, and write what they hold in one
    commit: (the commit, or None when nothing could be read; what was read and skipped)."""
    if not uploads:
        raise InvalidRequest("send one or more files in the multipart field 'files'")
    if len(uploads) > MAX_UPLOAD_FILES:
        raise InvalidRequest(f"{len(uploads)} files; send at most {MAX_UPLOAD_FILES} at a time")
    reading = Reading()
    if not _READING.acquire(blocking=False):
        raise IndexBusy("another upload is being read in this server process; try again shortly")
    try:
        with tempfile.TemporaryDirectory(prefix="semsearch-upload-") as folder:
            files = _saved(uploads, Path(folder), reading)
            documents = read_untrusted(files, SandboxLimits(**current_app.config["UPLOAD_LIMITS"]), reading, "api")
    finally:
        _READING.release()
    return (_commit("files", documents) if documents else None), reading


def _saved(uploads: list[FileStorage], folder: Path, reading: Reading) -> list[InputFile]:
    """The uploads as files of `folder`, named by their file names (their document ids); a name
    that cannot be an id is skipped."""
    files = []
    for number, upload in enumerate(uploads, 1):
        given = upload.filename or f"upload-{number}"
        name = unicodedata.normalize("NFC", Path(given.replace("\\", "/")).name)
        try:
            document_id(name)
        except ValueError as exc:
            reading.skip_file(given, f"its name cannot be a document id: it {exc}")
            continue
        path = folder / str(number)
        path.mkdir()
        upload.save(path / name)
        files.append(InputFile(path / name, name))
    return files
