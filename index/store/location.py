"""Where an index lives: a directory (the embedded backend: SQLite, FAISS and tantivy, see
live.py and publish.py) or a Milvus collection (milvus.py). The one place that tells them apart:
everything above opens, reads and writes an index through these calls alone."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Union

from index.store.milvus import DEFAULT_COLLECTION, MilvusIndex, MilvusTarget, MilvusWriter, milvus_manifest, open_milvus
from index.store.publish import IndexProblem, Manifest, open_index, writing

IndexLocation = Union[Path, MilvusTarget]
BACKENDS = ("embedded", "milvus")


def location_of(backend: str, directory: Path | str, milvus_uri: str = "", collection: str = DEFAULT_COLLECTION,
                token: str = "", options: str | dict = "") -> IndexLocation:
    """The index a setting names: `backend` "milvus" (or "" with a Milvus URI given) means the
    collection at `milvus_uri`, "embedded" (or "" without) the directory. `options`, a mapping or
    its JSON, go to pymilvus as they are (TLS: {"secure": true, "server_pem_path": "ca.pem"})."""
    backend = backend or ("milvus" if milvus_uri else "embedded")
    if backend not in BACKENDS:
        raise IndexProblem(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend == "embedded":
        return Path(directory)
    if not milvus_uri:
        raise IndexProblem("the milvus backend needs a URI: --milvus-uri http://host:19530 or ./file.db "
                           "(or $SEMSEARCH_MILVUS_URI)")
    if isinstance(options, str):
        try:
            options = json.loads(options) if options.strip() else {}
        except ValueError as exc:
            raise IndexProblem(f"the Milvus connection options are not JSON: {exc}") from None
    if not isinstance(options, dict):
        raise IndexProblem("the Milvus connection options must be a JSON object")
    return MilvusTarget(milvus_uri, collection or DEFAULT_COLLECTION, token, options)


def open_location(location: IndexLocation, model: str | None = None):
    """A reader of the index at `location` (a LiveIndex or a MilvusIndex, which answer the same calls)."""
    if isinstance(location, MilvusTarget):
        return open_milvus(location, model)
    return open_index(location, model)


@contextmanager
def writing_at(location: IndexLocation, encoder=None, progress: bool = False, wait_seconds: float = 0.0) -> Iterator:
    """The writer of the index at `location`: for a directory, the one writer, holding its lock
    (waiting up to `wait_seconds`); for Milvus, one of this host's writers."""
    if not isinstance(location, MilvusTarget):
        with writing(location, encoder, progress, wait_seconds) as writer:
            yield writer
        return
    writer = MilvusWriter(location, milvus_manifest(location), encoder, progress)
    try:
        yield writer
    finally:
        writer.close()


def read_errors(index) -> tuple[type[Exception], ...]:
    """What reading `index` raises when its store fails under a request (damaged files, or an
    unreachable Milvus). pymilvus is imported only for a Milvus index: it brings pandas, pyarrow
    and grpc, 120 MB that a server on a directory has no use for."""
    if isinstance(index, MilvusIndex):
        from pymilvus.exceptions import MilvusException

        return (MilvusException,)
    return (sqlite3.DatabaseError,)


def read_location_manifest(location: IndexLocation) -> Manifest:
    if isinstance(location, MilvusTarget):
        return milvus_manifest(location)
    return Manifest.read(Path(location).resolve())
