"""Index generations: a full build writes a new one beside the published one and switches a link,
so a crash never leaves a half-written index where a reader would look, and nothing a build did
not create is ever moved or deleted. Writes between builds change the published generation in
place (index/store/live.py), under the same lock.

`out` (say `var/index`) is a symbolic link to a complete generation directory next to it:

    var/index -> .index.gen-<token>     the published index
    var/.index.gen-<token>              generations: the current one and the previous one
    var/.index.staging-<token>          a build in progress
    var/.index.lock                     held (flock) by the one build writing `out`
    var/.index.ledger.json              every staging and generation name a build created

A build (or a write) takes the lock, writes a staging directory, fsyncs it, renames it to a generation and
atomically replaces the link. Readers see the old generation or the new one. Clean-up removes
only names recorded in the ledger, each with a random token its build chose; `out` itself must be
absent or already such a link, and anything else there is refused.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from index.encode.embed import TextEncoder
from index.prepare import prepare_chunked
from index.store.base import BuildEnd, IndexBusy, IndexCorrupt, IndexProblem, Manifest, ModelMismatch, NotAnIndex
from index.store.embedded.integrity import (
    CheckedFiles,
    DamagedFiles,
    fsync_directory,
    fsync_tree,
    refused_when_disk_full,
)
from index.store.embedded.live import (
    MANIFEST,
    DerivedDamaged,
    LiveIndex,
    LiveWriter,
    create_generation,
    open_live,
    read_manifest,
    vector_arrays,
)
from index.store.embedded.passages import FILE as PASSAGES_FILE
from index.store.embedded.passages import PassageStore

log = logging.getLogger("semsearch")

SQLITE_CHECK = "sqlite quick_check"
# An open that finds derived files damaged waits this long for a writer to finish before it
# rebuilds them itself.
REPAIR_WAIT_SECONDS = 60.0
# A build carries documents written since the last one over this many at a time.
CARRY_GROUP = 500


def open_index(out: Path, model: str | None = None, reread: bool = False) -> LiveIndex:
    """Open the index at `out`, refusing one whose database differs from what was recorded.
    `model`, when given, must be the model that built it. Files an earlier open found sound and
    that have not changed since are not read again, unless `reread`. Parts derived from the
    database that a killed writer left behind, or that are damaged, are brought up to date or
    rebuilt from it first (by this process, when no writer is at work)."""
    directory = Path(out).resolve()
    manifest = read_manifest(directory)
    if model is not None and model != manifest.model:
        raise ModelMismatch(
            f"the index at {out} was built with model {manifest.model!r}, not {model!r}; "
            f"search it with that model or rebuild it with `semsearch index --model {model}`"
        )
    _finish_interrupted_write(out, directory, manifest)
    checked = CheckedFiles(directory, remember=not reread)
    try:
        try:
            index = open_live(directory, manifest, checked)
        except DerivedDamaged as exc:
            log.warning(
                "the index at %s: %s; rebuilding %s from passages.sqlite", out, exc, " and ".join(sorted(exc.parts))
            )
            with index_lock(out, wait_seconds=REPAIR_WAIT_SECONDS):
                with _writer(directory, manifest) as writer:
                    writer.repair(exc.parts)
            checked = CheckedFiles(directory, remember=False)
            index = open_live(directory, manifest, checked)
    except DamagedFiles as exc:
        raise IndexCorrupt(damage_message(out, str(exc))) from exc
    except sqlite3.DatabaseError as exc:
        raise IndexCorrupt(damage_message(out, f"passages.sqlite cannot be read: {exc}")) from exc
    except IndexBusy:
        raise
    except Exception as exc:  # faiss raises RuntimeError, tantivy ValueError, ...
        raise IndexCorrupt(damage_message(out, f"it cannot be read: {exc}")) from exc
    database = directory / PASSAGES_FILE
    if not checked.unchanged(database, SQLITE_CHECK):
        try:
            problems = index.passages.integrity_check(quick=True)
        except sqlite3.DatabaseError as exc:
            problems = [str(exc)]
        if problems != ["ok"]:
            index.close()
            raise IndexCorrupt(damage_message(out, f"passages.sqlite fails SQLite's check: {'; '.join(problems[:5])}"))
        checked.passed(database, SQLITE_CHECK)
    checked.save()
    return index


def damage_message(out: Path, problem: str) -> str:
    """Real damage (the database itself): what is wrong, and steps that lose nothing."""
    return (
        f"the index at {out} is damaged: {problem}. Nothing was changed; run `semsearch verify --index {out}` "
        f"for a full report, and restore the index from a backup (`semsearch restore`)"
    )


def _finish_interrupted_write(out: Path, directory: Path, manifest: Manifest) -> None:
    """A writer killed between its commit and tantivy's leaves the lexical index behind the log:
    replay it now, unless a writer is at work (it replays first) or this process may not write."""
    try:
        with closing(PassageStore(directory)) as store:
            state = store.state()
    except (OSError, sqlite3.Error):
        return  # the open that follows says what is wrong
    if state["lexical_version"] == state["version"]:
        return
    try:
        with index_lock(out), _writer(directory, manifest) as writer:
            writer.recover()
    except (IndexBusy, OSError):
        pass
    except Exception as exc:  # tantivy's files cannot take the replay: the open rebuilds them
        log.warning("the index at %s: replaying the lexical index failed (%s)", out, exc)


@contextmanager
def _writer(directory: Path, manifest: Manifest, progress: bool = False) -> Iterator[LiveWriter]:
    with refused_when_disk_full("opening the index to write", directory):  # SQLite's WAL needs room
        writer = LiveWriter(directory, manifest, progress)
    try:
        yield writer
    finally:
        writer.close()


def verify_index(out: Path) -> list[str]:
    """The full check behind `semsearch verify`: every checksum, SQLite's own integrity check,
    and the passages agreeing across the parts. Lines describing what was checked; raises
    IndexCorrupt on the first failure."""
    index = open_index(out, reread=True)
    try:
        view, store = index.view, index.passages
        checked = ["checkpoint and lexical files match their sizes and checksums"]
        try:
            integrity = store.integrity_check()
            rows = set(store.all_int_ids())
            passages, documents = store.counts()
        except sqlite3.DatabaseError as exc:
            raise IndexCorrupt(f"passages.sqlite: {exc}") from exc
        if integrity != ["ok"]:
            raise IndexCorrupt("passages.sqlite fails SQLite's integrity check: " + "; ".join(integrity[:5]))
        checked.append("passages.sqlite passes SQLite's integrity check")
        if index.documents() != documents:
            raise IndexCorrupt(f"passages.sqlite holds {documents} documents, its state says {index.documents()}")
        if view.lexical_version == view.version and rows != set(index.lexical.ids().tolist()):
            raise IndexCorrupt("the lexical index and passages.sqlite hold different passage ids")
        in_checkpoint = {int(i) for i in view.checkpoint.ids() if view.catalog.is_live(int(i))}
        if rows != in_checkpoint | {i for i in rows if i > view.checkpoint_last_id}:
            raise IndexCorrupt("the vector checkpoint and passages.sqlite hold different passage ids")
        checked.append(
            f"{passages} passages of {documents} documents in every part, with the same ids (version {view.version})"
        )
        return checked
    finally:
        index.close()


def read_manifest_if_any(out: Path) -> Manifest | None:
    try:
        return read_manifest(Path(out))
    except IndexProblem:
        return None


class _Siblings:
    """The names next to `out` that builds create, and the ledger recording them."""

    def __init__(self, out: Path):
        self.out = out
        self.parent = out.parent
        self.lock = self.parent / f".{out.name}.lock"
        self.ledger = self.parent / f".{out.name}.ledger.json"

    def name(self, kind: str, token: str) -> str:
        return f".{self.out.name}.{kind}-{token}"

    def read_ledger(self) -> dict[str, list[str]]:
        try:
            data = json.loads(self.ledger.read_text())
        except FileNotFoundError:
            return {"staging": [], "generations": []}
        except (OSError, ValueError) as exc:
            raise IndexCorrupt(f"{self.ledger} cannot be read ({exc}); nothing was changed") from exc
        return {"staging": list(data.get("staging", [])), "generations": list(data.get("generations", []))}

    def write_ledger(self, ledger: dict[str, list[str]]) -> None:
        temporary = self.ledger.with_name(self.ledger.name + ".tmp")
        with open(temporary, "w") as f:
            json.dump(ledger, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.ledger)
        fsync_directory(self.parent)

    def remove_recorded(self, ledger: dict[str, list[str]], kind: str, keep: set[str]) -> None:
        """Delete the recorded directories of `kind` not in `keep`; only ledger names are touched."""
        for name in [n for n in ledger[kind] if n not in keep]:
            path = self.parent / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            ledger[kind].remove(name)
        self.write_ledger(ledger)


@contextmanager
def index_lock(out: Path, wait_seconds: float = 0.0) -> Iterator[None]:
    """Held for a whole build-and-publish, or a write: one writer at a time. Another waits up to
    `wait_seconds`, then fails with IndexBusy."""
    siblings = _Siblings(Path(out))
    siblings.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    with open(siblings.lock, "a+") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "?"
                    raise IndexBusy(
                        f"another semsearch process (pid {holder}) is writing {out}; try again when it is done"
                    ) from None
                time.sleep(0.02)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def refuse_foreign(out: Path) -> None:
    """`out` may be absent or a link to an index; anything else belongs to someone else."""
    if out.is_symlink():
        target = Path(os.readlink(out))
        if target.name in _Siblings(out).read_ledger()["generations"] or (out / MANIFEST).is_file():
            return
        raise NotAnIndex(f"{out} is a link to {target}, which is not a semsearch index; nothing was changed")
    if out.exists():
        what = "a directory" if out.is_dir() else "a file"
        raise NotAnIndex(
            f"{out} is {what} that semsearch did not publish; nothing was changed. "
            "Choose another --out (semsearch publishes an index as a link it can replace)"
        )


@contextmanager
def staging_directory(out: Path) -> Iterator[Path]:
    """Yield an empty directory to write a new index into; publish it at `out` only if the block
    completes. On any exception the staging directory is removed and `out` is untouched."""
    out = Path(out)
    siblings = _Siblings(out)
    refuse_foreign(out)  # before the lock file is made: a refused --out leaves no trace
    with index_lock(out):
        refuse_foreign(out)
        ledger = siblings.read_ledger()
        # staging left by a build that crashed: no build runs while we hold the lock
        siblings.remove_recorded(ledger, "staging", keep=set())
        token = secrets.token_hex(8)
        staging = siblings.parent / siblings.name("staging", token)
        ledger["staging"].append(staging.name)
        siblings.write_ledger(ledger)
        staging.mkdir()
        try:
            yield staging
            _publish(siblings, ledger, staging, token)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
            if staging.name in ledger["staging"]:
                ledger["staging"].remove(staging.name)
                siblings.write_ledger(ledger)


def previous_version(out: Path) -> int:
    """The version of the index published at `out` (0 if none), so versions keep growing across builds."""
    try:
        index = open_index(out)
    except IndexProblem:
        return 0
    try:
        return index.view.version
    finally:
        index.close()


@contextmanager
def writing(
    out: Path, model: str | None = None, progress: bool = False, wait_seconds: float = 0.0
) -> Iterator[LiveWriter]:
    """The writer of the index published at `out`, holding its lock (waiting up to
    `wait_seconds` for another writer or build to finish); `model`, when given, must be the
    index's."""
    with index_lock(out, wait_seconds):
        directory = Path(out).resolve()
        manifest = read_manifest(directory)
        if model is not None and model != manifest.model:
            raise ModelMismatch(f"the index at {out} was built with model {manifest.model!r}, not {model!r}")
        with _writer(directory, manifest, progress) as writer:
            yield writer


class GenerationBuild(LiveWriter):
    """A build's writer: a new generation, staged beside the index published at `out` and
    published in its place when the build completes (see `building`)."""

    def __init__(self, staging: Path, manifest: Manifest, out: Path, progress: bool):
        super().__init__(staging, manifest, progress=False, threads=None)
        self.out = out
        self.build_progress = progress

    def committed(self, doc_ids) -> dict[str, str]:
        return {}  # a new generation holds nothing a build could skip

    def finish(self, seen: set[str], keep_written: bool, encoder: TextEncoder) -> BuildEnd:
        """Carry into the new generation the documents written to the published one since its
        build that the input (`seen`) does not replace; their passages stay as they were cut and
        their vectors are reused when the model is the same, else embedded again. Then fold
        everything into a checkpoint."""
        end = self._carry_written(seen, keep_written, encoder)
        self.progress = self.build_progress
        self.compact()
        return end

    def _carry_written(self, seen: set[str], keep: bool, encoder: TextEncoder) -> BuildEnd:
        previous = read_manifest_if_any(self.out)
        if previous is None:
            return BuildEnd()
        kept, dropped, replaced = [], [], []
        same_model = previous.vectors_key == self.manifest.vectors_key
        # the build holds the index's lock: nothing writes the published generation meanwhile
        try:
            store = PassageStore(Path(self.out).resolve())
        except sqlite3.DatabaseError as exc:
            raise IndexCorrupt(
                f"the documents written to the index at {self.out} since its build cannot be read "
                f"({exc}), so this build would lose them; restore a backup, or build with --drop-written"
            ) from exc
        try:
            for group, vectors in store.written_documents(CARRY_GROUP):
                replaced += [doc.doc_id for doc, _ in group if doc.doc_id in seen]
                carried = [(doc, passages) for doc, passages in group if doc.doc_id not in seen]
                if not keep:
                    dropped += [doc.doc_id for doc, _ in carried]
                    continue
                if carried:
                    # the group's stored vectors are all there is to reuse, whichever passages ask
                    stored = (lambda _passages, vectors=vectors: vector_arrays(vectors)) if same_model else None
                    self.write(prepare_chunked(carried, encoder, stored), compact=False)
                    kept += [doc.doc_id for doc, _ in carried]
        finally:
            store.close()
        return BuildEnd(kept=tuple(kept), dropped=tuple(dropped), replaced=tuple(replaced))


@contextmanager
def building(out: Path, manifest: Manifest, progress: bool = False) -> Iterator[GenerationBuild]:
    """A build of a new generation for `out`, published there when the block completes; on any
    exception nothing of it stays and the published index is untouched."""
    out = Path(out)
    version = previous_version(out)
    with refused_when_disk_full("the build", out.parent), staging_directory(out) as staging:
        create_generation(staging, manifest, version)
        writer = GenerationBuild(staging, manifest, out, progress)
        try:
            writer.compact(force=True)
            yield writer
        finally:
            writer.close()


def _publish(siblings: _Siblings, ledger: dict[str, list[str]], staging: Path, token: str) -> None:
    out, parent = siblings.out, siblings.parent
    generation = parent / siblings.name("gen", token)
    link = parent / siblings.name("link", token)
    fsync_tree(staging)
    ledger["generations"].append(generation.name)
    try:
        siblings.write_ledger(ledger)  # fsyncs the parent too
        os.rename(staging, generation)
        ledger["staging"].remove(staging.name)
        previous = os.readlink(out) if out.is_symlink() else None
        os.symlink(generation.name, link)
        fsync_directory(parent)
        os.replace(link, out)
        fsync_directory(parent)
    except BaseException:  # not published: nothing of it stays, and the ledger does not name it
        if not (out.is_symlink() and os.readlink(out) == generation.name):
            link.unlink(missing_ok=True)
            shutil.rmtree(generation, ignore_errors=True)
            ledger["generations"].remove(generation.name)
            try:
                siblings.write_ledger(ledger)
            except OSError:
                pass  # the next build drops the name: its directory is gone
        raise
    # the previous generation stays: a running server may still be reading it
    siblings.remove_recorded(ledger, "generations", keep={generation.name, Path(previous).name if previous else ""})
