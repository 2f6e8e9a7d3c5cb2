"""The indexing pipeline: files -> documents -> passages -> vectors -> a published index directory."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from tqdm import tqdm

from index.encode.embed import TextEncoder
from index.ingest.document import Document, IngestError, shard_of
from index.ingest.files import InputFile, Reading, count_documents, find_files, fingerprint, read_documents
from index.ingest.tables import ANY_COLUMNS, Columns
from index.prepare import prepare
from index.store.analysis import describe as describe_lexical
from index.store.base import Commit, IndexWriter, Manifest, WriteResult
from index.store.location import IndexLocation, building_at, manifest_at, writing_at

OVERLAP_SENTENCES = 1
# Paragraphs longer than this many tokens are split into sentence windows: shorter passages keep
# specific facts (numbers, names) from being averaged away (seed dev set: Hit@5 13/15 at 256).
PASSAGE_TOKENS = 256
# Bumped when cleaning or chunking changes what passages a corpus yields, so old indexes count as stale.
PIPELINE_VERSION = 3  # 3: runs of text too long for a passage without spaces are cut
# A build reads, embeds and commits this many documents at a time, so its memory does not grow
# with the corpus (a million passages: the vectors alone are 1.5 GB).
BUILD_GROUP = 500


def is_current(
    paths: Iterable[Path],
    location: IndexLocation,
    model_id: str,
    precision: str | None = None,
    passage_tokens: int = PASSAGE_TOKENS,
) -> bool:
    """True when `location` already indexes exactly these files with this model (at this
    precision, when given) and chunking."""
    manifest = manifest_at(location)
    return (
        manifest is not None
        and manifest.model == model_id
        and (precision is None or manifest.encoder.get("precision") == precision)
        and all(manifest.chunking.get(key) == value for key, value in _chunk_settings(passage_tokens).items())
        and manifest.corpus_fingerprint == fingerprint(find_files(paths))
    )


def _read(
    files: list[InputFile],
    reading: Reading,
    strict: bool,
    origin: str = "build",
    columns: Columns = ANY_COLUMNS,
    **options,
) -> Iterator[Document]:
    """The documents of `files`; at the end an IngestError when nothing could be read, or, when
    `strict`, when anything was skipped (raised inside a build or write, it leaves nothing written)."""
    yield from read_documents(files, reading, origin=origin, columns=columns, **options)
    if strict and reading.skipped:
        raise IngestError(f"{len(reading.skipped)} skipped and --strict: nothing was written")
    if not reading.files:
        raise IngestError("nothing could be read (see what was skipped, and why)")


def _chunk_settings(passage_tokens: int) -> dict:
    return {"passage_tokens": passage_tokens, "overlap_sentences": OVERLAP_SENTENCES, "pipeline": PIPELINE_VERSION}


@dataclass(frozen=True)
class Built:
    manifest: Manifest
    commit: Commit  # the build's commits summed
    written: int  # documents of the input written
    skipped: int  # ... and skipped, already in the index unchanged (Milvus, a shard run again)
    deleted: int  # documents no longer in the input, deleted (Milvus: the collection is written in place)
    kept: tuple[str, ...]  # documents written since the last build (`semsearch add`, the API), carried over
    dropped: tuple[str, ...]  # ... or dropped, when asked to
    replaced: tuple[str, ...]  # ... or replaced by a document of the same id in the input


def build_index(
    paths: Iterable[Path],
    location: IndexLocation,
    encoder: TextEncoder,
    passage_tokens: int = PASSAGE_TOKENS,
    memory_saving: bool = False,
    progress: bool = True,
    keep_written: bool = True,
    shard: tuple[int, int] = (0, 1),
    group: int = BUILD_GROUP,
    reading: Reading | None = None,
    strict: bool = False,
    columns: Columns = ANY_COLUMNS,
) -> Built:
    """Index every file under `paths` into `location` (what was read and skipped goes into
    `reading`). A directory gets a new generation, and the index published there stays intact and
    servable until it is complete; Milvus is written in place, by `shard` (K of N processes). The
    documents written since the last build are kept, unless not `keep_written`."""
    files = find_files(paths)
    return build_from_documents(
        _read(files, reading if reading is not None else Reading(), strict, columns=columns),
        location,
        encoder,
        fingerprint(files),
        passage_tokens,
        memory_saving,
        progress,
        total=count_documents(files) if progress else None,
        keep_written=keep_written,
        shard=shard,
        group=group,
    )


def build_from_documents(
    documents: Iterable[Document],
    location: IndexLocation,
    encoder: TextEncoder,
    corpus_fingerprint: str = "",
    passage_tokens: int = PASSAGE_TOKENS,
    memory_saving: bool = False,
    progress: bool = True,
    total: int | None = None,
    keep_written: bool = True,
    shard: tuple[int, int] = (0, 1),
    group: int = BUILD_GROUP,
) -> Built:
    """`build_index` of `documents` (read as they come, `group` at a time, each group one
    commit; `total`, when known, gives the progress bar its end and an ETA)."""
    manifest = new_manifest(encoder, corpus_fingerprint, passage_tokens, memory_saving)
    part, shards = shard
    commits: list[Commit] = []
    seen: set[str] = set()
    read = written = skipped = 0
    with building_at(location, manifest, progress, shard) as build:
        # one bar for the whole build rather than one per group
        with tqdm(
            total=total,
            desc=f"indexing shard {part + 1}/{shards}" if shards > 1 else "indexing",
            unit="doc",
            disable=not progress,
            smoothing=0.05,
        ) as bar:
            for documents_read in _groups(documents, group):
                read += len(documents_read)
                mine = [doc for doc in documents_read if shard_of(doc.doc_id, shards) == part]
                seen.update(doc.doc_id for doc in mine)
                done = build.committed([doc.doc_id for doc in mine])
                # a document's fingerprint hashes its whole text: only for ids the index holds
                todo = [doc for doc in mine if doc.doc_id not in done or done[doc.doc_id] != doc.fingerprint()]
                if todo:
                    prepared = prepare(todo, encoder, manifest.chunking, build.stored_vectors, cores=build.threads)
                    commits.append(build.write(prepared, compact=False).commit)
                written, skipped = written + len(todo), skipped + len(mine) - len(todo)
                bar.update(len(documents_read))
                bar.set_postfix(passages=sum(c.added for c in commits), skipped=skipped, refresh=False)
            bar.total = bar.n  # documents without text were counted but never came
        if not read:
            raise IngestError("the input has no text to index")
        end = build.finish(seen, keep_written, encoder)
    summary = Commit(
        version=commits[-1].version if commits else 0,
        added=sum(c.added for c in commits),
        removed=sum(c.removed for c in commits),
        documents=tuple(d for c in commits for d in c.documents),
    )
    return Built(manifest, summary, written, skipped, end.deleted, end.kept, end.dropped, end.replaced)


def new_manifest(
    encoder: TextEncoder,
    corpus_fingerprint: str = "",
    passage_tokens: int = PASSAGE_TOKENS,
    memory_saving: bool = False,
) -> Manifest:
    return Manifest(
        model=encoder.model_id,
        dimension=encoder.dim,
        prompts=dict(getattr(encoder, "prompts", {})),
        corpus_fingerprint=corpus_fingerprint,
        lexical=describe_lexical(),
        chunking={**_chunk_settings(passage_tokens), "max_tokens": min(passage_tokens, encoder.max_tokens)},
        encoder={"precision": getattr(encoder, "precision", None)},
        memory_saving=memory_saving,
    )


def _groups(items: Iterable[Document], size: int) -> Iterator[list[Document]]:
    iterator = iter(items)
    while group := list(islice(iterator, size)):
        yield group


def write_documents(
    writer: IndexWriter,
    documents: Sequence[Document],
    encoder: TextEncoder,
    delete: Iterable[str] = (),
    progress: bool = False,
    compact: bool = True,
) -> WriteResult:
    """Add or replace `documents` and delete the documents `delete` names, as one commit of `writer`."""
    prepared = prepare(documents, encoder, writer.manifest.chunking, writer.stored_vectors, progress, writer.threads)
    return writer.write(prepared, delete, compact)


def add_files(
    paths: Iterable[Path],
    location: IndexLocation,
    encoder: TextEncoder,
    progress: bool = True,
    reading: Reading | None = None,
    strict: bool = False,
    columns: Columns = ANY_COLUMNS,
) -> WriteResult:
    """Add the documents in `paths` to the index at `location`, replacing documents with the same ids."""
    reading = reading if reading is not None else Reading()
    documents = list(_read(find_files(paths), reading, strict, origin="add", empty=True, columns=columns))
    with writing_at(location, encoder.model_id, progress) as writer:
        return write_documents(writer, documents, encoder, progress=progress)


@dataclass(frozen=True)
class Synced:
    written: int  # documents new or changed in the folder, written
    unchanged: int
    deleted: int  # documents of files gone from the folder
    embedded: int  # passages that needed the encoder
    version: int


def sync_folder(
    folder: Path,
    location: IndexLocation,
    encoder: TextEncoder,
    progress: bool = True,
    reading: Reading | None = None,
    strict: bool = False,
    columns: Columns = ANY_COLUMNS,
    group: int = BUILD_GROUP,
) -> Synced:
    """Make the documents the index read from files mirror `folder`: the folder's new and changed
    documents are written (their unchanged paragraphs keep their vectors), those of files gone
    from it deleted; documents written by `semsearch add` or over HTTP are left alone, and so are
    those of a file that could not be read this time."""
    reading = reading if reading is not None else Reading()
    files = find_files([folder])
    written = unchanged = embedded = 0
    seen: set[str] = set()
    with writing_at(location, encoder.model_id, progress) as writer:
        stored = writer.read_files()
        version = 0
        with tqdm(total=len(files), desc="syncing", unit="doc", disable=not progress) as bar:
            for documents in _groups(_read(files, reading, strict, columns=columns), group):
                seen.update(doc.doc_id for doc in documents)
                todo = [doc for doc in documents if stored.get(doc.doc_id, (None,))[0] != doc.fingerprint()]
                if todo:
                    result = write_documents(writer, todo, encoder, compact=False)
                    embedded, version = embedded + result.embedded, result.commit.version
                written, unchanged = written + len(todo), unchanged + len(documents) - len(todo)
                bar.update(len(documents))
        gone = [doc_id for doc_id, (_, path) in stored.items() if doc_id not in seen and path not in reading.unread]
        if gone:
            version = writer.write(delete=gone).commit.version
        elif written:
            writer.compact(force=False)
    return Synced(written, unchanged, len(gone), embedded, version)
