"""Files -> documents: find the files under the paths given, tell each one's format from its
bytes, read it with its format's reader, and report every file read or skipped, and why."""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from index.ingest.document import Document, IngestError, document_from_lines, document_id
from index.ingest.encoding import decode
from index.ingest.epub import epub_document
from index.ingest.markdown import markdown_document
from index.ingest.opendocument import odt_document
from index.ingest.pdf import pdf_document
from index.ingest.tables import ANY_COLUMNS, Columns, table_documents
from index.ingest.web import html_document
from index.ingest.word import docx_document

# The format a file's name suggests; PDF, Word, OpenDocument and EPUB files must also be one by their bytes.
FORMAT_OF_SUFFIX = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".pdf": "pdf",
    ".docx": "docx",
    ".odt": "odt",
    ".epub": "epub",
    ".csv": "csv",
    ".tsv": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
# The ZIP-based formats, and the member that tells each (an .xlsx holds none of them).
_ARCHIVES = {"docx": "word/document.xml", "odt": "content.xml", "epub": "META-INF/container.xml"}
SKIPPED_SHOWN = 20


@dataclass(frozen=True)
class Limits:
    """What one file may cost to read: files from the network get these (sandbox.py)."""

    max_pages: int | None = None


NO_LIMITS = Limits()


@dataclass
class Reading:
    """What a run read: files by format, documents, and the files (or rows) skipped with why."""

    files: Counter = field(default_factory=Counter)
    documents: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    unread: set[str] = field(default_factory=set)  # the files skipped whole (not a row of one)

    def skip(self, what: str, why: str) -> None:
        self.skipped.append((what, why))

    def skip_file(self, name: str, why: str) -> None:
        self.skip(name, why)
        self.unread.add(name)

    def describe(self) -> dict:
        return {
            "files": dict(sorted(self.files.items())),
            "documents": self.documents,
            "skipped": [{"file": what, "reason": why} for what, why in self.skipped],
        }

    def lines(self) -> list[str]:
        """The summary a person reads at the end of a run."""
        read = ", ".join(f"{n} {form}" for form, n in sorted(self.files.items())) or "none"
        lines = [f"read {sum(self.files.values())} file(s) ({read}): {self.documents} document(s)"]
        if self.skipped:
            reasons = Counter(_reason_kind(why) for _, why in self.skipped)
            lines.append(
                f"skipped {len(self.skipped)}: " + ", ".join(f"{n} {kind}" for kind, n in reasons.most_common())
            )
            lines += [f"  skipped {what}: {why}" for what, why in self.skipped[:SKIPPED_SHOWN]]
            if len(self.skipped) > SKIPPED_SHOWN:
                lines.append(f"  ... and {len(self.skipped) - SKIPPED_SHOWN} more")
        return lines


def _reason_kind(why: str) -> str:
    return why.split(" (")[0].split(":")[0]


@dataclass(frozen=True)
class InputFile:
    path: Path
    name: str  # its path relative to the folder given (its document id), or its file name


def find_files(paths: Iterable[Path]) -> list[InputFile]:
    """Every file under `paths` (hidden files and folders aside), named by its path inside the
    folder given; a path that does not exist is an IngestError."""
    found: list[InputFile] = []
    for path in map(Path, paths):
        if path.is_dir():
            for folder, folders, names in os.walk(path):
                folders[:] = sorted(f for f in folders if not f.startswith("."))
                for name in sorted(n for n in names if not n.startswith(".")):
                    file = Path(folder) / name
                    found.append(InputFile(file, file.relative_to(path).as_posix()))
        elif path.is_file():
            found.append(InputFile(path, path.name))
        else:
            raise IngestError(f"{path}: no such file or directory")
    return found


def fingerprint(files: list[InputFile]) -> str:
    """Changes whenever any input file's name or bytes change."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b"\0")
        digest.update(hashlib.sha256(file.path.read_bytes()).digest())
    return digest.hexdigest()


def read_documents(
    files: list[InputFile],
    reading: Reading | None = None,
    origin: str = "build",
    empty: bool = False,
    columns: Columns = ANY_COLUMNS,
    limits: Limits = NO_LIMITS,
) -> Iterator[Document]:
    """The documents in `files`, as they are read; what could not be, in `reading`. Those without
    text come too when `empty` (a file emptied since it was added must empty its document, not
    leave the old text searchable)."""
    reading = reading if reading is not None else Reading()
    seen: set[str] = set()
    for file in files:
        form = file_format_name(file)
        try:
            form = file_format(file)
            for doc in _read(file, form, reading, columns, limits):
                if doc.doc_id in seen:
                    reading.skip(file.name, f"document id {doc.doc_id!r} appears twice in the input")
                    continue
                seen.add(doc.doc_id)
                if doc.blocks or empty:
                    doc.origin = origin
                    reading.documents += 1
                    yield doc
        except (IngestError, OSError) as exc:
            reading.skip_file(
                file.name, str(exc) if isinstance(exc, IngestError) else f"cannot be read ({exc.strerror})"
            )
        except Exception as exc:  # a reader's library failing on a malformed file fails that file only
            reading.skip_file(file.name, f"unreadable {form} ({type(exc).__name__}: {exc})")
        else:
            reading.files[form] += 1


def count_documents(files: list[InputFile]) -> int:
    """How many documents `files` hold at most (a file without text yields none): one per file,
    one per non-blank line of JSON Lines. Reads no more than line ends, for a progress bar's total."""
    total = 0
    for file in files:
        if file.path.suffix.lower() in (".jsonl", ".ndjson"):
            with open(file.path, "rb") as f:
                total += sum(1 for line in f if line.strip())
        else:
            total += 1
    return total


def file_format_name(file: InputFile) -> str:
    return FORMAT_OF_SUFFIX.get(file.path.suffix.lower(), "file")


def file_format(file: InputFile) -> str:
    """The file's format: PDF and Word by their bytes (whatever the name says), text formats by
    the name's suffix; an IngestError for anything else."""
    with open(file.path, "rb") as f:
        head = f.read(8)
    suffix = file.path.suffix.lower()
    named = FORMAT_OF_SUFFIX.get(suffix)
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        if named in _ARCHIVES or named is None:
            return _zip_format(file.path, suffix)
        raise IngestError(f"named {suffix} but it is a ZIP archive")
    if named == "pdf" or named in _ARCHIVES:
        raise IngestError(f"named {suffix} but it is not a {named.upper()} file")
    if named is None:
        raise IngestError(f"unsupported type ({suffix or 'no suffix'})")
    return named


def refused_unread(file: InputFile) -> str | None:
    """Why `file` will not be read, when its first bytes and its name tell already (nothing is
    parsed: a ZIP archive's members are left to its reader); None when it may be read."""
    with open(file.path, "rb") as f:
        if f.read(4) == b"PK\x03\x04":
            return None
    try:
        file_format(file)
    except IngestError as exc:
        return str(exc)
    return None


def _zip_format(path: Path, suffix: str) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except zipfile.BadZipFile as exc:
        raise IngestError(f"a broken ZIP archive ({exc})") from exc
    for form, member in _ARCHIVES.items():
        if member in names:
            return form
    raise IngestError(f"unsupported type ({suffix or 'ZIP archive'})")


def _read(file: InputFile, form: str, reading: Reading, columns: Columns, limits: Limits) -> Iterator[Document]:
    meta = {"path": file.name, "format": form, "original_name": file.path.name}
    if form in ("csv", "tsv", "json", "jsonl"):
        yield from table_documents(file.name, file.path, form, columns, reading.skip, **meta)
        return
    try:
        doc_id = document_id(file.name)
    except ValueError as exc:
        raise IngestError(f"its path cannot be a document id: it {exc}") from None
    if form == "pdf":
        yield pdf_document(doc_id, file.path, max_pages=limits.max_pages, **meta)
    elif form == "docx":
        yield docx_document(doc_id, file.path, **meta)
    elif form == "odt":
        yield odt_document(doc_id, file.path, **meta)
    elif form == "epub":
        yield epub_document(doc_id, file.path, **meta)
    else:
        text, encoding = decode(file.path.read_bytes())
        if form == "html":
            yield html_document(doc_id, text, encoding=encoding, **meta)
        elif form == "markdown":
            yield markdown_document(doc_id, text, encoding=encoding, **meta)
        else:
            yield document_from_lines(doc_id, text.splitlines(), encoding=encoding, **meta)
