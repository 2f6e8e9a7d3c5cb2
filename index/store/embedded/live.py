"""One index as a living thing: readers that follow every committed write, and the one writer.

    generation/
      manifest.json            settings fixed at build time (model, chunking, ...)
      passages.sqlite          the source of truth: documents, passages, vectors (of passages and
                               of their sentences), change log, state
      lexical/                 tantivy, updated by the writer after each commit
      checkpoint-<v>-<token>/  vectors.faiss as of version v (written by compaction)
      files.lock               shared by readers opening files, exclusive while the writer swaps them

A reader (`LiveIndex`) holds a `View`: the checkpoint plus the exact delta of vectors added since,
and the catalog of live passages. `refresh` reads the change log past its
version and makes a new View; a search keeps the View it started with. The writer (`LiveWriter`)
commits to SQLite first (that is the durable point), then brings tantivy up to date and records
the version it reached; replaying the log makes a crash between the two harmless.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from index.encode.evidence import Evidence
from index.ingest.chunk import Passage
from index.prepare import PreparedDocument
from index.store.accents import AccentVocabulary
from index.store.analysis import ANALYZER
from index.store.base import IndexCorrupt, IndexNotFound, Manifest, NotAnIndex, WriteResult
from index.store.embedded.catalog import Catalog
from index.store.embedded.integrity import (
    CheckedFiles,
    DamagedFiles,
    check_files,
    fsync_directory,
    fsync_tree,
    inventory,
    refused_when_disk_full,
)
from index.store.embedded.lexical import DIRECTORY as LEXICAL
from index.store.embedded.lexical import LexicalEntry, LexicalIndex
from index.store.embedded.passages import IndexRows, PassageStore
from index.store.embedded.vectors import FaissBackend, IndexPlan, VectorDelta, merge_top
from index.store.filters import NO_FILTERS, Filters
from index.text import language_of

log = logging.getLogger("semsearch")

FILES_LOCK = "files.lock"
MANIFEST = "manifest.json"
CHECKPOINT_PREFIX = "checkpoint-"
# What a writer killed at the wrong moment can leave in a generation: a checkpoint being written or
# no longer recorded, and a lexical index being rebuilt or swapped out. Only names of these forms
# are ever removed, and only when the state does not record them.
_LEFTOVER = re.compile(
    rf"^(\.{CHECKPOINT_PREFIX}\d+-[0-9a-f]{{8}}\.staging|{CHECKPOINT_PREFIX}\d+-[0-9a-f]{{8}}"
    rf"|\.{LEXICAL}\.(rebuild|old)-[0-9a-f]{{8}})$"
)
# Compaction folds the delta into a new checkpoint once this many passages were added or removed
# since the last one (or a tenth of the index, if more): the exact delta costs ~1 ms per 10k
# passages per search.
COMPACT_AFTER = 20_000


class DerivedDamaged(DamagedFiles):
    """Files of the parts derived from the database (`parts`: "lexical", "checkpoint") are not
    what was recorded, or cannot be read: LiveWriter.repair rebuilds them from the database."""

    def __init__(self, problems: dict[str, str]):
        super().__init__("; ".join(problems.values()))
        self.parts = set(problems)


@contextmanager
def files_lock(directory: Path, exclusive: bool) -> Iterator[None]:
    with open(Path(directory) / FILES_LOCK, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class View:
    version: int
    lexical_version: int
    checkpoint_name: str
    checkpoint: FaissBackend
    checkpoint_last_id: int
    holes: int  # checkpoint passages deleted since
    delta: VectorDelta
    catalog: Catalog

    @property
    def passages(self) -> int:
        return len(self.checkpoint) - self.holes + int(self.catalog.live[self.checkpoint_last_id + 1 :].sum())


class LiveIndex:
    """Reads one generation and follows its writes. Searches take `self.view` once."""

    def __init__(self, directory: Path, manifest, store: PassageStore, checked: CheckedFiles):
        self.directory = Path(directory)
        self.manifest = manifest
        self.passages = store
        # a connection of its own for following the log: reading a large change (or the whole
        # catalogue after a compaction) does not hold up searches reading passages
        self._log = PassageStore(directory)
        self.dim = manifest.dimension
        self._refreshing = threading.Lock()
        with files_lock(self.directory, exclusive=False):
            self.view = self._open_view(checked)  # checks the files first
            try:
                self.lexical = LexicalIndex.load(self.directory)
            except ValueError as exc:  # tantivy's word for files it cannot read
                raise DerivedDamaged({"lexical": f"{LEXICAL}: {exc}"}) from exc
        self.accents = AccentVocabulary(store)

    @property
    def languages(self) -> frozenset[str]:
        return self.lexical.languages

    # -- following writes --------------------------------------------------------------------------

    def _open_view(self, checked: CheckedFiles | None = None) -> View:
        """Everything derived, from the checkpoint and the database (caller holds the files lock).
        The lexical files are checked only when tantivy has caught up with the log: behind it,
        a writer may have died between tantivy's commit and recording its files, and the next
        writer replays the log into it (see LiveWriter.recover)."""
        with self._log.snapshot():
            state = self._log.state()
            checkpoint = state["checkpoint"]
            parts = {"checkpoint": (self.directory / checkpoint["name"], checkpoint["files"])}
            if state["lexical_version"] == state["version"]:
                parts["lexical"] = (self.directory / LEXICAL, state["lexical_files"])
            problems = {}
            for part, (where, files) in parts.items():
                try:
                    check_files(where, files, checked)
                except DamagedFiles as exc:
                    problems[part] = f"{where.name}: {exc}"
            if state.get("lexical_analyzer") != ANALYZER:
                problems["lexical"] = f"{LEXICAL}: analysed by an earlier version (this one analyses by language)"
            if problems:
                raise DerivedDamaged(problems)
            last = checkpoint["last_int_id"]
            try:
                vectors = self._load_checkpoint(checkpoint)
            except Exception as exc:  # faiss raises RuntimeError
                raise DerivedDamaged({"checkpoint": f"{checkpoint['name']}: {exc}"}) from exc
            recent = self._log.rows(self.dim, after=last)
            catalog = Catalog.load(self.directory / checkpoint["name"])
            if catalog is None:
                catalog = Catalog.of(self._log.catalog())
            else:
                since = self._log.changes_after(checkpoint["version"], state["version"])
                catalog = catalog.changed(recent.catalog, [c.int_id for c in since if not c.added])
        delta = VectorDelta(self.dim).appended(recent.ids, recent.vectors)
        holes = len(vectors) - int(catalog.live[: last + 1].sum())
        return View(
            state["version"], state["lexical_version"], checkpoint["name"], vectors, last, holes, delta, catalog
        )

    def _load_checkpoint(self, checkpoint: dict) -> FaissBackend:
        """The checkpoint's FAISS index (caller holds the files lock and has checked its files)."""
        return FaissBackend.load(
            self.directory / checkpoint["name"], self.dim, IndexPlan.from_description(checkpoint["backend"])
        )

    def refresh(self) -> bool:
        """Catch up with writes committed since this view; True when something changed.

        Only what changed is read: after a compaction too, the catalogue is carried forward and
        just the new checkpoint is opened, so a server at a million passages does not spend
        seconds of interpreter time (which its searches wait for) re-reading what it holds."""
        with self._refreshing:
            view = self.view
            with self._log.snapshot():
                state = self._log.state()
                if state["version"] == view.version and state["lexical_version"] == view.lexical_version:
                    return False
                checkpoint, previous = state["checkpoint"], state.get("previous_checkpoint")
                compacted = checkpoint["name"] != view.checkpoint_name
                if compacted and (previous is None or previous["name"] != view.checkpoint_name):
                    changes, added = None, None  # compacted twice since: the log no longer reaches this view
                else:
                    changes = self._log.changes_after(view.version, state["version"])
                    added = self._log.rows(self.dim, int_ids=[c.int_id for c in changes if c.added])
            if changes is None:
                with files_lock(self.directory, exclusive=False):
                    self.view = self._open_view()
                    self.lexical.reload()
                return True
            removed = [c for c in changes if not c.added and view.catalog.is_live(c.int_id)]
            catalog = view.catalog.changed(added.catalog, [c.int_id for c in removed])
            vectors, last, delta = (
                view.checkpoint,
                view.checkpoint_last_id,
                view.delta.appended(added.ids, added.vectors),
            )
            lexical_moved = state["lexical_version"] != view.lexical_version
            if compacted or lexical_moved:
                with files_lock(self.directory, exclusive=False):
                    if compacted:
                        check_files(self.directory / checkpoint["name"], checkpoint["files"])
                        vectors, last = self._load_checkpoint(checkpoint), checkpoint["last_int_id"]
                        delta = delta.after(last)
                    if lexical_moved:
                        self.lexical.reload()
            self.view = View(
                state["version"],
                state["lexical_version"],
                checkpoint["name"],
                vectors,
                last,
                len(vectors) - int(catalog.live[: last + 1].sum()),
                delta,
                catalog,
            )
            return True

    # -- searching ---------------------------------------------------------------------------------

    def dense(
        self, query: np.ndarray, k: int, filters: Filters = NO_FILTERS, view: View | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        view = view or self.view
        filters = self._paths_as_documents(filters)
        allowed = view.catalog.allowed(
            filters, self.passages.int_ids_of_documents(filters.doc_ids) if filters.doc_ids else ()
        )
        in_checkpoint = view.checkpoint.search(query, k, allowed if filters or view.holes else None)
        return merge_top(k, in_checkpoint, view.delta.search(query, k, allowed))

    def lexical_search(
        self, query: str, k: int, filters: Filters = NO_FILTERS, view: View | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        view = view or self.view
        filters = self._paths_as_documents(filters)
        scores, ids = self.lexical.search(query, k, filters)
        # tantivy trails the database for the moment between a commit and its own
        live = np.array([view.catalog.is_live(int(i)) for i in ids], bool)
        return scores[live], ids[live]

    def _paths_as_documents(self, filters: Filters) -> Filters:
        """A filter by path as one by the documents of those files: what the catalog and tantivy know."""
        if not filters.paths:
            return filters
        under = self.passages.documents_under_paths(filters.paths)
        named = [doc_id for doc_id in under if doc_id in filters.doc_ids] if filters.doc_ids else under
        # no document there: an id no document can have, so that nothing matches
        return dataclasses.replace(filters, doc_ids=tuple(named) or ("\x00",), paths=())

    def vector(self, int_id: int) -> np.ndarray:
        return self.passages.vector(int_id, self.dim)

    def evidence(self, int_ids: Sequence[int]) -> Evidence:
        """Vectors of those of `int_ids` still stored, and of their sentences."""
        return self.passages.evidence(int_ids, self.dim)

    def documents(self) -> int:
        return self.passages.state()["documents"]

    def state(self) -> dict:
        view = self.view
        return {
            "version": view.version,
            "lexical_version": view.lexical_version,
            "checkpoint": view.checkpoint_name,
            "passages": view.passages,
            "delta": view.delta.count,
            "deleted_since_checkpoint": view.holes,
        }

    @property
    def name(self) -> str:
        return self.directory.name

    def probe(self) -> None:
        """Read the database file itself (see PassageStore.probe)."""
        PassageStore.probe(self.directory)

    def close(self) -> None:
        self.passages.close()
        self._log.close()


# -- writing -----------------------------------------------------------------------------------------


class LiveWriter:
    """The one writer of a generation; the caller holds the index's writer lock for its lifetime.

    Beside a served index a writer keeps to one core (`threads=1`) for the encoder, tantivy and FAISS, so
    searches keep the others; a build nobody searches yet uses them all (`threads=None`)."""

    def __init__(self, directory: Path, manifest: Manifest, progress: bool = False, threads: int | None = 1):
        self.directory = Path(directory)
        self.manifest = manifest
        self.progress = progress
        self.threads = threads
        self.store = PassageStore(self.directory)
        self.dim = manifest.dimension

    def close(self) -> None:
        self.store.close()

    def stored_vectors(self, passages: Sequence[Passage]) -> dict[str, tuple[np.ndarray, bytes]]:
        return vector_arrays(self.store.existing_vectors(passages))

    def read_files(self) -> dict[str, tuple[str | None, str | None]]:
        return self.store.read_files()

    def missing(self, doc_ids: Sequence[str]) -> list[str]:
        return [doc_id for doc_id in doc_ids if self.store.document(doc_id) is None]

    def write(
        self, documents: Sequence[PreparedDocument] = (), delete: Iterable[str] = (), compact: bool = True
    ) -> WriteResult:
        """Add or replace `documents` and delete the documents `delete` names, as one commit."""
        with refused_when_disk_full("the write", self.directory):
            self.recover()
            commit = self.store.commit(delete, [(p.document, p.passages, p.vectors, p.sentences) for p in documents])
        try:
            self._update_lexical()
        except Exception:  # the write is durable: readers filter what tantivy trails, the next writer replays it
            log.exception("the lexical index could not follow version %d yet", commit.version)
        compacted = False
        if compact:
            try:
                compacted = self.compact(force=False)
            except Exception:  # the write is committed and served from the delta; the next one retries
                log.exception("compaction after version %d failed", commit.version)
        return WriteResult(commit, sum(p.embedded for p in documents), compacted)

    def recover(self) -> None:
        """Finish what a writer killed after its commit left undone (the lexical index), and
        remove what a killed compaction or repair left behind."""
        state = self.store.state()
        if state["lexical_version"] != state["version"]:
            self._update_lexical()
        self._remove_leftovers(state)

    def _remove_leftovers(self, state: dict) -> None:
        recorded = {record["name"] for record in (state["checkpoint"], state.get("previous_checkpoint")) if record}
        for path in self.directory.iterdir():
            if _LEFTOVER.match(path.name) and path.name not in recorded and path.is_dir() and not path.is_symlink():
                log.warning("removing %s, left by an interrupted write", path)
                shutil.rmtree(path)

    def _update_lexical(self) -> None:
        state = self.store.state()
        changes = self.store.changes_after(state["lexical_version"], state["version"])
        if not changes:
            return
        added = self.store.rows(self.dim, int_ids=sorted({c.int_id for c in changes if c.added}), texts=True)
        passages, documents = lexical_entries(added, self.store)
        with files_lock(self.directory, exclusive=True):
            LexicalIndex.apply(
                self.directory,
                {c.int_id for c in changes if not c.added},
                passages,
                documents,
                self.progress,
                self.threads,
            )
            recorded = state["lexical_files"]
            self.store.set_state(
                lexical_version=state["version"],
                lexical_files=inventory(self.directory / LEXICAL, skip_suffixes=(".lock",), known=recorded),
            )

    def repair(self, parts: set[str]) -> None:
        """Rebuild the derived `parts` ("lexical", "checkpoint") from the database."""
        if "lexical" in parts:
            self._rebuild_lexical()
        if "checkpoint" in parts:
            self.compact(force=True, reuse_training=False)
        self._remove_leftovers(self.store.state())

    def _rebuild_lexical(self) -> None:
        """A new tantivy index of every passage, swapped in for the old one under the files lock."""
        token = secrets.token_hex(4)
        rebuilt, old = f".{LEXICAL}.rebuild-{token}", self.directory / f".{LEXICAL}.old-{token}"
        state = self.store.state()
        LexicalIndex.create(self.directory, name=rebuilt)
        for rows in self.store.all_rows(self.dim, texts=True):
            passages, documents = lexical_entries(rows, self.store)
            LexicalIndex.apply(self.directory, (), passages, documents, self.progress, self.threads, name=rebuilt)
            # passages written before languages were recorded have theirs now
            self.store.set_languages(
                [(e.language, e.int_id) for e, recorded in zip(passages, rows.languages) if recorded is None]
            )
        fsync_tree(self.directory / rebuilt)
        with files_lock(self.directory, exclusive=True):
            if (self.directory / LEXICAL).exists():
                os.rename(self.directory / LEXICAL, old)
            os.rename(self.directory / rebuilt, self.directory / LEXICAL)
            fsync_directory(self.directory)
            self.store.set_state(
                lexical_version=state["version"],
                lexical_files=inventory(self.directory / LEXICAL, skip_suffixes=(".lock",)),
                lexical_analyzer=ANALYZER,
            )
        shutil.rmtree(old, ignore_errors=True)

    def compact(self, force: bool = True, reuse_training: bool = True) -> bool:
        """Fold the delta and deletions into a new checkpoint (retraining IVF when the index
        crossed a size step, or unless `reuse_training`). Unless forced, only when they have
        grown past COMPACT_AFTER or the index's size calls for another kind of FAISS index.
        Searches go on meanwhile."""
        with refused_when_disk_full("the compaction", self.directory):
            return self._compact(force, reuse_training)

    def _compact(self, force: bool, reuse_training: bool) -> bool:
        state = self.store.state()
        checkpoint = state["checkpoint"]
        if not force and checkpoint is not None:
            # counted from the log since the checkpoint: a COUNT(*) would grow with the index
            changes = self.store.changes_after(checkpoint["version"], state["version"])
            passages = checkpoint["passages"] + sum(1 if c.added else -1 for c in changes)
            plan = IndexPlan.for_size(passages, self.manifest.memory_saving)
            same_plan = IndexPlan.from_description(checkpoint["backend"]) == plan
            if same_plan and len(changes) < max(COMPACT_AFTER, checkpoint["passages"] // 10):
                return False
        count = self.store.counts()[0]
        plan = IndexPlan.for_size(count, self.manifest.memory_saving)
        previous = None
        if (
            reuse_training
            and checkpoint is not None
            and IndexPlan.from_description(checkpoint["backend"]) == plan
            and plan.nprobe
        ):
            previous = FaissBackend.load(self.directory / checkpoint["name"], self.dim, plan)

        catalog = Catalog.of(())

        def batches():
            nonlocal catalog
            catalog = Catalog.of(())  # each pass reads every passage, so the last one leaves all of them
            with tqdm(total=count, desc="checkpoint", unit="passage", disable=not self.progress) as bar:
                for rows in self.store.all_rows(self.dim):
                    catalog = catalog.changed(rows.catalog, ())
                    yield rows.ids, rows.vectors
                    bar.update(len(rows.ids))

        backend = FaissBackend.build(batches, count, self.dim, plan, trained=previous, threads=self.threads)
        ids = backend.ids()
        token = secrets.token_hex(4)
        name = f"{CHECKPOINT_PREFIX}{state['version']}-{token}"
        staging = self.directory / f".{name}.staging"
        try:
            staging.mkdir()
            backend.save(staging)
            catalog.save(staging)
            fsync_tree(staging)
            os.rename(staging, self.directory / name)
            fsync_directory(self.directory)
            record = {
                "name": name,
                "version": state["version"],
                "last_int_id": int(ids.max()) if len(ids) else 0,
                "passages": len(ids),
                "backend": backend.describe(),
                "files": inventory(self.directory / name),
            }
            with files_lock(self.directory, exclusive=True):
                self.store.set_state(checkpoint=record, previous_checkpoint=checkpoint)
        except BaseException:  # nothing of this compaction stays; the recorded checkpoint serves on
            for path in (staging, self.directory / name):
                shutil.rmtree(path, ignore_errors=True)
            raise
        with files_lock(self.directory, exclusive=True):
            # the checkpoint before the previous one: no reader can still be opening it
            retired = state.get("previous_checkpoint")
            if retired and (self.directory / retired["name"]).is_dir():
                shutil.rmtree(self.directory / retired["name"])
            if checkpoint is not None:
                self.store.forget_changes_until(checkpoint["version"])
        return True


def lexical_entries(rows: IndexRows, store: PassageStore) -> tuple[list[LexicalEntry], list[LexicalEntry]]:
    """What tantivy holds of passages read with their texts, and of the documents they begin."""
    passages = [
        LexicalEntry(row.int_id, key, text, language or language_of(text), row.doc_id, row.source, row.day)
        for row, text, language, key in zip(rows.catalog, rows.texts, rows.languages, rows.document_keys)
    ]
    first = [entry for entry in passages if entry.int_id == entry.document_key]
    texts = store.document_texts([entry.doc_id for entry in first])
    documents = [dataclasses.replace(entry, text=texts[entry.doc_id]) for entry in first if entry.doc_id in texts]
    return passages, documents


def vector_arrays(stored: Mapping[str, tuple[bytes, bytes]]) -> dict[str, tuple[np.ndarray, bytes]]:
    """Passage vectors as the database holds them ({id: (float32 bytes, packed sentence vectors)})
    as index/prepare.py reuses them."""
    return {id_: (np.frombuffer(vector, np.float32), sentences) for id_, (vector, sentences) in stored.items()}


def create_generation(directory: Path, manifest: Manifest, version: int = 0) -> None:
    """A new, empty generation in `directory`, at `version` (a LiveWriter's first compaction
    gives it its checkpoint)."""
    store = PassageStore(directory, create=True)
    store.set_state(version=version, lexical_version=version, lexical_analyzer=ANALYZER)
    store.close()
    LexicalIndex.create(directory)
    (Path(directory) / MANIFEST).write_text(json.dumps(manifest.record(), indent=2, ensure_ascii=False))


def read_manifest(directory: Path) -> Manifest:
    path = Path(directory) / MANIFEST
    if Path(directory).exists() and not Path(directory).is_dir():
        raise NotAnIndex(f"{directory} is a file, not an index directory")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise IndexNotFound(f"no index at {directory} (build one with `semsearch index`)") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexCorrupt(f"{path} is not valid JSON: {exc}") from exc
    except OSError as exc:
        raise IndexCorrupt(f"{path} cannot be read: {exc}") from exc
    return Manifest.from_record(data, str(path))


def open_live(directory: Path, manifest, checked: CheckedFiles) -> LiveIndex:
    return LiveIndex(directory, manifest, PassageStore(directory), checked)
