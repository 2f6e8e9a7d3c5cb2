"""A document as every reader makes it and every later step reads it, and the rules of its id."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field

from index.ingest.clean import Block, clean_article

# Characters no document id may hold: C0/C1 controls and the invisible ones that make two ids
# look alike or reorder how an id is shown (zero-width, bidi controls, BOM). "/" is allowed: a
# file's id is its path inside the folder given ("reports/2024/q1.pdf").
# Written so that both Python and JSON Schema (ECMA) regular expressions read it.
ID_FORBIDDEN = r"\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
# White space an id may hold inside but not at either end (Unicode's, less what is forbidden anyway).
ID_SPACES = r" \xa0\u1680\u2000-\u200a\u202f\u205f\u3000"
MAX_ID_CHARS = 200
_ID_FORBIDDEN = re.compile(f"[{ID_FORBIDDEN}]")


def document_id(text: str) -> str:
    """`text` as a document id: NFC, so that the same name typed on any system is one document.
    Raises ValueError for an id a person could not tell from another or type back into a URL:
    empty, padded with white space, with a character of ID_FORBIDDEN, an empty, "." or ".."
    part between slashes, or too long."""
    doc_id = unicodedata.normalize("NFC", text)
    if not doc_id.strip() or doc_id != doc_id.strip():
        raise ValueError("must not be empty or start or end with white space")
    if _ID_FORBIDDEN.search(doc_id):
        raise ValueError("must not hold control, zero-width or direction characters")
    if any(part in ("", ".", "..") for part in doc_id.split("/")):
        raise ValueError("must not start or end with '/', hold '//', or have a '.' or '..' part")
    if len(doc_id) > MAX_ID_CHARS:
        raise ValueError(f"must be at most {MAX_ID_CHARS} characters")
    return doc_id


class IngestError(ValueError):
    """A file that cannot be read as documents; the message says why."""


@dataclass
class Document:
    doc_id: str
    title: str
    blocks: list[Block]
    date: str | None = None
    byline: str | None = None
    source: str | None = None
    original_name: str | None = None
    dropped: list[tuple[str, str]] = field(default_factory=list)
    # where it came from: "build" (read from the input of a build or sync), "add" (a file given to
    # `semsearch add`) or "api" (written over HTTP); a build keeps documents of the last two
    origin: str = "build"
    path: str | None = None  # the file it was read from, relative to the folder given
    format: str | None = None  # how it was read: "pdf", "docx", "html", "markdown", "text", "csv", ...
    row: int | None = None  # its row (record) in a table file, from 1
    encoding: str | None = None  # the text file's encoding as detected

    def fingerprint(self) -> str:
        """What decides whether a document must be written again: everything it was indexed from."""
        blocks = [[getattr(b, name) for name in sorted(vars(b))] for b in self.blocks]
        # not its row: a row deleted near the top of a large table must not rewrite every row below
        # it (a row's number is as of its last write)
        content = [self.doc_id, self.title, self.date, self.byline, self.source, self.original_name, self.path, blocks]
        return hashlib.blake2b(
            json.dumps(content, ensure_ascii=False, default=str).encode(), digest_size=16
        ).hexdigest()


def stable_hash(text: str) -> int:
    """A 63-bit hash of `text`, the same in every process and on every machine."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> 1


def shard_of(doc_id: str, shards: int) -> int:
    """Which of `shards` build processes indexes a document: a stable hash of its id."""
    return stable_hash(doc_id) % shards


def document_from_lines(
    doc_id: str,
    lines: list[str],
    title: str | None = None,
    infer_structure: bool = True,
    **meta,
) -> Document:
    """A document of text lines, cleaned (clean.py); `meta` are Document fields, and date,
    byline and source given there win over those the cleaner finds."""
    article = clean_article(lines, title=title, infer_structure=infer_structure)
    found = {"date": article.date, "byline": article.byline, "source": article.source}
    return Document(
        doc_id=unicodedata.normalize("NFC", doc_id),
        title=article.title,
        blocks=article.blocks,
        dropped=article.dropped,
        **{**found, **{key: value for key, value in meta.items() if value is not None}},
    )


def document_from_record(doc_id: str, record: dict, original_name: str | None = None, **meta) -> Document:
    """A document given as fields (a JSON Lines record or a table's row, a document sent to the
    API): `text` with paragraphs separated by blank lines (or one per line), and optional title,
    date, byline, source; `meta` are further Document fields (origin, path, row...)."""
    text = record["text"]
    lines = text.split("\n\n") if "\n\n" in text else text.splitlines()
    fields = {key: optional_str(record.get(key)) for key in ("date", "byline", "source")}
    return document_from_lines(
        doc_id,
        lines,
        title=str(record.get("title") or ""),
        infer_structure=False,
        original_name=original_name,
        **fields,
        **meta,
    )


def document_from_blocks(doc_id: str, blocks: list[Block], title: str | None, **meta) -> Document:
    """A document of blocks whose kinds its format said (Markdown, Word, OpenDocument, EPUB): with
    no `title`, a leading heading is it; a heading with nothing under it goes."""
    blocks = list(blocks)
    if title is None:
        title = blocks.pop(0).text if blocks and blocks[0].kind == "heading" else ""
    while blocks and blocks[-1].kind == "heading":
        blocks.pop()
    return Document(doc_id=doc_id, title=title, blocks=blocks, **{k: v for k, v in meta.items() if v is not None})


def optional_str(value) -> str | None:
    return str(value) if value not in (None, "") else None
