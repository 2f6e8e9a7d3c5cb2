"""Table files -> one document per row: CSV, TSV, JSON (an array of objects) and JSON Lines.
Which field is the id, title, text (one or more), date, source and author is said by `Columns`
(the CLI's --*-column flags) or found by the usual names. A row that cannot be read is skipped
with its line number; the rest of the file still counts."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from index.ingest.document import Document, IngestError, document_from_record, document_id, optional_str
from index.ingest.encoding import decode

Skip = Callable[[str, str], None]  # (what, why): a row left out


@dataclass(frozen=True)
class Columns:
    """The fields of a row to read as a document's; None (or empty) finds them by name."""

    id: str | None = None
    title: str | None = None
    text: tuple[str, ...] = ()
    date: str | None = None
    source: str | None = None
    byline: str | None = None


ANY_COLUMNS = Columns()

# The names a field is found by (compared lower-cased), in order of preference.
_NAMES = {
    "id": ("id", "_id", "doc_id", "docid", "key", "mã"),
    "title": ("title", "headline", "subject", "name", "heading", "tiêu đề", "tên"),
    "text": ("text", "body", "content", "contents", "abstract", "description", "passage", "nội dung", "mô tả"),
    "date": ("date", "published", "published_at", "publication_date", "created", "created_at", "ngày"),
    "source": ("source", "url", "link", "nguồn"),
    "byline": ("author", "authors", "byline", "tác giả"),
}


def table_documents(name: str, file: Path, form: str, columns: Columns, skip: Skip, **meta) -> Iterator[Document]:
    """The documents of the table `file` (its path in the folder given is `name`)."""
    rows = _jsonl_rows(file) if form == "jsonl" else _rows(file, form, meta)
    chosen: dict[str, tuple[str, ...]] | None = None
    for number, row in rows:
        if isinstance(row, str):  # a line that is not a record: why
            skip(f"{name}:{number}", row)
            continue
        if chosen is None:
            chosen = _choose(columns, list(row))
        try:
            yield _row_document(name, number, row, chosen, meta)
        except ValueError as exc:
            skip(f"{name}:{number}", str(exc))


def _choose(columns: Columns, fields: list[str]) -> dict[str, tuple[str, ...]]:
    by_lower = {field.lower().strip(): field for field in fields}

    def find(kind: str, given: str | tuple[str, ...] | None) -> tuple[str, ...]:
        if given:
            wanted = (given,) if isinstance(given, str) else given
            missing = [name for name in wanted if name not in fields]
            if missing:
                raise IngestError(f"no column {', '.join(map(repr, missing))} (columns: {', '.join(fields)})")
            return wanted
        return next(((by_lower[n],) for n in _NAMES[kind] if n in by_lower), ())

    chosen = {kind: find(kind, getattr(columns, kind)) for kind in _NAMES}
    if not chosen["text"]:
        raise IngestError(f"no text column: name one with --text-column (columns: {', '.join(fields)})")
    return chosen


def _row_document(name: str, number: int, row: dict, chosen: dict[str, tuple[str, ...]], meta: dict) -> Document:
    def value(kind: str) -> str | None:
        return next((optional_str(row.get(field)) for field in chosen[kind] if row.get(field) not in (None, "")), None)

    texts = [str(row[field]) for field in chosen["text"] if row.get(field) not in (None, "")]
    if not texts:
        raise ValueError("empty text")
    raw_id = value("id")
    try:
        doc_id = document_id(raw_id) if raw_id else f"{name}#{number}"
    except ValueError as exc:
        raise ValueError(f"id {raw_id!r} {exc}") from None
    record = {"text": "\n\n".join(texts), **{kind: value(kind) for kind in ("title", "date", "source", "byline")}}
    return document_from_record(doc_id, record, row=number, **meta)


def _rows(path: Path, form: str, meta: dict) -> Iterable[tuple[int, dict | str]]:
    text, meta["encoding"] = decode(path.read_bytes())
    if form == "json":
        return enumerate(_json_records(text), 1)
    sample = text[:65_536]
    delimiter = "\t" if form == "tsv" else max(",;", key=sample.count)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    if not reader.fieldnames:
        raise IngestError("no header row")
    # the header is line 1: a row's number is its line's, as a spreadsheet shows it
    return ((number, row) for number, row in enumerate(reader, 2))


def _json_records(text: str) -> list[dict | str]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IngestError(f"invalid JSON ({exc.msg} at line {exc.lineno})") from exc
    if isinstance(data, dict):  # {"records": [...]}: its first list of objects
        data = next((v for v in data.values() if isinstance(v, list) and v and isinstance(v[0], dict)), [data])
    if not isinstance(data, list):
        raise IngestError("not an array of objects")
    return [record if isinstance(record, dict) else "not an object" for record in data]


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict | str]]:
    """Line by line: a corpus of a million records is one file."""
    with open(path, encoding="utf-8-sig", errors="strict") as lines:
        try:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield number, f"invalid JSON ({exc.msg})"
                    continue
                yield number, record if isinstance(record, dict) else "not an object"
        except UnicodeDecodeError as exc:
            raise IngestError(f"not UTF-8 ({exc.reason}); JSON Lines must be") from exc
