"""Files -> documents: read .txt, .md, .html and .jsonl files (or directories of them)."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from index.ingest.clean import Block, clean_article, looks_like_heading
from index.text import normalize

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".jsonl")


# Characters no document id may hold: C0/C1 controls, the path separator, and the invisible ones
# that make two ids look alike or reorder how an id is shown (zero-width, bidi controls, BOM).
# Written so that both Python and JSON Schema (ECMA) regular expressions read it.
ID_FORBIDDEN = r"\x00-\x1f\x7f-\x9f/\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
# White space an id may hold inside but not at either end (Unicode's, less what is forbidden anyway).
ID_SPACES = r" \xa0\u1680\u2000-\u200a\u202f\u205f\u3000"
MAX_ID_CHARS = 200
_ID_FORBIDDEN = re.compile(f"[{ID_FORBIDDEN}]")


def document_id(text: str) -> str:
    """`text` as a document id: NFC, so that the same name typed on any system is one document.
    Raises ValueError for an id a person could not tell from another or type back: empty,
    padded with white space, with a character of ID_FORBIDDEN, ".", "..", or too long."""
    doc_id = unicodedata.normalize("NFC", text)
    if not doc_id.strip() or doc_id != doc_id.strip():
        raise ValueError("must not be empty or start or end with white space")
    if _ID_FORBIDDEN.search(doc_id):
        raise ValueError("must not hold control, zero-width or direction characters, or '/'")
    if doc_id in (".", ".."):
        raise ValueError("must not be '.' or '..'")
    if len(doc_id) > MAX_ID_CHARS:
        raise ValueError(f"must be at most {MAX_ID_CHARS} characters")
    return doc_id


class IngestError(ValueError):
    """A file that cannot be read as documents; the message names the file and the problem."""


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
    # where it came from: "build" (read by a full build from its input), "add" (a file given to
    # `semsearch add`) or "api" (written over HTTP); a build keeps documents of the last two
    origin: str = "build"
    path: str | None = None  # the file it was read from

    def fingerprint(self) -> str:
        """What decides whether a document must be written again: everything it was indexed from."""
        blocks = [[getattr(b, name) for name in sorted(vars(b))] for b in self.blocks]
        content = [self.doc_id, self.title, self.date, self.byline, self.source, self.original_name, blocks]
        return hashlib.blake2b(
            json.dumps(content, ensure_ascii=False, default=str).encode(), digest_size=16
        ).hexdigest()


def stable_hash(text: str) -> int:
    """A 63-bit hash of `text`, the same in every process and on every machine."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> 1


def shard_of(doc_id: str, shards: int) -> int:
    """Which of `shards` build processes indexes a document: a stable hash of its id."""
    return stable_hash(doc_id) % shards


def find_files(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() in SUFFIXES)
        elif path.is_file():
            if path.suffix.lower() not in SUFFIXES:
                raise IngestError(f"{path}: unsupported file type (use one of {', '.join(SUFFIXES)})")
            found.append(path)
        else:
            raise IngestError(f"{path}: no such file or directory")
    return found


def fingerprint(files: list[Path]) -> str:
    """Changes whenever any input file's name or bytes change."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def read_documents(files: list[Path], origin: str = "build", empty: bool = False) -> Iterator[Document]:
    """The documents in `files`; those without text too when `empty` (a file emptied since it was
    added must empty its document, not leave the old text searchable)."""
    seen: set[str] = set()
    for path in files:
        for doc in _read_file(path):
            if doc.doc_id in seen:
                raise IngestError(f"{path}: document id {doc.doc_id!r} appears twice in the input")
            seen.add(doc.doc_id)
            if doc.blocks or empty:
                doc.origin, doc.path = origin, str(path)
                yield doc


def count_documents(files: list[Path]) -> int:
    """How many documents `files` hold at most (a file without text yields none): one per file,
    one per non-blank line of JSON Lines. Reads no more than line ends, for a progress bar's total."""
    total = 0
    for path in files:
        if path.suffix.lower() == ".jsonl":
            with open(path, "rb") as f:
                total += sum(1 for line in f if line.strip())
        else:
            total += 1
    return total


def _read_file(path: Path) -> Iterator[Document]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":  # line by line: a corpus of a million records is one file
            with open(path, encoding="utf-8") as lines:
                yield from _read_jsonl(path, lines)
            return
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if suffix in (".html", ".htm"):
        yield _read_html(path, raw)
    elif suffix in (".md", ".markdown"):
        yield _read_markdown(path, raw)
    else:
        yield _document(path.stem, path.name, raw.splitlines())


def _document(
    doc_id: str,
    original_name: str | None,
    lines: list[str],
    title: str | None = None,
    infer_structure: bool = True,
    **meta,
) -> Document:
    article = clean_article(lines, title=title, infer_structure=infer_structure)
    return Document(
        doc_id=unicodedata.normalize("NFC", doc_id),
        title=article.title,
        blocks=article.blocks,
        date=meta.get("date") or article.date,
        byline=meta.get("byline") or article.byline,
        source=meta.get("source") or article.source,
        original_name=original_name,
        dropped=article.dropped,
    )


def _read_jsonl(path: Path, lines: Iterable[str]) -> Iterator[Document]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise IngestError(f"{path}:{number}: invalid JSON ({exc.msg})") from exc
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise IngestError(f"{path}:{number}: each line must be an object with a string 'text'")
        doc_id = str(record.get("id") or record.get("_id") or f"{path.stem}-{number}")
        yield document_from_record(doc_id, record, path.name)


def document_from_record(doc_id: str, record: dict, original_name: str | None, origin: str = "build") -> Document:
    """A document given as fields (a JSON Lines record, a document sent to the API): `text` with
    paragraphs separated by blank lines (or one per line), and optional title, date, byline, source."""
    text = record["text"]
    lines = text.split("\n\n") if "\n\n" in text else text.splitlines()
    meta = {key: _optional_str(record.get(key)) for key in ("date", "byline", "source")}
    doc = _document(doc_id, original_name, lines, title=str(record.get("title") or ""), infer_structure=False, **meta)
    doc.origin = origin
    return doc


def _optional_str(value) -> str | None:
    return str(value) if value not in (None, "") else None


_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_MD_LIST_ITEM = re.compile(r"^\s*([-*+]|\d+[.)])\s+")
_MD_MARKUP = re.compile(r"\*\*|__|`|!\[[^\]]*\]\([^)]*\)|\[([^\]]+)\]\([^)]*\)")


def _read_markdown(path: Path, raw: str) -> Document:
    """The first heading is the title, later ones are headings; soft-wrapped lines join."""
    title: str | None = None
    lines: list[str] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            lines.append(" ".join(paragraph))
            paragraph.clear()

    for line in raw.splitlines():
        line = _MD_MARKUP.sub(lambda m: m.group(1) or "", line)
        heading = _MD_HEADING.match(line)
        if heading or not line.strip() or _MD_LIST_ITEM.match(line):
            flush()
        if heading and title is None and not lines:
            title = heading.group(1)
        elif heading:
            lines.append(heading.group(1))
        elif line.strip():
            paragraph.append(_MD_LIST_ITEM.sub("", line).strip())
    flush()
    return _document(path.stem, path.name, lines, title=title)


class _HtmlText(HTMLParser):
    _BLOCKS = {
        "p",
        "div",
        "li",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "td",
        "br",
        "tr",
        "section",
        "article",
        "figcaption",
        "title",
        "header",
        "dd",
        "dt",
        "pre",
    }
    _SKIP = {"script", "style", "nav", "footer", "aside", "noscript", "form", "iframe", "svg", "button"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.title: str | None = None
        self.date: str | None = None
        self._buffer: list[str] = []
        self._skip_depth = 0
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in self._SKIP:
            self._skip_depth += 1
        elif tag == "meta" and attributes.get("property") in ("article:published_time", "og:published_time"):
            self.date = (attributes.get("content") or "")[:10] or None
        elif tag == "time" and attributes.get("datetime") and self.date is None:
            self.date = attributes["datetime"][:10]
        if tag in self._BLOCKS:
            self._flush()
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        if tag in self._SKIP and self._skip_depth:
            self._skip_depth -= 1
        if tag in self._BLOCKS:
            self._flush()
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._skip_depth:
            return
        if self._in_title:
            self.title = normalize(data) or None
            return
        self._buffer.append(data)

    def _flush(self):
        text = normalize("".join(self._buffer))
        self._buffer.clear()
        if text:
            self.lines.append(text)


def _read_html(path: Path, raw: str) -> Document:
    parser = _HtmlText()
    parser.feed(raw)
    parser.close()
    lines = parser.lines
    # the page <title> usually repeats the <h1>; prefer the headline in the body
    if lines and parser.title and looks_like_heading(lines[0], 50) and lines[0] in parser.title:
        parser.title = lines.pop(0)
    return _document(path.stem, path.name, lines, title=parser.title, date=parser.date)
