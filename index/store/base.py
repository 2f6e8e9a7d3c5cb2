"""The store's interface: what every backend of an index answers, and the types they share.

An index is read through an `IndexReader` (the dense and lexical legs under filters, passages and
documents, a view searches rank on, refresh, state, probe, close) and written through an
`IndexWriter` (documents made ready by index/prepare.py and deletions as one commit, compaction,
close); a build writes through an `IndexBuild`. Two backends implement them side by side:
index/store/embedded/ (SQLite, FAISS and tantivy in one directory) and index/store/milvus/
(collections in Milvus). They import this module and the steps below the store, never each
other, and index/store/location.py, the factory, is the only code that names them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol, TypeVar

import numpy as np

from index.encode.embed import TextEncoder
from index.encode.evidence import Evidence
from index.ingest.chunk import embedding_text_of
from index.prepare import PreparedDocument, StoredVectors
from index.store.accents import AccentVocabulary
from index.store.filters import Filters

FORMAT_VERSION = 7  # 6: accent counts in passages.sqlite; 7: sentence vectors

Ranking = tuple[np.ndarray, np.ndarray]  # (scores, int ids), best first


class IndexProblem(RuntimeError):
    """Base for index problems users can act on."""


class IndexNotFound(IndexProblem):
    pass


class IndexCorrupt(IndexProblem):
    pass


class ModelMismatch(IndexProblem):
    pass


class NotAnIndex(IndexProblem):
    """`--out` names something that is not an index this program published."""


class IndexBusy(IndexProblem):
    """Another build or writer holds the index's lock."""


class DiskFull(OSError):
    """A write found no room on the disk; what it did was undone, and it can be tried again once
    there is room."""

    def __str__(self) -> str:
        return str(self.strerror)


@dataclass
class Manifest:
    """What an index is built with; fixed for its lifetime (counts and versions change with writes
    and live in the store)."""

    model: str
    dimension: int
    prompts: dict[str, str]
    corpus_fingerprint: str  # of the files the full build read
    lexical: dict
    chunking: dict
    encoder: dict = field(default_factory=dict)
    memory_saving: bool = False
    format_version: int = FORMAT_VERSION
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def record(self) -> dict:
        return asdict(self)

    @classmethod
    def from_record(cls, data: object, where: str) -> Manifest:
        """The manifest `data` (as `record` gave it) describes, read from `where`."""
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            found = data.get("format_version") if isinstance(data, dict) else "?"
            raise IndexCorrupt(
                f"{where}: index format {found} is not {FORMAT_VERSION}; rebuild it with `semsearch index`"
            )
        try:
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except TypeError as exc:
            raise IndexCorrupt(f"{where}: {exc}") from exc

    @property
    def vectors_key(self) -> tuple:
        """What stored vectors depend on: two indexes alike in this can share them."""
        return self.model, self.dimension, self.prompts, self.encoder.get("precision")


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
    context: str = ""
    page: int | None = None  # where in its file: the page of a PDF, the row of a table file
    path: str | None = None
    row: int | None = None
    language: str | None = None  # ISO 639-1; None in indexes written before it was recorded

    @property
    def embedding_text(self) -> str:
        return embedding_text_of(self.context, self.text)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "text": self.text,
            "doc_id": self.doc_id,
            "title": self.title,
            "date": self.date,
            "source": self.source,
            "byline": self.byline,
            "position": self.position,
            "heading": self.heading,
            "path": self.path,
            "page": self.page,
            "row": self.row,
            "language": self.language,
        }


@dataclass(frozen=True)
class Commit:
    version: int
    added: int
    removed: int
    documents: tuple[str, ...]


@dataclass(frozen=True)
class WriteResult:
    commit: Commit
    embedded: int  # passages that needed the encoder (unchanged paragraphs keep their vectors)
    compacted: bool = False


@dataclass(frozen=True)
class BuildEnd:
    """What a build did besides writing the input: documents of this index it deleted (no longer in
    the input), and those written since the last build (`semsearch add`, the API) that it kept,
    dropped when asked to, or saw replaced by a document of the same id in the input."""

    deleted: int = 0
    kept: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()


class StoredPassages(Protocol):
    """Passages and documents as stored, by id."""

    def by_int_ids(self, int_ids: list[int]) -> dict[int, StoredPassage]: ...

    def by_id(self, passage_id: str) -> StoredPassage | None: ...

    def doc_ids_of(self, int_ids: Sequence[int]) -> dict[int, str]: ...

    def in_document(self, doc_id: str, first: int, last: int) -> list[StoredPassage]: ...

    def document(self, doc_id: str) -> dict | None: ...

    def sources(self) -> list[str]: ...

    def first_int_id(self) -> int | None: ...


class IndexView(Protocol):
    """The state one search ranks on: a writer's commits after it was taken do not change it."""

    @property
    def version(self) -> int: ...

    @property
    def passages(self) -> int: ...


View = TypeVar("View", bound=IndexView)


class IndexReader(Protocol[View]):
    """One index, read. `view` is taken once per search and handed back to the legs (a backend's
    own kind of view); `refresh` moves it to the latest commit."""

    manifest: Manifest
    accents: AccentVocabulary

    @property
    def passages(self) -> StoredPassages: ...

    @property
    def view(self) -> View: ...

    @property
    def languages(self) -> frozenset[str]:
        """The languages its passages are written in: what queries are analysed for."""
        ...

    @property
    def name(self) -> str: ...

    def dense(self, query: np.ndarray, k: int, filters: Filters = ..., view: View | None = None) -> Ranking: ...

    def lexical_search(self, query: str, k: int, filters: Filters = ..., view: View | None = None) -> Ranking: ...

    def vector(self, int_id: int) -> np.ndarray: ...

    def evidence(self, int_ids: Sequence[int]) -> Evidence:
        """Vectors of those of `int_ids` still stored, and of their sentences."""
        ...

    def documents(self) -> int: ...

    def refresh(self) -> bool:
        """Catch up with the commits since the view; True when there were some."""
        ...

    def state(self) -> dict: ...

    def probe(self) -> None:
        """Read the store itself, raising what a damaged or unreachable one raises."""
        ...

    def close(self) -> None: ...


class IndexWriter(Protocol):
    """Writes one index. `stored_vectors` lets index/prepare.py reuse the vectors of passages
    stored unchanged; `threads` is how many cores a write may take (None: all)."""

    manifest: Manifest
    threads: int | None

    @property
    def stored_vectors(self) -> StoredVectors: ...

    def write(
        self, documents: Sequence[PreparedDocument] = (), delete: Iterable[str] = (), compact: bool = True
    ) -> WriteResult:
        """Add or replace `documents` and delete the documents `delete` names, as one commit."""
        ...

    def read_files(self) -> dict[str, tuple[str | None, str | None]]:
        """{doc_id: (fingerprint, path)} of the documents read from the files of a build or sync
        (not those written by `semsearch add` or over HTTP): what a sync compares a folder with."""
        ...

    def missing(self, doc_ids: Sequence[str]) -> list[str]:
        """Those of `doc_ids` the index does not hold."""
        ...

    def compact(self, force: bool = True) -> bool:
        """Bring what writes derive to its compact, exact form: the embedded index folds its delta
        into a new checkpoint (unless `force`, only once it grew large), Milvus recounts the accent
        vocabulary. True when it did."""
        ...

    def close(self) -> None: ...


class IndexBuild(IndexWriter, Protocol):
    """A writer opened for a full build of the input (see index/build.py)."""

    def committed(self, doc_ids: Sequence[str]) -> dict[str, str]:
        """{doc_id: fingerprint} of those of `doc_ids` already in the index as they are."""
        ...

    def finish(self, seen: set[str], keep_written: bool, encoder: TextEncoder) -> BuildEnd:
        """After the input was written: delete what it no longer has and carry over (or drop)
        what was written since the last build."""
        ...
