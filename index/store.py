"""The index directory: vectors, passages and a manifest, written so that a crash never leaves a
half-written index where a reader would look.

`out` (say `var/index`) is a symbolic link to a complete generation directory next to it. A build
writes a staging directory, renames it to a generation name when everything is on disk, and then
atomically replaces the link. Readers either see the old generation or the new one. The previous
generation is kept (a running server may still read it); older ones are removed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .backend import FaissBackend, IndexPlan, VectorBackend
from .lexical import AccentVocabulary, LexicalIndex
from .passage_store import PassageStore

FORMAT_VERSION = 2
MANIFEST = "manifest.json"


class IndexProblem(RuntimeError):
    """Base for index problems users can act on."""


class IndexNotFound(IndexProblem):
    pass


class IndexCorrupt(IndexProblem):
    pass


class ModelMismatch(IndexProblem):
    pass


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

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        path = Path(directory) / MANIFEST
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise IndexNotFound(f"no index at {directory} (build one with `semsearch index`)") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise IndexCorrupt(f"{path} is not valid JSON: {exc}") from exc
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
        (Path(directory) / MANIFEST).write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False))


@dataclass
class LoadedIndex:
    directory: Path
    manifest: Manifest
    vectors: VectorBackend
    lexical: LexicalIndex
    accents: AccentVocabulary
    passages: PassageStore


def open_index(out: Path, model: str | None = None) -> LoadedIndex:
    """Open the index at `out`. `model`, when given, must be the model that built it."""
    directory = Path(out).resolve()
    manifest = Manifest.read(directory)
    if model is not None and model != manifest.model:
        raise ModelMismatch(
            f"the index at {out} was built with model {manifest.model!r}, not {model!r}; "
            f"search it with that model or rebuild it with `semsearch index --model {model}`"
        )
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


def read_manifest_if_any(out: Path) -> Manifest | None:
    try:
        return Manifest.read(Path(out))
    except IndexProblem:
        return None


@contextmanager
def staging_directory(out: Path):
    """Yield an empty directory to write a new index into; publish it at `out` only if the block
    completes. On any exception the staging directory is removed and `out` is untouched."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(out)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    (staging / ".pid").write_text(str(os.getpid()))
    try:
        yield staging
        _publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remove_abandoned_staging(out: Path) -> None:
    """Staging directories of builds that crashed (their process is gone)."""
    for path in out.parent.glob(f".{out.name}.staging-*"):
        if not _is_being_written(path):
            shutil.rmtree(path, ignore_errors=True)


def _is_being_written(path: Path) -> bool:
    marker = path / ".pid"
    try:
        os.kill(int(marker.read_text()), 0)
        return True
    except (OSError, ValueError):
        return False


def _publish(staging: Path, out: Path) -> None:
    generation = out.parent / f".{out.name}.{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{staging.name[-6:]}"
    _fsync_tree(staging)
    staging.chmod(0o755)  # mkdtemp makes it private; the index is as readable as its parent
    os.rename(staging, generation)
    previous = out.resolve() if out.is_symlink() else None
    if out.exists() and not out.is_symlink():
        # an index directory from before links were used: keep it as the previous generation
        legacy = out.parent / f".{out.name}.legacy-{os.getpid()}"
        os.rename(out, legacy)
        previous = legacy
    link = out.parent / f".{out.name}.link-{os.getpid()}"
    link.unlink(missing_ok=True)
    os.symlink(generation.name, link)
    os.replace(link, out)
    for old in out.parent.glob(f".{out.name}.*"):
        if old.is_dir() and old not in (generation, previous) and ".staging-" not in old.name:
            shutil.rmtree(old, ignore_errors=True)


def _fsync_tree(directory: Path) -> None:
    for path in directory.iterdir():
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

