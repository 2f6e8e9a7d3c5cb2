"""The source of truth: documents, passages with their vectors, and the log of changes, in one
SQLite database in WAL mode. A write is one transaction, durable (synchronous=FULL) when it
returns; everything else in an index (the FAISS checkpoint, the lexical index) can be rebuilt
from this file, and readers follow it by reading the change log. The accent vocabulary's counts
live here too, kept by each commit, so readers do nothing to follow them.

Passages get an internal `int_id` that only grows (AUTOINCREMENT): it is never reused, so a
reader still holding a deleted passage's id cannot mistake it for a new passage, and ids stay
dense enough to address bitmaps."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.encode.evidence import Evidence
from index.ingest.chunk import Passage, document_text_of, embedding_text_of
from index.ingest.document import Document
from index.store.accents import QUESTION_PHRASES, form_counts
from index.store.base import Commit, StoredPassage
from index.store.filters import day_number

FILE = "passages.sqlite"

_SCHEMA = """
CREATE TABLE documents (
    doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, date TEXT, byline TEXT, source TEXT, original_name TEXT,
    day INTEGER, origin TEXT NOT NULL DEFAULT 'build', path TEXT, format TEXT, row INTEGER, encoding TEXT,
    fingerprint TEXT
);
CREATE INDEX documents_by_path ON documents (path);
CREATE TABLE passages (
    int_id INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id), position INTEGER NOT NULL, heading TEXT,
    context TEXT NOT NULL, text TEXT NOT NULL, vector BLOB NOT NULL,
    sentences BLOB NOT NULL,  -- the sentences' vectors (evidence.pack_vectors)
    page INTEGER,
    language TEXT  -- ISO 639-1, index.text.language_of (NULL in rows written before it was recorded)
);
CREATE INDEX passages_by_document ON passages (doc_id, position);
CREATE TABLE changes (version INTEGER NOT NULL, int_id INTEGER NOT NULL, added INTEGER NOT NULL);
CREATE INDEX changes_by_version ON changes (version);
-- the accent vocabulary: key is an unaccented syllable ("dang") or pair ("dang vien")
CREATE TABLE accent_forms (key TEXT NOT NULL, written TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (key, written)) WITHOUT ROWID;
CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO state VALUES ('version', '0'), ('lexical_version', '0'), ('lexical_files', '{}'), ('checkpoint', 'null'),
    ('documents', '0'), ('accent_total', '0');
"""
_SELECT = """
SELECT p.int_id, p.id, p.doc_id, p.position, p.heading, p.text, d.title, d.date, d.source, d.byline, p.context,
    p.page, d.path, d.row, p.language
FROM passages p JOIN documents d ON d.doc_id = p.doc_id
"""


@dataclass(frozen=True)
class Change:
    """One passage added or removed by the write that made `version`."""

    version: int
    int_id: int
    added: bool


@dataclass(frozen=True)
class CatalogRow:
    """What filters need to know about a passage."""

    int_id: int
    doc_id: str
    source: str | None
    day: int | None


@dataclass(frozen=True)
class IndexRows:
    catalog: list[CatalogRow]
    vectors: np.ndarray
    texts: list[str]  # embedding texts, when asked for
    languages: list[str | None]  # with the texts: each passage's language, when recorded
    document_keys: list[int]  # with the texts: the int_id of each one's document's first passage

    @property
    def ids(self) -> np.ndarray:
        return np.array([row.int_id for row in self.catalog], np.int64)


def connect(directory: Path, create: bool = False) -> sqlite3.Connection:
    path = Path(directory) / FILE
    if not create and not path.is_file():
        raise FileNotFoundError(f"{path} is missing")
    # autocommit off in Python's sense: transactions are opened explicitly
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")  # a commit is on disk when it returns
    connection.execute("PRAGMA foreign_keys=ON")
    if create:
        connection.executescript(_SCHEMA)
        _count_accents(connection, QUESTION_PHRASES, ())
    return connection


# Columns added since the first databases: (table, column, its declaration).
_ADDED_COLUMNS = [
    ("documents", "origin", "TEXT NOT NULL DEFAULT 'build'"),
    ("documents", "path", "TEXT"),
    ("documents", "format", "TEXT"),
    ("documents", "row", "INTEGER"),
    ("documents", "encoding", "TEXT"),
    ("documents", "fingerprint", "TEXT"),
    ("passages", "page", "INTEGER"),
    ("passages", "language", "TEXT"),
]


def upgrade(connection: sqlite3.Connection) -> None:
    """Add the columns a database made by an earlier version lacks (NULL in its rows: a page or
    fingerprint it never knew). Of its documents, only those written over HTTP can be told
    apart by origin (their original_name is "api")."""

    def missing() -> list[tuple[str, str, str]]:
        present = {
            (table, row[1])
            for table in ("documents", "passages")
            for row in connection.execute(f"PRAGMA table_info({table})")
        }
        return [added for added in _ADDED_COLUMNS if added[:2] not in present]

    if not missing():
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        todo = missing()  # again, under the lock: another process may have just done it
        for table, column, declaration in todo:
            connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        if ("documents", "origin", _ADDED_COLUMNS[0][2]) in todo:
            connection.execute("UPDATE documents SET origin = 'api' WHERE original_name = 'api'")
        connection.execute("CREATE INDEX IF NOT EXISTS documents_by_path ON documents (path)")
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _count_accents(connection: sqlite3.Connection, added: Iterable[str], removed: Iterable[str]) -> None:
    """Within the caller's transaction: the accent counts of `added` texts in, of `removed` out."""
    changes = form_counts(added)
    changes.subtract(form_counts(removed))
    rows = sorted(
        (key, written, n) for (key, written), n in changes.items() if n
    )  # in key order: B-tree pages touched once
    connection.executemany(
        "INSERT INTO accent_forms VALUES (?, ?, ?)"
        " ON CONFLICT (key, written) DO UPDATE SET count = count + excluded.count",
        rows,
    )
    connection.executemany(
        "DELETE FROM accent_forms WHERE key = ? AND written = ? AND count <= 0",
        [(key, written) for key, written, n in rows if n < 0],
    )
    connection.execute(
        "UPDATE state SET value = value + ? WHERE key = 'accent_total'",
        (sum(n for key, _, n in rows if " " not in key),),
    )


class PassageStore:
    """Reads and writes one index's database; shared by a process's threads (one connection,
    serialised by a lock, each method one consistent read)."""

    def __init__(self, directory: Path, create: bool = False):
        self._connection = connect(directory, create)
        self._lock = threading.RLock()
        upgrade(self._connection)  # readers too: they select the new columns

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read inside the block sees the same committed state (and other threads wait)."""
        with self._lock:
            self._connection.execute("BEGIN")
            try:
                yield
            finally:
                self._connection.execute("COMMIT")

    def _query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        with self._lock:
            return self._connection.execute(sql, params).fetchall()

    def _rows(self, where: str, params: Sequence) -> list[StoredPassage]:
        return [StoredPassage(*row) for row in self._query(_SELECT + where, params)]

    # -- reading ---------------------------------------------------------------------------------

    def by_int_ids(self, int_ids: list[int]) -> dict[int, StoredPassage]:
        if not int_ids:
            return {}
        marks = ",".join("?" * len(int_ids))
        return {p.int_id: p for p in self._rows(f"WHERE p.int_id IN ({marks})", [int(i) for i in int_ids])}

    def by_id(self, passage_id: str) -> StoredPassage | None:
        rows = self._rows("WHERE p.id = ?", (passage_id,))
        return rows[0] if rows else None

    def int_ids_of_documents(self, doc_ids: Sequence[str]) -> list[int]:
        found: list[int] = []
        for start in range(0, len(doc_ids), 10_000):  # under SQLite's limit of bound values
            part = list(doc_ids[start : start + 10_000])
            marks = ",".join("?" * len(part))
            found += [row[0] for row in self._query(f"SELECT int_id FROM passages WHERE doc_id IN ({marks})", part)]
        return found

    def documents_under_paths(self, prefixes: Sequence[str]) -> list[str]:
        """The documents of the files whose path starts with one of `prefixes`."""
        found: dict[str, None] = {}
        for prefix in prefixes:
            rows = self._query(
                "SELECT doc_id FROM documents WHERE path >= ? AND path < ?", (prefix, prefix + "\U0010ffff")
            )
            found.update(dict.fromkeys(row[0] for row in rows))
        return list(found)

    def in_document(self, doc_id: str, first: int, last: int) -> list[StoredPassage]:
        return self._rows(
            "WHERE p.doc_id = ? AND p.position BETWEEN ? AND ? ORDER BY p.position", (doc_id, first, last)
        )

    def document(self, doc_id: str) -> dict | None:
        """A document's metadata (its origin too, once a writer recorded origins) and its
        passages' ids in reading order."""
        with self._lock:
            cursor = self._connection.execute("SELECT * FROM documents WHERE doc_id = ?", (doc_id,))
            row = cursor.fetchone()
            if row is None:
                return None
            found = dict(zip((column[0] for column in cursor.description), row))
            ids = [
                r[0]
                for r in self._connection.execute(
                    "SELECT id FROM passages WHERE doc_id = ? ORDER BY position", (doc_id,)
                )
            ]
        shown = ("title", "date", "byline", "source", "original_name", "origin", "path", "format", "row", "encoding")
        return {"id": found["doc_id"], **{key: found.get(key) for key in shown}, "passages": ids}

    def read_files(self) -> dict[str, tuple[str | None, str | None]]:
        rows = self._query("SELECT doc_id, fingerprint, path FROM documents WHERE origin = 'build'")
        return {doc_id: (fingerprint, path) for doc_id, fingerprint, path in rows}

    def written_documents(
        self, batch: int = 500, every: bool = False
    ) -> Iterator[tuple[list[tuple[Document, list[Passage]]], dict[str, tuple[bytes, bytes]]]]:
        """Documents not read by a full build (added from files or over HTTP since), or `every`
        document, `batch` at a time: each with its passages and their stored (vector, packed
        sentence vectors)."""
        where = "" if every else "WHERE origin != 'build'"
        rows = self._query(
            "SELECT doc_id, title, date, byline, source, original_name, origin, path, format, row, encoding"
            f" FROM documents {where} ORDER BY doc_id"
        )
        for start in range(0, len(rows), batch):
            documents = {
                row[0]: Document(
                    row[0], row[1], [], row[2], row[3], row[4], row[5], [], row[6], row[7], row[8], row[9], row[10]
                )
                for row in rows[start : start + batch]
            }
            passages: dict[str, list[Passage]] = {doc_id: [] for doc_id in documents}
            vectors = {}
            for id_, doc_id, position, heading, context, text, vector, sentences, page in self._query(
                "SELECT id, doc_id, position, heading, context, text, vector, sentences, page FROM passages"
                f" WHERE doc_id IN ({','.join('?' * len(documents))}) ORDER BY doc_id, position",
                list(documents),
            ):
                passages[doc_id].append(Passage(id_, doc_id, position, heading, text, context, page))
                vectors[id_] = (vector, sentences)
            yield [(doc, passages[doc_id]) for doc_id, doc in documents.items()], vectors

    def document_texts(self, doc_ids: Sequence[str]) -> dict[str, str]:
        """The whole text of each document, as its passages give it (chunk.document_text_of)."""
        passages: dict[str, list[tuple[str, str]]] = {}
        for start in range(0, len(doc_ids), 30_000):  # under SQLite's limit on bound parameters
            part = list(doc_ids[start : start + 30_000])
            for doc_id, context, text in self._query(
                f"SELECT doc_id, context, text FROM passages WHERE doc_id IN ({','.join('?' * len(part))})"
                " ORDER BY doc_id, position",
                part,
            ):
                passages.setdefault(doc_id, []).append((context, text))
        return {doc_id: document_text_of(parts) for doc_id, parts in passages.items()}

    def vector(self, int_id: int, dim: int) -> np.ndarray:
        rows = self._query("SELECT vector FROM passages WHERE int_id = ?", (int(int_id),))
        if not rows:
            raise KeyError(int_id)
        return np.frombuffer(rows[0][0], dtype=np.float32, count=dim)

    def evidence(self, int_ids: Sequence[int], dim: int) -> Evidence:
        """Vectors of the passages with `int_ids` that still exist, and of their sentences."""
        found = (
            self._query(
                f"SELECT int_id, vector, sentences FROM passages WHERE int_id IN ({','.join('?' * len(int_ids))})",
                [int(i) for i in int_ids],
            )
            if len(int_ids)
            else []
        )
        return Evidence.of(
            [(int_id, np.frombuffer(vector, np.float32, count=dim), sentences) for int_id, vector, sentences in found],
            dim,
        )

    def rows(
        self, dim: int, int_ids: Sequence[int] | None = None, after: int = 0, limit: int = -1, texts: bool = False
    ) -> IndexRows:
        """What the derived parts of an index need of the passages with `int_ids` (those that
        still exist), or of those with an int_id above `after`, in id order. Texts only when
        asked for: readers and compaction need vectors alone, and texts are as large again."""
        sql = (
            "SELECT p.int_id, p.doc_id, d.source, d.day, p.vector"
            + (
                ", p.context, p.text, p.language, (SELECT MIN(q.int_id) FROM passages q WHERE q.doc_id = p.doc_id)"
                if texts
                else ""
            )
            + " FROM passages p JOIN documents d ON d.doc_id = p.doc_id "
        )
        if int_ids is None:
            found = self._query(sql + "WHERE p.int_id > ? ORDER BY p.int_id LIMIT ?", (after, limit))
        else:
            found = []
            for start in range(0, len(int_ids), 30_000):  # under SQLite's limit on bound parameters
                part = [int(i) for i in int_ids[start : start + 30_000]]
                found += self._query(sql + f"WHERE p.int_id IN ({','.join('?' * len(part))}) ORDER BY p.int_id", part)
        vectors = np.frombuffer(b"".join(row[4] for row in found), dtype=np.float32).reshape(len(found), dim)
        return IndexRows(
            [CatalogRow(*row[:4]) for row in found],
            vectors,
            [embedding_text_of(row[5], row[6]) for row in found] if texts else [],
            [row[7] for row in found] if texts else [],
            [row[8] for row in found] if texts else [],
        )

    def all_rows(self, dim: int, batch: int = 50_000, texts: bool = False) -> Iterator[IndexRows]:
        after = 0
        while (rows := self.rows(dim, after=after, limit=batch, texts=texts)).catalog:
            yield rows
            after = rows.catalog[-1].int_id

    def catalog(self) -> list[CatalogRow]:
        """Filter metadata of every passage."""
        return [
            CatalogRow(*row)
            for row in self._query(
                "SELECT p.int_id, p.doc_id, d.source, d.day FROM passages p JOIN documents d ON d.doc_id = p.doc_id"
            )
        ]

    def doc_ids_of(self, int_ids: Sequence[int]) -> dict[int, str]:
        marks = ",".join("?" * len(int_ids))
        return (
            dict(self._query(f"SELECT int_id, doc_id FROM passages WHERE int_id IN ({marks})", list(int_ids)))
            if int_ids
            else {}
        )

    def changes_after(self, version: int, until: int) -> list[Change]:
        rows = self._query(
            "SELECT version, int_id, added FROM changes WHERE version > ? AND version <= ? ORDER BY rowid",
            (version, until),
        )
        return [Change(v, i, bool(a)) for v, i, a in rows]

    def state(self) -> dict:
        return {key: json.loads(value) for key, value in self._query("SELECT key, value FROM state")}

    def counts(self) -> tuple[int, int]:
        """(passages, documents)."""
        with self._lock:
            passages = self._connection.execute("SELECT COUNT(*) FROM passages").fetchone()[0]
            documents = self._connection.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        return passages, documents

    def sources(self) -> list[str]:
        return [
            row[0]
            for row in self._query("SELECT DISTINCT source FROM documents WHERE source IS NOT NULL ORDER BY source")
        ]

    def all_int_ids(self) -> list[int]:
        return [row[0] for row in self._query("SELECT int_id FROM passages")]

    def first_int_id(self) -> int | None:
        rows = self._query("SELECT int_id FROM passages LIMIT 1")
        return rows[0][0] if rows else None

    def accent_forms(self, key: str, limit: int) -> dict[str, int]:
        """The `limit` commonest written forms of an unaccented syllable or pair, with their counts."""
        return dict(
            self._query(
                "SELECT written, count FROM accent_forms WHERE key = ? ORDER BY count DESC, written LIMIT ?",
                (key, limit),
            )
        )

    def accent_frequency(self, key: str) -> int:
        return self._query("SELECT COALESCE(SUM(count), 0) FROM accent_forms WHERE key = ?", (key,))[0][0]

    def accent_known(self, keys: set[str]) -> set[str]:
        keys = list(keys)
        return (
            {
                row[0]
                for row in self._query(
                    f"SELECT DISTINCT key FROM accent_forms WHERE key IN ({','.join('?' * len(keys))})", keys
                )
            }
            if keys
            else set()
        )

    def accent_total(self) -> int:
        return int(self._query("SELECT value FROM state WHERE key = 'accent_total'")[0][0])

    def existing_vectors(self, passages: Iterable[Passage]) -> dict[str, tuple[bytes, bytes]]:
        """Stored (vector, packed sentence vectors) of passages whose id and context are
        unchanged: a re-added document only embeds the paragraphs that changed."""
        wanted = {p.id: p.context for p in passages}
        found: dict[str, tuple[bytes, bytes]] = {}
        ids = list(wanted)
        for start in range(0, len(ids), 30_000):
            part = ids[start : start + 30_000]
            for id_, context, vector, sentences in self._query(
                f"SELECT id, context, vector, sentences FROM passages WHERE id IN ({','.join('?' * len(part))})", part
            ):
                if wanted[id_] == context:
                    found[id_] = (vector, sentences)
        return found

    @staticmethod
    def probe(directory: Path) -> None:
        """Read the file itself through a new connection: this process's cache of pages (kept
        valid by the WAL index, not by the file) would not notice the file damaged under it."""
        connection = connect(directory)
        try:
            connection.execute(_SELECT + "LIMIT 1").fetchall()
        finally:
            connection.close()

    def integrity_check(self, quick: bool = False) -> list[str]:
        """SQLite's own check of every page (and, unless quick, every index): ["ok"] when sound."""
        return [row[0] for row in self._query("PRAGMA quick_check" if quick else "PRAGMA integrity_check")]

    # -- writing: the caller holds the index's writer lock -----------------------------------------

    def commit(
        self,
        removed_documents: Iterable[str],
        documents: Sequence[tuple[Document, Sequence[Passage], np.ndarray, Sequence[bytes]]],
    ) -> Commit:
        """In one transaction: remove `removed_documents` (absent ones are ignored) and every
        document about to be replaced, insert `documents` with their passages, vectors and
        packed sentence vectors, log
        each passage added or removed, and advance the version."""
        replaced = [doc.doc_id for doc, *_ in documents]
        gone = list(dict.fromkeys([*removed_documents, *replaced]))
        with self._lock:
            c = self._connection
            c.execute("BEGIN IMMEDIATE")
            try:
                version = json.loads(c.execute("SELECT value FROM state WHERE key = 'version'").fetchone()[0]) + 1
                removed = documents_removed = 0
                removed_texts: list[str] = []
                for start in range(0, len(gone), 10_000):
                    part = gone[start : start + 10_000]
                    marks = ",".join("?" * len(part))
                    removed_texts += [
                        embedding_text_of(*row)
                        for row in c.execute(f"SELECT context, text FROM passages WHERE doc_id IN ({marks})", part)
                    ]
                    removed += c.execute(
                        f"INSERT INTO changes SELECT ?, int_id, 0 FROM passages WHERE doc_id IN ({marks})",
                        [version, *part],
                    ).rowcount
                    c.execute(f"DELETE FROM passages WHERE doc_id IN ({marks})", part)
                    documents_removed += c.execute(f"DELETE FROM documents WHERE doc_id IN ({marks})", part).rowcount
                added = 0
                for doc, passages, vectors, sentences in documents:
                    c.execute(
                        "INSERT INTO documents (doc_id, title, date, byline, source, original_name, day, origin, path,"
                        " format, row, encoding, fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            doc.doc_id,
                            doc.title,
                            doc.date,
                            doc.byline,
                            doc.source,
                            doc.original_name,
                            day_number(doc.date),
                            doc.origin,
                            doc.path,
                            doc.format,
                            doc.row,
                            doc.encoding,
                            doc.fingerprint(),
                        ),
                    )
                    for passage, vector, packed in zip(passages, vectors, sentences):
                        cursor = c.execute(
                            "INSERT INTO passages"
                            " (id, doc_id, position, heading, context, text, vector, sentences, page, language)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (
                                passage.id,
                                passage.doc_id,
                                passage.position,
                                passage.heading,
                                passage.context,
                                passage.text,
                                np.ascontiguousarray(vector, dtype=np.float32).tobytes(),
                                packed,
                                passage.page,
                                passage.language,
                            ),
                        )
                        c.execute("INSERT INTO changes VALUES (?, ?, 1)", (version, cursor.lastrowid))
                        added += 1
                _count_accents(c, (p.embedding_text for _, passages, *_ in documents for p in passages), removed_texts)
                c.execute("UPDATE state SET value = ? WHERE key = 'version'", (json.dumps(version),))
                # kept here so that serving the count costs nothing at any size
                c.execute(
                    "UPDATE state SET value = value + ? WHERE key = 'documents'", (len(documents) - documents_removed,)
                )
                c.execute("COMMIT")
            except BaseException:
                if c.in_transaction:  # SQLite rolls back by itself on some errors (a full disk)
                    c.execute("ROLLBACK")
                raise
        return Commit(version, added, removed, tuple(gone))

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection inside one write transaction, committed when the block ends."""
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
                self._connection.execute("COMMIT")
            except BaseException:
                if self._connection.in_transaction:  # SQLite rolls back by itself on some errors
                    self._connection.execute("ROLLBACK")
                raise

    def set_state(self, **values) -> None:
        with self._transaction() as c:
            for key, value in values.items():
                c.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, json.dumps(value)))

    def set_languages(self, languages: Sequence[tuple[str, int]]) -> None:
        """Record (language, int_id) of passages stored without one."""
        with self._transaction() as c:
            c.executemany("UPDATE passages SET language = ? WHERE int_id = ?", languages)

    def forget_changes_until(self, version: int) -> None:
        """The log before a checkpoint that every reader has moved past is no longer read."""
        with self._lock:
            self._connection.execute("DELETE FROM changes WHERE version <= ?", (version,))

    def close(self) -> None:
        with self._lock:
            self._connection.close()
