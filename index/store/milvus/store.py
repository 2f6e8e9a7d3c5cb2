"""An index on Milvus: what the embedded index (live.py: SQLite, FAISS, tantivy) keeps in one
directory, kept in four Milvus collections instead, so that an index can outgrow one machine
and every service process is stateless (any number, on any machine, behind a load balancer).

    <name>_passages   per passage: the vector, its sentences' vectors (packed, read to rescore
                      candidates), the analysed terms (BM25 by Milvus), the text and its
                      document's metadata (filters and results need no second lookup)
    <name>_documents  per document: its metadata and a fingerprint of its content; written last
                      in a write, so a document is committed when its row exists
    <name>_accents    the accent vocabulary's counts (accents.py): per writer and unaccented key,
                      the counts of its written forms, found by primary key
    <name>_meta       the manifest (model, prompts, chunking, analyser) and each writer's version

Everything a service needs is in Milvus: text and metadata too, not in a side store, because a
stateless tier is the point of this backend and a second store would be a second thing to run,
back up and keep consistent. Passages are keyed by `Passage.int_id` (a 63-bit hash of the
document id, position and text), so any number of writers can insert without coordinating and
writing the same document again replaces it in place.

Milvus cannot run our Vietnamese analyser, so passages are analysed here (lexical.analyze) and
Milvus's BM25 function reads the terms back with its standard tokenizer (`\\w+`, lower case); the
terms are spelled to survive it (`MILVUS_TERM`). Fusion, accent restoration, highlights and
answers stay in the service, as with the embedded index.

A `milvus-lite` file (`./x.db`) serves one process; a Milvus server (`http://host:19530`) any.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from index.encode.embed import TextEncoder
from index.encode.evidence import Evidence
from index.ingest.chunk import Passage, document_text_of, embedding_text_of
from index.ingest.document import Document, stable_hash
from index.prepare import PreparedDocument
from index.store.accents import QUESTION_PHRASES, AccentVocabulary, form_counts
from index.store.analysis import CANDIDATES, K1, B, analyze, query_terms, with_documents
from index.store.base import (
    FORMAT_VERSION,
    BuildEnd,
    Commit,
    IndexProblem,
    Manifest,
    ModelMismatch,
    StoredPassage,
    WriteResult,
)
from index.store.filters import NO_FILTERS, Filters, day_number
from index.text import VIETNAMESE

log = logging.getLogger("semsearch")

DEFAULT_COLLECTION = "semsearch"
# Milvus wants a vector field in every collection; the tables that need none carry this one.
_SPARE = "spare"
# Meta rows "origin:<doc_id>" record the documents not read by a build (`semsearch add`, the API),
# which a build keeps: the documents collection has no field for it, and milvus-lite cannot add one.
ORIGIN = "origin:"
_SPARE_DIM = 2
_TEXT = 65_535  # VARCHAR's largest size, in bytes
_NAME = 2_048
# HNSW: recall near exact search at these sizes, and what Milvus serves from memory fastest.
HNSW_BUILD = {"M": 16, "efConstruction": 200}
HNSW_EF = 128
# Reads and writes see every earlier write: the service reads what a write just committed.
CONSISTENCY = "Strong"
_BATCH = 1_000  # rows per insert or query: under gRPC's message limit with 384-d vectors and text


def _batches(items: Sequence) -> Iterator[Sequence]:
    for start in range(0, len(items), _BATCH):
        yield items[start : start + _BATCH]


_FOLDED = "ǂ"  # a letter (so `\w`) that no syllable holds: marks unaccented terms, joins pairs
_PASSAGE_FIELDS = [
    "int_id",
    "id",
    "doc_id",
    "position",
    "heading",
    "text",
    "title",
    "date",
    "source",
    "byline",
    "context",
]
# Where a passage is in its file (path; page of a PDF, row of a table); collections made before
# these fields have none, and milvus-lite cannot add them (`MilvusStore.located`).
_LOCATION_FIELDS = ["path", "page", "row"]
_DOCUMENT_LOCATION_FIELDS = ["path", "format", "row", "encoding"]


class MilvusIndexProblem(IndexProblem):
    """The collection is missing, another model's or not semsearch's."""


def milvus_term(term: str) -> str:
    """One of lexical.analyze's terms spelled as one `\\w+` token: "~dang" -> "ǂdang",
    "~dang_vien" -> "ǂdangǂvien", "en:protein" -> "enǂprotein"; written syllables stay as they are."""
    if term.startswith("~"):
        return _FOLDED + term[1:].replace("_", _FOLDED)
    return term.replace(":", _FOLDED)


def milvus_terms(terms: list[str]) -> str:
    return " ".join(milvus_term(t) for t in terms)


def literal(value: str) -> str:
    """A string literal for a Milvus filter expression."""
    escaped = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    )
    return f'"{escaped}"'


def expression(filters: Filters, located: bool = True) -> str:
    """`filters` as a Milvus boolean expression ("" when there are none); without `located`
    fields no passage has a path."""
    parts = []
    if filters.paths:
        prefixes = [literal(prefix.replace("%", "\\%").replace("_", "\\_") + "%") for prefix in filters.paths]
        parts.append(f"({' or '.join(f'path like {p}' for p in prefixes)})" if located else "int_id < 0")
    if filters.sources:
        parts.append(f"source in [{', '.join(map(literal, filters.sources))}]")
    if filters.doc_ids:
        parts.append(f"doc_id in [{', '.join(map(literal, filters.doc_ids))}]")
    if (days := filters.day_range()) is not None:
        parts.append(f"day >= {days[0]} and day <= {days[1]}")
    return " and ".join(parts)


@dataclass(frozen=True)
class MilvusTarget:
    """Where an index lives on Milvus: a server URI or a milvus-lite file, and a collection name.
    `token` is "user:password" or an API key; `options` go to pymilvus as they are (TLS:
    `secure`, `server_pem_path`, `server_name`, ...)."""

    uri: str
    collection: str = DEFAULT_COLLECTION
    token: str = ""
    options: dict = field(default_factory=dict, hash=False, compare=False)

    def name(self, table: str) -> str:
        return f"{self.collection}_{table}"

    @property
    def is_lite_file(self) -> bool:
        """A milvus-lite file, opened by one process at a time; not a server's address."""
        return "://" not in self.uri

    def connect(self):
        from pymilvus import MilvusClient

        logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # its errors reach us as exceptions
        # milvus-lite's in-process server logs, as errors, the calls it leaves to pymilvus's fallbacks
        logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
        logging.getLogger("milvus_lite").setLevel(logging.CRITICAL)
        try:
            return MilvusClient(uri=self.uri, token=self.token, **self.options)
        except Exception as exc:  # pymilvus raises several kinds for the same thing: no server there
            if self.is_lite_file:
                raise MilvusIndexProblem(
                    f"cannot open the milvus-lite file {self.uri} ({exc}); milvus-lite lets one process open a file: "
                    f"if another has it, run `milvus-lite server --data-dir {self.uri}` and use its http:// URI"
                ) from exc
            raise MilvusIndexProblem(f"cannot reach Milvus at {self.uri}: {exc}") from exc

    def __str__(self) -> str:
        return f"collection {self.collection!r} at {self.uri}"


class MilvusStore:
    """Reads shared by the reader and the writer: passages, documents, accent counts, state."""

    def __init__(self, target: MilvusTarget, client=None):
        self.target = target
        self.client = client or target.connect()
        self.passages_name, self.documents_name = target.name("passages"), target.name("documents")
        self.accents_name, self.meta_name = target.name("accents"), target.name("meta")
        self._fields: dict[str, set[str]] = {}  # of each collection, once read

    @property
    def located(self) -> bool:
        """Whether the collections have the location fields (made since they were added)."""
        return self._has_field(self.passages_name, "page")

    @property
    def documents_weighed(self) -> bool:
        """Whether documents have their own BM25 terms (collections made since they were added)."""
        return self._has_field(self.documents_name, "lexical")

    def _has_field(self, collection: str, name: str) -> bool:
        """Whether `collection` has the field `name` (milvus-lite cannot add fields to a
        collection: one made before a field was added never has it)."""
        if collection not in self._fields:
            self._fields[collection] = {
                field["name"] for field in self.client.describe_collection(collection)["fields"]
            }
        return name in self._fields[collection]

    @property
    def passage_fields(self) -> list[str]:
        return _PASSAGE_FIELDS + (_LOCATION_FIELDS if self.located else [])

    def exists(self) -> bool:
        return self.client.has_collection(self.meta_name)

    def load(self) -> None:
        """Into the query nodes' memory, where Milvus searches (a no-op when they are loaded)."""
        for name in (self.passages_name, self.documents_name, self.accents_name, self.meta_name):
            self.client.load_collection(name)

    def _query(self, name: str, expr: str, fields: list[str], limit: int | None = None) -> list[dict]:
        kwargs = {"limit": limit} if limit is not None else {}
        return self.client.query(name, filter=expr, output_fields=fields, consistency_level=CONSISTENCY, **kwargs)

    def rows_in(self, name: str, key: str, values: Sequence, fields: list[str]) -> list[dict]:
        """`fields` of the rows of `name` whose `key` is one of `values`."""
        rows = []
        for part in _batches(values):
            members = ", ".join(literal(v) if isinstance(v, str) else str(int(v)) for v in part)
            rows += self._query(name, f"{key} in [{members}]", fields)
        return rows

    def get(self, name: str, keys: Sequence[int], fields: list[str]) -> list[dict]:
        """`fields` of the rows of `name` whose primary key is one of `keys` (a lookup, not a filter)."""
        keys = [int(key) for key in keys]
        return [
            row
            for part in _batches(keys)
            for row in self.client.get(name, ids=part, output_fields=fields, consistency_level=CONSISTENCY)
        ]

    def scan(self, name: str, fields: list[str], expr: str = "") -> Iterator[list[dict]]:
        iterator = self.client.query_iterator(
            name, batch_size=_BATCH, filter=expr, output_fields=fields, consistency_level=CONSISTENCY
        )
        try:
            while batch := iterator.next():
                yield batch
        finally:
            iterator.close()

    # -- meta ----------------------------------------------------------------------------------------

    def meta(self, key: str):
        rows = self._query(self.meta_name, f"key == {literal(key)}", ["value"])
        return json.loads(rows[0]["value"]) if rows else None

    def meta_like(self, prefix: str) -> dict[str, object]:
        rows = self._query(self.meta_name, f"key like {literal(prefix + '%')}", ["key", "value"])
        return {row["key"]: json.loads(row["value"]) for row in rows}

    def set_meta(self, key: str, value) -> None:
        self.set_metas({key: value})

    def set_metas(self, values: dict[str, object]) -> None:
        self.client.upsert(
            self.meta_name,
            [
                {"key": key, "value": json.dumps(value, ensure_ascii=False), _SPARE: [0.0] * _SPARE_DIM}
                for key, value in values.items()
            ],
        )

    def version(self) -> int:
        return sum(self.meta_like("version:").values())

    def count(self, name: str) -> int:
        return self._query(name, "", ["count(*)"])[0]["count(*)"]

    # -- passages and documents (the PassageStore reads a search needs) ------------------------------

    @staticmethod
    def _stored(row: dict) -> StoredPassage:
        return StoredPassage(**{name: row.get(name) for name in _PASSAGE_FIELDS + _LOCATION_FIELDS})

    def by_int_ids(self, int_ids: list[int]) -> dict[int, StoredPassage]:
        return {row["int_id"]: self._stored(row) for row in self.get(self.passages_name, int_ids, self.passage_fields)}

    def by_id(self, passage_id: str) -> StoredPassage | None:
        rows = self._query(self.passages_name, f"id == {literal(passage_id)}", self.passage_fields, limit=1)
        return self._stored(rows[0]) if rows else None

    def in_document(self, doc_id: str, first: int, last: int) -> list[StoredPassage]:
        rows = self._query(
            self.passages_name,
            f"doc_id == {literal(doc_id)} and position >= {int(first)} and position <= {int(last)}",
            self.passage_fields,
        )
        return sorted(map(self._stored, rows), key=lambda p: p.position)

    def document(self, doc_id: str) -> dict | None:
        fields = ["title", "date", "byline", "source", "original_name"]
        located = _DOCUMENT_LOCATION_FIELDS if self.located else []
        rows = self._query(self.documents_name, f"doc_id == {literal(doc_id)}", fields + located)
        if not rows:
            return None
        passages = self._query(self.passages_name, f"doc_id == {literal(doc_id)}", ["id", "position"])
        origin = self.meta(ORIGIN + doc_id) or {"origin": "build"}
        return {
            "id": doc_id,
            **{name: rows[0].get(name) for name in fields + _DOCUMENT_LOCATION_FIELDS},
            **origin,
            "passages": [p["id"] for p in sorted(passages, key=lambda p: p["position"])],
        }

    def written(self) -> set[str]:
        """Ids of the documents written since they were built (see MilvusWriter.write)."""
        return {
            row["key"][len(ORIGIN) :]
            for batch in self.scan(self.meta_name, ["key"], f"key like {literal(ORIGIN + '%')}")
            for row in batch
        }

    def sources(self) -> list[str]:
        return sorted({s for sources in self.meta_like("sources:").values() for s in sources})

    def languages(self) -> frozenset[str]:
        """The languages of the passages written (Vietnamese in collections written before they
        were recorded: every passage was analysed as Vietnamese then)."""
        return frozenset(language for found in self.meta_like("languages:").values() for language in found) or {
            VIETNAMESE
        }

    def first_int_id(self) -> int | None:
        rows = self._query(self.passages_name, "", ["int_id"], limit=1)
        return rows[0]["int_id"] if rows else None

    def vector(self, int_id: int, dim: int) -> np.ndarray:
        rows = self.get(self.passages_name, [int_id], ["vector"])
        if not rows:
            raise KeyError(int_id)
        return np.asarray(rows[0]["vector"], np.float32)

    def evidence(self, int_ids: Sequence[int], dim: int) -> Evidence:
        return Evidence.of(
            [
                (row["int_id"], row["vector"], base64.b64decode(row["sentences"]))
                for row in self.get(self.passages_name, int_ids, ["vector", "sentences"])
            ],
            dim,
        )

    def doc_ids_of(self, int_ids: Sequence[int]) -> dict[int, str]:
        return {row["int_id"]: row["doc_id"] for row in self.get(self.passages_name, int_ids, ["doc_id"])}

    # -- accent counts (accents.FormCounts), summed over the writers' rows --------------------------

    def writers(self) -> list[str]:
        """Everyone who has written accent counts (each keeps a total)."""
        return [key.split(":", 1)[1] for key in self.meta_like("accent_total:")]

    def _forms(self, keys: Iterable[str]) -> dict[str, Counter[str]]:
        """{key: {written form: count}} summed over the writers, for those of `keys` the corpus has."""
        keys = sorted(set(keys))
        ids = [accent_pk(writer, key) for writer in self.writers() for key in keys]
        forms: dict[str, Counter[str]] = {}
        for row in self.get(self.accents_name, ids, ["key", "forms"]):
            forms.setdefault(row["key"], Counter()).update(row["forms"])
        return {key: Counter({w: n for w, n in written.items() if n > 0}) for key, written in forms.items()}

    def accent_forms(self, key: str, limit: int) -> dict[str, int]:
        counts = self._forms([key]).get(key, Counter())
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit])

    def accent_frequency(self, key: str) -> int:
        return sum(self._forms([key]).get(key, Counter()).values())

    def accent_known(self, keys: set[str]) -> set[str]:
        return {key for key, counts in self._forms(keys).items() if counts}

    def accent_total(self) -> int:
        return sum(self.meta_like("accent_total:").values())

    def delete(self, name: str, keys: Sequence) -> None:
        for part in _batches(keys):
            self.client.delete(name, ids=list(part))

    def close(self) -> None:
        self.client.close()


@dataclass(frozen=True)
class MilvusView:
    """What a search holds of the index between reads: Milvus serves the latest writes itself."""

    version: int
    passages: int


class MilvusIndex:
    """The reader: the same calls as live.LiveIndex, answered by Milvus."""

    def __init__(self, target: MilvusTarget, manifest):
        self.target = target
        self.manifest = manifest
        self.dim = manifest.dimension
        self.passages = MilvusStore(target)
        self.accents = AccentVocabulary(self.passages)
        self.view = self._read_view()

    def _read_view(self) -> MilvusView:
        self.languages = self.passages.languages()
        return MilvusView(self.passages.version(), self.passages.count(self.passages.passages_name))

    def refresh(self) -> bool:
        from pymilvus.exceptions import MilvusException

        try:
            if self.passages.version() == self.view.version:
                return False
            self.view = self._read_view()
        except MilvusException as exc:
            raise MilvusIndexProblem(f"{self.target} cannot be read: {exc.message}") from exc
        return True

    def dense(
        self, query: np.ndarray, k: int, filters: Filters = NO_FILTERS, view: MilvusView | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        # output_fields names the key alone: given none, milvus-lite sends every field of every hit
        hits = self.passages.client.search(
            self.passages.passages_name,
            data=[np.asarray(query, np.float32).tolist()],
            anns_field="vector",
            limit=k,
            filter=expression(filters, self.passages.located),
            output_fields=["int_id"],
            consistency_level=CONSISTENCY,
            search_params={"metric_type": "IP", "params": {"ef": max(HNSW_EF, k)}},
        )[0]
        return (np.array([h["distance"] for h in hits], np.float32), np.array([h["int_id"] for h in hits], np.int64))

    def lexical_search(
        self, query: str, k: int, filters: Filters = NO_FILTERS, view: MilvusView | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        terms = milvus_terms(query_terms(query, self.languages))
        if not terms:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        store = self.passages
        hits = self._bm25(store.passages_name, terms, max(k, CANDIDATES), expression(filters, store.located), "int_id")
        documents = [h["doc_id"] for h in hits]
        of_document = {}
        if documents and store.documents_weighed:
            found = tuple(sorted(set(documents)))
            where = expression(Filters(doc_ids=found))
            of_document = {
                h["doc_id"]: abs(h["distance"]) for h in self._bm25(store.documents_name, terms, len(found), where)
            }
        # BM25 scores are positive; milvus-lite reports them negated, as distances
        return with_documents(
            [abs(h["distance"]) for h in hits], [h["int_id"] for h in hits], documents, of_document, k
        )

    def _bm25(self, collection: str, terms: str, k: int, where: str, *fields: str) -> list[dict]:
        return self.passages.client.search(
            collection,
            data=[terms],
            anns_field="lexical",
            limit=k,
            filter=where,
            output_fields=[*fields, "doc_id"],
            consistency_level=CONSISTENCY,
            search_params={"metric_type": "BM25"},
        )[0]

    def vector(self, int_id: int) -> np.ndarray:
        return self.passages.vector(int_id, self.dim)

    def evidence(self, int_ids: Sequence[int]) -> Evidence:
        return self.passages.evidence(int_ids, self.dim)

    def documents(self) -> int:
        return self.passages.count(self.passages.documents_name)

    def state(self) -> dict:
        return {
            "version": self.view.version,
            "passages": self.view.passages,
            "backend": "milvus",
            "collection": self.target.collection,
        }

    @property
    def name(self) -> str:
        return self.target.collection

    def probe(self) -> None:
        self.passages.first_int_id()

    def close(self) -> None:
        self.passages.close()


# -- writing ------------------------------------------------------------------------------------------


_BM25_INDEX = {
    "field_name": "lexical",
    "index_type": "SPARSE_INVERTED_INDEX",
    "metric_type": "BM25",
    "params": {"bm25_k1": K1, "bm25_b": B},
}


def _schemas(client, dim: int) -> dict[str, tuple]:
    from pymilvus import DataType, Function, FunctionType

    def spare(schema) -> None:
        schema.add_field(_SPARE, DataType.FLOAT_VECTOR, dim=_SPARE_DIM)

    passages = client.create_schema(auto_id=False)
    passages.add_field("int_id", DataType.INT64, is_primary=True)
    passages.add_field("id", DataType.VARCHAR, max_length=32)
    passages.add_field("doc_id", DataType.VARCHAR, max_length=_NAME)
    passages.add_field("position", DataType.INT32)
    passages.add_field("heading", DataType.VARCHAR, max_length=_TEXT, nullable=True)
    passages.add_field("context", DataType.VARCHAR, max_length=_TEXT)
    passages.add_field("text", DataType.VARCHAR, max_length=_TEXT)
    passages.add_field("title", DataType.VARCHAR, max_length=_TEXT)
    passages.add_field("date", DataType.VARCHAR, max_length=64, nullable=True)
    passages.add_field("byline", DataType.VARCHAR, max_length=_TEXT, nullable=True)
    passages.add_field("source", DataType.VARCHAR, max_length=_NAME, nullable=True)
    passages.add_field("day", DataType.INT32, nullable=True)
    passages.add_field("path", DataType.VARCHAR, max_length=_NAME, nullable=True)
    passages.add_field("page", DataType.INT32, nullable=True)
    passages.add_field("row", DataType.INT64, nullable=True)
    passages.add_field(
        "terms", DataType.VARCHAR, max_length=_TEXT, enable_analyzer=True, analyzer_params={"tokenizer": "standard"}
    )
    passages.add_field("lexical", DataType.SPARSE_FLOAT_VECTOR)
    passages.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    passages.add_field("sentences", DataType.VARCHAR, max_length=_TEXT)  # base64 of evidence.pack_vectors
    passages.add_function(
        Function(
            name="bm25", function_type=FunctionType.BM25, input_field_names=["terms"], output_field_names=["lexical"]
        )
    )
    passage_index = client.prepare_index_params()
    passage_index.add_index(field_name="vector", index_type="HNSW", metric_type="IP", params=HNSW_BUILD)
    passage_index.add_index(**_BM25_INDEX)
    for name in ("doc_id", "source", "day", "path"):
        passage_index.add_index(field_name=name, index_type="INVERTED")

    documents = client.create_schema(auto_id=False)
    documents.add_field("doc_id", DataType.VARCHAR, max_length=_NAME, is_primary=True)
    for name in ("title", "byline"):
        documents.add_field(name, DataType.VARCHAR, max_length=_TEXT, nullable=name != "title")
    documents.add_field("date", DataType.VARCHAR, max_length=64, nullable=True)
    documents.add_field("source", DataType.VARCHAR, max_length=_NAME, nullable=True)
    documents.add_field("original_name", DataType.VARCHAR, max_length=_TEXT, nullable=True)
    documents.add_field("fingerprint", DataType.VARCHAR, max_length=64)
    documents.add_field("path", DataType.VARCHAR, max_length=_NAME, nullable=True)
    documents.add_field("format", DataType.VARCHAR, max_length=64, nullable=True)
    documents.add_field("row", DataType.INT64, nullable=True)
    documents.add_field("encoding", DataType.VARCHAR, max_length=64, nullable=True)
    documents.add_field("shard", DataType.INT64)
    documents.add_field(
        "terms", DataType.VARCHAR, max_length=_TEXT, enable_analyzer=True, analyzer_params={"tokenizer": "standard"}
    )
    documents.add_field("lexical", DataType.SPARSE_FLOAT_VECTOR)
    documents.add_function(
        Function(
            name="bm25", function_type=FunctionType.BM25, input_field_names=["terms"], output_field_names=["lexical"]
        )
    )
    spare(documents)

    accents = client.create_schema(auto_id=False)
    accents.add_field("pk", DataType.INT64, is_primary=True)
    accents.add_field("key", DataType.VARCHAR, max_length=_NAME)
    accents.add_field("writer", DataType.VARCHAR, max_length=_NAME)
    accents.add_field("forms", DataType.JSON)
    spare(accents)

    meta = client.create_schema(auto_id=False)
    meta.add_field("key", DataType.VARCHAR, max_length=_NAME, is_primary=True)
    meta.add_field("value", DataType.VARCHAR, max_length=_TEXT)
    spare(meta)

    def spare_index(*scalar: str):
        params = client.prepare_index_params()
        params.add_index(field_name=_SPARE, index_type="FLAT", metric_type="L2")
        for name in scalar:
            params.add_index(field_name=name, index_type="INVERTED")
        return params

    document_index = spare_index()
    document_index.add_index(**_BM25_INDEX)
    return {
        "passages": (passages, passage_index),
        "documents": (documents, document_index),
        "accents": (accents, spare_index()),
        "meta": (meta, spare_index()),
    }


def milvus_manifest(target: MilvusTarget, model: str | None = None) -> Manifest:
    """The manifest of the index in `target` (its collections loaded, ready to read), refusing
    one built with another model than `model` (when given)."""
    store = MilvusStore(target)
    try:
        if not store.exists():
            raise MilvusIndexProblem(
                f"no semsearch index in {target}; build one with "
                f"`semsearch index PATH --backend milvus --milvus-uri {target.uri}`"
            )
        store.load()
        recorded = store.meta("manifest")
        if recorded.get("format_version") != FORMAT_VERSION:
            raise MilvusIndexProblem(
                f"the index in {target} has format {recorded.get('format_version')}, not {FORMAT_VERSION}; "
                f"rebuild it with `semsearch index PATH --backend milvus --milvus-uri {target.uri}`"
            )
        manifest = Manifest(**{key: recorded[key] for key in Manifest.__dataclass_fields__ if key in recorded})
    finally:
        store.close()
    if model is not None and model != manifest.model:
        raise ModelMismatch(f"the index in {target} was built with model {manifest.model!r}, not {model!r}")
    return manifest


def open_milvus(target: MilvusTarget, model: str | None = None) -> MilvusIndex:
    """The index in `target`, refusing one built with another model than `model` (when given)."""
    return MilvusIndex(target, milvus_manifest(target, model))


class MilvusWriter:
    """Writes documents into a Milvus index. Several may write at once (one per shard or host),
    each under its own `writer` name: the accent counts and versions are kept per writer and
    summed by readers, so no writer overwrites another's. Writes of one document from two
    writers at once are not serialised (Milvus has no transactions)."""

    def __init__(self, target: MilvusTarget, manifest: Manifest, progress: bool = False, writer: str | None = None):
        self.target = target
        self.manifest = manifest
        self.progress = progress
        self.threads: int | None = None  # the writer's host embeds; Milvus's servers do the rest
        self.writer = writer or f"host-{socket.gethostname()}"
        self.store = MilvusStore(target)
        self.client = self.store.client
        self._lock = threading.Lock()

    @classmethod
    def create(
        cls, target: MilvusTarget, manifest: Manifest, progress: bool = False, writer: str | None = None
    ) -> MilvusWriter:
        """A writer of `target`, creating its collections if they are absent; refuses a collection
        built with another manifest (model, prompts, chunking, analyser)."""
        client = target.connect()
        try:
            schemas = _schemas(client, manifest.dimension)
            for table, (schema, index_params) in schemas.items():
                name = target.name(table)
                if not client.has_collection(name):
                    try:
                        client.create_collection(
                            name, schema=schema, index_params=index_params, consistency_level=CONSISTENCY
                        )
                    except Exception:  # another shard's writer created it first
                        if not client.has_collection(name):
                            raise
            store = MilvusStore(target, client)
            store.load()
            recorded = store.meta("manifest")
            if recorded is None:
                # as the embedded index does: question words counted once, as if the corpus had them
                questions = form_counts(QUESTION_PHRASES)
                _set_accents(store, QUESTIONS_WRITER, questions, _syllables(questions))
                store.set_meta("manifest", manifest.record())
            elif _comparable(recorded) != _comparable(manifest.record()):
                raise MilvusIndexProblem(
                    f"{target} holds an index built otherwise ({_difference(recorded, manifest.record())}); "
                    "use another --collection"
                )
        finally:
            client.close()
        return cls(target, manifest, progress, writer)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> MilvusWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- one write ------------------------------------------------------------------------------------

    def stored_vectors(self, passages: Sequence[Passage]) -> dict[str, tuple[np.ndarray, bytes]]:
        """Vectors of those of `passages` stored with the same id and context."""
        wanted = {p.id: p.context for p in passages}
        doc_ids = list(dict.fromkeys(p.doc_id for p in passages))
        rows = (
            self.store.rows_in(self.passages_name, "doc_id", doc_ids, ["id", "context", "vector", "sentences"])
            if doc_ids
            else []
        )
        return {
            row["id"]: (np.asarray(row["vector"], np.float32), base64.b64decode(row["sentences"]))
            for row in rows
            if wanted.get(row["id"], None) == row["context"]
        }

    def write(
        self, documents: Sequence[PreparedDocument] = (), delete: Iterable[str] = (), compact: bool = True
    ) -> WriteResult:
        """Add or replace `documents` and delete the documents `delete` names. Each document is
        committed when its row in <name>_documents is written, after its passages. (Milvus merges
        its segments itself: `compact` asks nothing more of it.)"""
        with self._lock:
            docs = [p.document for p in documents]
            gone = list(dict.fromkeys([*delete, *(d.doc_id for d in docs)]))
            old = self.store.rows_in(self.passages_name, "doc_id", gone, ["int_id", "context", "text"]) if gone else []
            kept = {p.int_id for prepared in documents for p in prepared.passages}
            self.store.delete(self.passages_name, [row["int_id"] for row in old if row["int_id"] not in kept])
            rows = [
                self._passage_row(prepared.document, passage, vector, sentences)
                for prepared in documents
                for passage, vector, sentences in zip(prepared.passages, prepared.vectors, prepared.sentences)
            ]
            # recorded first: readers analyse queries for every language passages may be written in
            self._add_to_meta("languages", {p.language for prepared in documents for p in prepared.passages})
            for part in _batches(rows):
                self.client.upsert(self.passages_name, list(part))
            added = [p.embedding_text for prepared in documents for p in prepared.passages]
            self._count_accents(added, [embedding_text_of(row["context"], row["text"]) for row in old])
            self._record_origins(docs, gone)
            removed_documents = [d for d in delete if d not in {doc.doc_id for doc in docs}]
            self.store.delete(self.documents_name, removed_documents)
            if docs:
                self.client.upsert(self.documents_name, [self._document_row(p.document, p.passages) for p in documents])
                self._add_to_meta("sources", {doc.source for doc in docs if doc.source})
            version = (self.store.meta(f"version:{self.writer}") or 0) + 1
            self.store.set_meta(f"version:{self.writer}", version)
            commit = Commit(self.store.version(), len(rows), len(old), tuple(gone))
            return WriteResult(commit, sum(p.embedded for p in documents))

    def _record_origins(self, documents: list[Document], gone: list[str]) -> None:
        """Before the documents' rows commit them: the origin of those not read by a build, and
        none for the rest of `gone` (a crash in between leaves an origin row nobody reads)."""
        written = {doc.doc_id: {"origin": doc.origin, "path": doc.path} for doc in documents if doc.origin != "build"}
        recorded = self.store.rows_in(
            self.store.meta_name, "key", [ORIGIN + d for d in gone if d not in written], ["key"]
        )
        self.store.delete(self.store.meta_name, [row["key"] for row in recorded])
        if written:
            self.store.set_metas({ORIGIN + doc_id: origin for doc_id, origin in written.items()})

    @property
    def passages_name(self) -> str:
        return self.store.passages_name

    @property
    def documents_name(self) -> str:
        return self.store.documents_name

    def _passage_row(self, doc: Document, passage: Passage, vector: np.ndarray, sentences: bytes) -> dict:
        terms = milvus_terms(analyze(passage.embedding_text, passage.language))
        for name, value in (("text", passage.text), ("terms", terms)):
            if len(value.encode()) > _TEXT:
                raise ValueError(f"passage {passage.id} of {doc.doc_id!r}: its {name} is over Milvus's {_TEXT} bytes")
        return {
            "int_id": passage.int_id,
            "id": passage.id,
            "doc_id": doc.doc_id,
            "position": passage.position,
            "heading": passage.heading,
            "context": passage.context,
            "text": passage.text,
            "title": doc.title,
            "date": doc.date,
            "byline": doc.byline,
            "source": doc.source,
            "day": day_number(doc.date),
            "terms": terms,
            "vector": np.asarray(vector, np.float32).tolist(),
            "sentences": base64.b64encode(sentences).decode("ascii"),
            **({"path": doc.path, "page": passage.page, "row": doc.row} if self.store.located else {}),
        }

    def _document_row(self, doc: Document, passages: Sequence[Passage]) -> dict:
        weighed = {}
        if self.store.documents_weighed:
            text = document_text_of([(p.context, p.text) for p in passages])
            terms = milvus_terms(analyze(text, passages[0].language if passages else None))
            if len(terms.encode()) > _TEXT:  # what Milvus holds of a field: a longer document is weighed by its start
                terms = terms.encode()[:_TEXT].decode(errors="ignore").rsplit(" ", 1)[0]
            weighed["terms"] = terms
        return {
            **weighed,
            "doc_id": doc.doc_id,
            "title": doc.title,
            "byline": doc.byline,
            "date": doc.date,
            "source": doc.source,
            "original_name": doc.original_name,
            "fingerprint": doc.fingerprint(),
            "shard": stable_hash(doc.doc_id),
            **({name: getattr(doc, name) for name in _DOCUMENT_LOCATION_FIELDS} if self.store.located else {}),
            _SPARE: [0.0] * _SPARE_DIM,
        }

    def _count_accents(self, added: list[str], removed: list[str]) -> None:
        """This writer's rows of the accent counts, moved by `added` and `removed` texts."""
        changes = form_counts(added)
        changes.subtract(form_counts(removed))
        changes = Counter({form: n for form, n in changes.items() if n})
        if not changes:
            return
        mine = [accent_pk(self.writer, key) for key in sorted({key for key, _ in changes})]
        current = Counter()
        for row in self.store.get(self.store.accents_name, mine, ["key", "forms"]):
            current.update({(row["key"], written): n for written, n in row["forms"].items()})
        current.update(changes)
        total = (self.store.meta(f"accent_total:{self.writer}") or 0) + _syllables(changes)
        _set_accents(self.store, self.writer, current, total)

    def _add_to_meta(self, kind: str, values: set[str]) -> None:
        """This writer's record of the `kind` of its passages, with `values` added."""
        known = set(self.store.meta(f"{kind}:{self.writer}") or [])
        if not values <= known:
            self.store.set_meta(f"{kind}:{self.writer}", sorted(known | values))

    # -- builds ---------------------------------------------------------------------------------------

    def committed(self, doc_ids: Sequence[str]) -> dict[str, str]:
        """{doc_id: fingerprint} of those of `doc_ids` whose write completed."""
        return {
            row["doc_id"]: row["fingerprint"]
            for row in self.store.rows_in(self.documents_name, "doc_id", list(doc_ids), ["doc_id", "fingerprint"])
        }

    def read_files(self) -> dict[str, tuple[str | None, str | None]]:
        written = self.store.written()
        fields = ["doc_id", "fingerprint"] + (["path"] if self.store.located else [])
        return {
            row["doc_id"]: (row["fingerprint"], row.get("path"))
            for batch in self.store.scan(self.documents_name, fields)
            for row in batch
            if row["doc_id"] not in written
        }

    def missing(self, doc_ids: Sequence[str]) -> list[str]:
        committed = self.committed(doc_ids)
        return [doc_id for doc_id in doc_ids if doc_id not in committed]

    def flush(self) -> None:
        """Seal what was written into segments, which Milvus indexes once (milvus-lite rebuilt the
        BM25 index of unsealed rows at every search: 4 s a search over ViQuAD, against ~0.1 s)."""
        for name in (self.passages_name, self.documents_name, self.store.accents_name):
            self.client.flush(name)

    def compact(self, force: bool = True) -> bool:
        """Recount the accent vocabulary from the passages as they stand, into this writer's rows
        alone: exact again after writes a crash cut short. Run it while no other writer writes."""
        with self._lock:
            counts: Counter = Counter()
            with tqdm(desc="recounting accents", unit="passage", disable=not self.progress) as bar:
                for batch in self.store.scan(self.passages_name, ["context", "text"]):
                    counts.update(form_counts(embedding_text_of(row["context"], row["text"]) for row in batch))
                    bar.update(len(batch))
            counts.update(form_counts(QUESTION_PHRASES))
            self.store.delete(
                self.store.accents_name,
                [row["pk"] for batch in self.store.scan(self.store.accents_name, ["pk"]) for row in batch],
            )
            self.store.delete(self.store.meta_name, list(self.store.meta_like("accent_total:")))
            _set_accents(self.store, self.writer, counts, _syllables(counts))
            self.flush()
            return True


class MilvusBuild(MilvusWriter):
    """A build's writer: writes into the collection in place, as one shard (`shard`: K of N) of the
    input; what the build skips because it is committed unchanged stays as it is."""

    def __init__(self, target: MilvusTarget, manifest: Manifest, progress: bool, shard: tuple[int, int]):
        super().__init__(target, manifest, progress, writer=f"shard-{shard[0]}-of-{shard[1]}" if shard[1] > 1 else None)
        self.shard = shard
        # into an empty collection nothing can be stale: the scan for it reads every document id
        # (minutes through milvus-lite at 100k documents)
        self.was_empty = self.store.count(self.documents_name) == 0

    def finish(self, seen: set[str], keep_written: bool, encoder: TextEncoder) -> BuildEnd:
        """Delete this shard's documents that the input (`seen`) no longer has, except those written
        since they were built (`semsearch add`, the API) unless not `keep_written`; then seal the
        collections."""
        index, shards = self.shard
        kept = set() if self.was_empty or not keep_written else self.store.written()
        stale = (
            []
            if self.was_empty
            else [
                doc_id
                for batch in self.store.scan(self.documents_name, ["doc_id", "shard"])
                for row in batch
                if row["shard"] % shards == index and (doc_id := row["doc_id"]) not in seen and doc_id not in kept
            ]
        )
        for part in _batches(stale):
            self.write(delete=part)
        self.flush()
        return BuildEnd(deleted=len(stale))


QUESTIONS_WRITER = "questions"


def accent_pk(writer: str, key: str) -> int:
    return stable_hash(f"{writer}\x00{key}")


def _syllables(counts: Counter) -> int:
    """The total that idf weights divide by: occurrences of single syllables, not of pairs."""
    return sum(n for (key, _), n in counts.items() if " " not in key)


def _set_accents(store: MilvusStore, writer: str, counts: Counter, total: int) -> None:
    """`writer`'s rows for the keys of `counts` ({(key, written form): count}: every form of each
    key), and its total."""
    forms: dict[str, dict[str, int]] = {}
    for (key, written), n in counts.items():
        if n > 0:
            forms.setdefault(key, {})[written] = n
    rows = [
        {
            "pk": accent_pk(writer, key),
            "key": key,
            "writer": writer,
            "forms": forms.get(key, {}),
            _SPARE: [0.0] * _SPARE_DIM,
        }
        for key in {key for key, _ in counts}
    ]
    for part in _batches(rows):
        store.client.upsert(store.accents_name, list(part))
    store.set_meta(f"accent_total:{writer}", total)


_BUILD_ONLY = ("corpus_fingerprint", "created_at")  # what differs between two builds of one index


def _comparable(record: dict) -> dict:
    return {key: value for key, value in record.items() if key not in _BUILD_ONLY}


def _difference(recorded: dict, wanted: dict) -> str:
    keys = [key for key in _comparable(wanted) if recorded.get(key) != wanted[key]]
    return "; ".join(f"{key}: {recorded.get(key)!r}, not {wanted[key]!r}" for key in keys)
