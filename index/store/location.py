"""The factory: where an index lives, and the one place that names the backends. A directory is
the embedded backend (SQLite, FAISS and tantivy, index/store/embedded/); a Milvus collection is
the milvus backend (index/store/milvus/). Everything above opens, follows, writes and builds an
index through these calls, and sees only the interfaces of index/store/base.py."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from index.store.base import IndexBuild, IndexNotFound, IndexProblem, IndexReader, IndexWriter, Manifest
from index.store.embedded.backup import backup_index, restore_index
from index.store.embedded.live import read_manifest
from index.store.embedded.publish import building, open_index, verify_index, writing
from index.store.milvus.store import (
    DEFAULT_COLLECTION,
    MilvusBuild,
    MilvusTarget,
    MilvusWriter,
    milvus_manifest,
    open_milvus,
)

IndexLocation = Path | MilvusTarget
BACKENDS = ("embedded", "milvus")


def location_of(
    backend: str,
    directory: Path | str,
    milvus_uri: str = "",
    collection: str = DEFAULT_COLLECTION,
    token: str = "",
    options: str | dict = "",
) -> IndexLocation:
    """The index a setting names: `backend` "milvus" (or "" with a Milvus URI given) means the
    collection at `milvus_uri`, "embedded" (or "" without) the directory. `options`, a mapping or
    its JSON, go to pymilvus as they are (TLS: {"secure": true, "server_pem_path": "ca.pem"})."""
    backend = backend or ("milvus" if milvus_uri else "embedded")
    if backend not in BACKENDS:
        raise IndexProblem(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend == "embedded":
        return Path(directory)
    if not milvus_uri:
        raise IndexProblem(
            "the milvus backend needs a URI: --milvus-uri http://host:19530 or ./file.db (or $SEMSEARCH_MILVUS_URI)"
        )
    if isinstance(options, str):
        try:
            options = json.loads(options) if options.strip() else {}
        except ValueError as exc:
            raise IndexProblem(f"the Milvus connection options are not JSON: {exc}") from None
    if not isinstance(options, dict):
        raise IndexProblem("the Milvus connection options must be a JSON object")
    return MilvusTarget(milvus_uri, collection or DEFAULT_COLLECTION, token, options)


def describe(location: IndexLocation) -> str:
    """The location as a person reads it, with its backend."""
    return f"Milvus {location}" if isinstance(location, MilvusTarget) else f"the index at {location}"


def open_location(location: IndexLocation, model: str | None = None) -> IndexReader:
    """A reader of the index at `location`; `model`, when given, must be the one that built it."""
    if isinstance(location, MilvusTarget):
        return open_milvus(location, model)
    return open_index(location, model)


@contextmanager
def writing_at(
    location: IndexLocation, model: str | None = None, progress: bool = False, wait_seconds: float = 0.0
) -> Iterator[IndexWriter]:
    """The writer of the index at `location`: for a directory, the one writer, holding its lock
    (waiting up to `wait_seconds`); for Milvus, one of this host's writers."""
    if not isinstance(location, MilvusTarget):
        with writing(location, model, progress, wait_seconds) as writer:
            yield writer
        return
    milvus_writer = MilvusWriter(location, milvus_manifest(location, model), progress)
    try:
        yield milvus_writer
    finally:
        milvus_writer.close()


@contextmanager
def building_at(
    location: IndexLocation, manifest: Manifest, progress: bool = False, shard: tuple[int, int] = (0, 1)
) -> Iterator[IndexBuild]:
    """A full build of the index at `location` with `manifest`. In a directory, a new generation,
    published when the block completes (one process: `shard` must be (0, 1)); in Milvus, the
    collection (created if absent) written in place, as this process's `shard` (K of N)."""
    if isinstance(location, MilvusTarget):
        MilvusWriter.create(location, manifest).close()
        build = MilvusBuild(location, manifest, progress, shard)
        try:
            yield build
        finally:
            build.close()
        return
    if shard[1] != 1:
        raise IndexProblem("only a Milvus index is built in shards; a directory is built by one process")
    with building(location, manifest, progress) as generation:
        yield generation


def read_manifest_at(location: IndexLocation) -> Manifest:
    """The manifest of the index at `location`; raises what is wrong when there is none."""
    if isinstance(location, MilvusTarget):
        return milvus_manifest(location)
    return read_manifest(Path(location).resolve())


def manifest_at(location: IndexLocation) -> Manifest | None:
    """The manifest of the index at `location`, None when there is none (or it cannot be read)."""
    try:
        return read_manifest_at(location)
    except IndexProblem:
        return None


def read_errors(location: IndexLocation) -> tuple[type[Exception], ...]:
    """What reading the index at `location` raises when its store fails under a request (damaged
    files, or an unreachable Milvus). pymilvus is imported only for Milvus: it brings pandas,
    pyarrow and grpc, 120 MB that a server on a directory has no use for."""
    if isinstance(location, MilvusTarget):
        from pymilvus.exceptions import MilvusException

        return (MilvusException,)
    return (sqlite3.DatabaseError,)


def free_bytes(location: IndexLocation) -> int | None:
    """Free space where the index's files are; None for Milvus, whose servers' disks are theirs
    to watch."""
    if isinstance(location, MilvusTarget):
        return None
    return shutil.disk_usage(Path(location).resolve()).free


class FollowedIndex:
    """The reader of the index at `location`, kept current: `reload_if_changed` catches up with
    writes committed to it, and when a build published a new generation at a directory's link,
    opens that and switches `reader` to it (a Milvus collection is never replaced). Whoever holds
    the old reader finishes with it; its files are released when the last holder lets go."""

    def __init__(self, location: IndexLocation, model: str | None = None, reader: IndexReader | None = None):
        self.location = location
        self.reader = reader if reader is not None else open_location(location, model)
        self.model = self.reader.manifest.model
        self.problem: IndexProblem | None = None  # why the last reload failed, until one succeeds
        self._failed: Path | None = None  # a published generation that would not open

    def reload_if_changed(self) -> bool:
        """True when the reader moved on. Raises IndexProblem (and keeps the current reader) when
        the index cannot be followed; a published generation that would not open is not tried
        again, and `problem` says why until the next reload succeeds."""
        try:
            changed = self._reload()
        except IndexProblem as exc:
            self.problem = exc
            raise
        if self._failed is None:
            self.problem = None
        return changed

    def _reload(self) -> bool:
        if isinstance(self.location, MilvusTarget):
            return self.reader.refresh()
        try:
            published = Path(self.location).resolve(strict=True)
        except OSError as exc:
            raise IndexNotFound(f"{self.location} is gone ({exc}); still serving {self.reader.name}") from exc
        if published.name == self.reader.name:
            self._failed = None
            return self.reader.refresh()
        if published == self._failed:
            return False
        try:
            self.reader = open_location(self.location, self.model)
        except IndexProblem:
            self._failed = published
            raise
        self._failed = None
        return True


def one_process_only(location: IndexLocation) -> str | None:
    """Why only one process may open the index at `location`, if so (a milvus-lite file)."""
    if isinstance(location, MilvusTarget) and location.is_lite_file:
        return (
            f"{location.uri} is a milvus-lite file, which one process opens (for more, run "
            f"`milvus-lite server --data-dir {location.uri}` and use its http:// URI)"
        )
    return None


def _directory(location: IndexLocation, what: str) -> Path:
    if isinstance(location, MilvusTarget):
        raise IndexProblem(
            f"{what} is for an index directory; a Milvus collection is checked and backed up with Milvus's own tools"
        )
    return Path(location)


def verify_at(location: IndexLocation) -> list[str]:
    """Every check of the index at `location`, as lines saying what passed; raises IndexCorrupt
    on the first failure."""
    return verify_index(_directory(location, "verify"))


def backup_at(location: IndexLocation, destination: Path) -> list[str]:
    return backup_index(_directory(location, "backup"), destination)


def restore_at(backup: Path, location: IndexLocation) -> list[str]:
    return restore_index(backup, _directory(location, "restore"))
