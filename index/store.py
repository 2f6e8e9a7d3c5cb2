"""The index directory: vectors, passages and a manifest, written so that a crash never leaves a
half-written index where a reader would look, and so that nothing a build did not create is ever
moved or deleted.

`out` (say `var/index`) is a symbolic link to a complete generation directory next to it:

    var/index -> .index.gen-<token>     the published index
    var/.index.gen-<token>              generations: the current one and the previous one
    var/.index.staging-<token>          a build in progress
    var/.index.lock                     held (flock) by the one build writing `out`
    var/.index.ledger.json              every staging and generation name a build created

A build takes the lock, writes a staging directory, fsyncs it, renames it to a generation and
atomically replaces the link. Readers see the old generation or the new one. Clean-up removes
only names recorded in the ledger, each with a random token its build chose; `out` itself must be
absent or already such a link, and anything else there is refused.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .backend import FaissBackend, IndexPlan, VectorBackend
from .integrity import DamagedFiles, check_files, fsync_directory, fsync_tree, inventory
from .lexical import AccentVocabulary, LexicalIndex
from .passage_store import PassageStore

FORMAT_VERSION = 4
MANIFEST = "manifest.json"


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


@dataclass
class Manifest:
    model: str
    dimension: int
    prompts: dict[str, str]
    passages: int
    documents: int
    corpus_fingerprint: str
    backend: dict
    lexical: dict
    chunking: dict
    encoder: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    build_seconds: float = 0.0
    version: int = 1  # one more than the index it replaced
    files: dict[str, dict] = field(default_factory=dict)  # integrity.inventory of every other file

    @classmethod
    def read(cls, directory: Path) -> Manifest:
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
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            raise IndexCorrupt(
                f"{path}: index format {data.get('format_version') if isinstance(data, dict) else '?'} "
                f"is not {FORMAT_VERSION}; rebuild it with `semsearch index`"
            )
        try:
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except TypeError as exc:
            raise IndexCorrupt(f"{path}: {exc}") from exc

    def write(self, directory: Path) -> None:
        """Records every file already in `directory`, so write the manifest last."""
        self.files = inventory(directory, skip=(MANIFEST,))
        (Path(directory) / MANIFEST).write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False))


@dataclass
class LoadedIndex:
    directory: Path
    manifest: Manifest
    vectors: VectorBackend
    lexical: LexicalIndex
    accents: AccentVocabulary
    passages: PassageStore

    def close(self) -> None:
        self.passages.close()


def open_index(out: Path, model: str | None = None) -> LoadedIndex:
    """Open the index at `out`, refusing one whose files differ from its manifest. `model`, when
    given, must be the model that built it."""
    directory = Path(out).resolve()
    manifest = Manifest.read(directory)
    if model is not None and model != manifest.model:
        raise ModelMismatch(
            f"the index at {out} was built with model {manifest.model!r}, not {model!r}; "
            f"search it with that model or rebuild it with `semsearch index --model {model}`"
        )
    try:
        check_files(directory, manifest.files)
    except DamagedFiles as exc:
        raise IndexCorrupt(f"the index at {out} is damaged: {exc}; rebuild it with `semsearch index`") from exc
    try:
        vectors = FaissBackend.load(directory, manifest.dimension, IndexPlan.from_description(manifest.backend))
        lexical = LexicalIndex.load(directory)
        accents = AccentVocabulary.load(directory)
        passages = PassageStore(directory)
    except Exception as exc:  # faiss raises RuntimeError, sqlite DatabaseError, ...
        raise IndexCorrupt(f"the index at {out} cannot be read: {exc}") from exc
    if not len(vectors) == len(lexical) == manifest.passages:
        raise IndexCorrupt(
            f"the index at {out} holds {len(vectors)} vectors and {len(lexical)} lexical entries, "
            f"its manifest says {manifest.passages} passages"
        )
    return LoadedIndex(directory, manifest, vectors, lexical, accents, passages)


def verify_index(out: Path) -> list[str]:
    """The full check behind `semsearch verify`: every checksum, SQLite's own integrity check,
    and row counts and ids agreeing across the parts. Lines describing what was checked; raises
    IndexCorrupt on the first failure."""
    index = open_index(out)
    try:
        manifest, store = index.manifest, index.passages
        checked = [f"{len(manifest.files)} files match their sizes and checksums"]
        try:
            integrity = store.integrity_check()
            rows = store.all_int_ids()
            documents = store.document_count()
        except sqlite3.DatabaseError as exc:
            raise IndexCorrupt(f"passages.sqlite: {exc}") from exc
        if integrity != ["ok"]:
            raise IndexCorrupt("passages.sqlite fails SQLite's integrity check: " + "; ".join(integrity[:5]))
        checked.append("passages.sqlite passes SQLite's integrity check")
        if len(rows) != manifest.passages or documents != manifest.documents:
            raise IndexCorrupt(
                f"passages.sqlite holds {len(rows)} passages of {documents} documents, "
                f"the manifest says {manifest.passages} of {manifest.documents}"
            )
        if set(rows) != set(index.lexical.ids().tolist()):
            raise IndexCorrupt("the lexical index and passages.sqlite hold different passage ids")
        if set(rows) != set(index.vectors.ids().tolist()):
            raise IndexCorrupt("the vector index and passages.sqlite hold different passage ids")
        checked.append(f"{manifest.passages} passages of {manifest.documents} documents in every part, with the same ids")
        return checked
    finally:
        index.close()


def read_manifest_if_any(out: Path) -> Manifest | None:
    try:
        return Manifest.read(Path(out))
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
def index_lock(out: Path) -> Iterator[None]:
    """Held for a whole build-and-publish (and, later, a write): a second one fails at once."""
    siblings = _Siblings(Path(out))
    siblings.parent.mkdir(parents=True, exist_ok=True)
    with open(siblings.lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise IndexBusy(f"another semsearch process (pid {holder}) is writing {out}; try again when it is done") from None
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
    manifest = read_manifest_if_any(out)
    return manifest.version if manifest else 0


def _publish(siblings: _Siblings, ledger: dict[str, list[str]], staging: Path, token: str) -> None:
    out, parent = siblings.out, siblings.parent
    generation = parent / siblings.name("gen", token)
    fsync_tree(staging)
    ledger["generations"].append(generation.name)
    siblings.write_ledger(ledger)  # fsyncs the parent too
    os.rename(staging, generation)
    ledger["staging"].remove(staging.name)
    previous = os.readlink(out) if out.is_symlink() else None
    link = parent / siblings.name("link", token)
    os.symlink(generation.name, link)
    fsync_directory(parent)
    os.replace(link, out)
    fsync_directory(parent)
    # the previous generation stays: a running server may still be reading it
    siblings.remove_recorded(ledger, "generations", keep={generation.name, Path(previous).name if previous else ""})
