"""Passages and their documents' metadata in SQLite, looked up by the ids the vector backend returns."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .chunk import Passage
from .ingest import Document

FILE = "passages.sqlite"

_SCHEMA = """
CREATE TABLE documents (
    doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, date TEXT, byline TEXT, source TEXT, original_name TEXT
);
CREATE TABLE passages (
    int_id INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, doc_id TEXT NOT NULL REFERENCES documents(doc_id),
    position INTEGER NOT NULL, heading TEXT, text TEXT NOT NULL
);
CREATE INDEX passages_by_document ON passages (doc_id, position);
"""
_SELECT = """
SELECT p.int_id, p.id, p.doc_id, p.position, p.heading, p.text, d.title, d.date, d.source, d.byline
FROM passages p JOIN documents d ON d.doc_id = p.doc_id
"""


@dataclass(frozen=True)
class StoredPassage:
    int_id: int
    id: str
    doc_id: str
    position: int
    heading: str | None
    text: str
    title: str
    date: str | None
    source: str | None
    byline: str | None

    def to_dict(self) -> dict:
        return {
            "id": self.id, "text": self.text, "doc_id": self.doc_id, "title": self.title, "date": self.date,
            "source": self.source, "byline": self.byline, "position": self.position, "heading": self.heading,
        }


class PassageWriter:
    """Fills a new passage file; only ever used on a staging directory."""

    def __init__(self, directory: Path):
        self.connection = sqlite3.connect(Path(directory) / FILE)
        self.connection.executescript(_SCHEMA)

    def add_document(self, doc: Document) -> None:
        self.connection.execute(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?)",
            (doc.doc_id, doc.title, doc.date, doc.byline, doc.source, doc.original_name),
        )

    def add_passages(self, passages: Iterable[Passage]) -> None:
        self.connection.executemany(
            "INSERT INTO passages VALUES (?, ?, ?, ?, ?, ?)",
            [(p.int_id, p.id, p.doc_id, p.position, p.heading, p.text) for p in passages],
        )

    def close(self) -> None:
        self.connection.commit()
        self.connection.close()


class PassageStore:
    """Read-only access, shared by the server's threads."""

    def __init__(self, directory: Path):
        path = Path(directory) / FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing")
        self._connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        self._lock = threading.Lock()

    def _rows(self, where: str, params: tuple) -> list[StoredPassage]:
        with self._lock:
            rows = self._connection.execute(_SELECT + where, params).fetchall()
        return [StoredPassage(*row) for row in rows]

    def by_int_ids(self, int_ids: list[int]) -> dict[int, StoredPassage]:
        if not int_ids:
            return {}
        marks = ",".join("?" * len(int_ids))
        return {p.int_id: p for p in self._rows(f"WHERE p.int_id IN ({marks})", tuple(int_ids))}

    def by_id(self, passage_id: str) -> StoredPassage | None:
        rows = self._rows("WHERE p.id = ?", (passage_id,))
        return rows[0] if rows else None

    def in_document(self, doc_id: str, first: int, last: int) -> list[StoredPassage]:
        return self._rows("WHERE p.doc_id = ? AND p.position BETWEEN ? AND ? ORDER BY p.position", (doc_id, first, last))

    def document_of_all(self) -> dict[int, str]:
        with self._lock:
            return dict(self._connection.execute("SELECT int_id, doc_id FROM passages"))

    def all_int_ids(self) -> list[int]:
        with self._lock:
            return [row[0] for row in self._connection.execute("SELECT int_id FROM passages")]

    def first_int_id(self) -> int | None:
        with self._lock:
            row = self._connection.execute("SELECT int_id FROM passages LIMIT 1").fetchone()
        return row[0] if row else None

    def document_count(self) -> int:
        with self._lock:
            return self._connection.execute("SELECT COUNT(*) FROM documents").fetchone()[0]

    def integrity_check(self) -> list[str]:
        """SQLite's own check of every page and index: ["ok"] when sound."""
        with self._lock:
            return [row[0] for row in self._connection.execute("PRAGMA integrity_check")]

    def close(self) -> None:
        self._connection.close()
