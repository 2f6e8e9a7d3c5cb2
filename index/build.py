"""The indexing pipeline: files -> documents -> passages -> vectors -> a published index directory."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from tqdm import tqdm

from index.encode.embed import TextEncoder
from index.ingest.files import Document, IngestError, count_documents, find_files, fingerprint, read_documents
from index.store.integrity import refused_when_disk_full
from index.store.lexical import LexicalIndex
from index.store.live import IndexWriter, WriteResult
from index.store.location import IndexLocation, writing_at
from index.store.milvus import MilvusTarget, MilvusWriter
from index.store.passages import Commit, PassageStore
from index.store.publish import IndexCorrupt, Manifest, previous_version, read_manifest_if_any, staging_directory, writing

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
    paths: Iterable[Path], out: Path, model_id: str, precision: str | None = None, passage_tokens: int = PASSAGE_TOKENS
) -> bool:
    """True when `out` already indexes exactly these files with this model (at this precision, when
    given) and chunking."""
    manifest = read_manifest_if_any(out)
    return (
        manifest is not None
        and manifest.model == model_id
        and (precision is None or manifest.encoder.get("precision") == precision)
        and all(manifest.chunking.get(key) == value for key, value in _chunk_settings(passage_tokens).items())
        and manifest.corpus_fingerprint == fingerprint(find_files(paths))
    )


def input_files(paths: Iterable[Path]) -> list[Path]:
    """The files a build or an add reads; none is an error."""
    paths = list(paths)
    files = find_files(paths)
    if not files:
        raise IngestError(f"no .txt, .md, .html or .jsonl files under {', '.join(map(str, paths))}")
    return files


def _chunk_settings(passage_tokens: int) -> dict:
    return {"passage_tokens": passage_tokens, "overlap_sentences": OVERLAP_SENTENCES, "pipeline": PIPELINE_VERSION}


@dataclass(frozen=True)
class Built:
    manifest: Manifest
    commit: Commit  # the build's commits summed
    kept: tuple[str, ...]  # documents written since the last build (`semsearch add`, the API), carried over
    dropped: tuple[str, ...]  # ... or dropped, when asked to
    replaced: tuple[str, ...]  # ... or replaced by a document of the same id in the input


def build_index(
    paths: Iterable[Path],
    out: Path,
    encoder: TextEncoder,
    passage_tokens: int = PASSAGE_TOKENS,
    memory_saving: bool = False,
    progress: bool = True,
    keep_written: bool = True,
) -> Built:
    """Index every supported file under `paths` into a new generation at `out`. The previous
    index at `out` stays intact and servable until the new one is complete; the documents
    written to it since its build are carried into the new one, unless not `keep_written`."""
    files = input_files(paths)
    return build_from_documents(read_documents(files), out, encoder, fingerprint(files), passage_tokens, memory_saving,
                                progress, total=count_documents(files) if progress else None, keep_written=keep_written)


def build_from_documents(
    documents: Iterable[Document],
    out: Path,
    encoder: TextEncoder,
    corpus_fingerprint: str = "",
    passage_tokens: int = PASSAGE_TOKENS,
    memory_saving: bool = False,
    progress: bool = True,
    total: int | None = None,
    keep_written: bool = True,
) -> Built:
    """A new generation at `out` holding `documents` (read as they come, BUILD_GROUP at a time,
    each group one commit; `total`, when known, gives the progress bar its end and an ETA), and
    the documents written to the previous generation since its build (see build_index)."""
    manifest = new_manifest(encoder, corpus_fingerprint, passage_tokens, memory_saving)
    version = previous_version(out)
    with refused_when_disk_full("the build", Path(out).parent), staging_directory(out) as staging:
        # one bar for the whole build rather than one per group
        writer = IndexWriter.create(staging, manifest, encoder, progress=False, version=version)
        commits: list[Commit] = []
        read: set[str] = set()
        try:
            with tqdm(total=total, desc="indexing", unit="doc", disable=not progress, smoothing=0.05) as bar:
                for group in _groups(documents, BUILD_GROUP):
                    commits.append(writer.write(group, compact=False).commit)
                    read.update(doc.doc_id for doc in group)
                    bar.update(len(group))
                    bar.set_postfix(passages=sum(c.added for c in commits), refresh=False)
                bar.total = bar.n  # documents without text were counted but never came
            if not sum(c.added for c in commits):
                raise IngestError("the input has no text to index")
            kept, dropped, replaced = _carry_written(out, writer, read, keep_written, commits)
            writer.progress = progress
            writer.compact()
        finally:
            writer.close()
    summary = Commit(version=commits[-1].version, added=sum(c.added for c in commits),
                     removed=sum(c.removed for c in commits), documents=tuple(d for c in commits for d in c.documents))
    return Built(manifest, summary, kept, dropped, replaced)


def _carry_written(out: Path, writer: IndexWriter, read: set[str], keep: bool,
                   commits: list[Commit]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Write into the new generation the documents written to the published one since its build
    that the input does not replace: (kept, dropped, replaced) ids. Their passages stay as they
    were cut; their vectors are reused when the model is the same, else embedded again."""
    previous = read_manifest_if_any(out)
    if previous is None:
        return (), (), ()
    kept, dropped, replaced = [], [], []
    same_model = _vectors_key(previous) == _vectors_key(writer.manifest)
    # the caller holds the index's lock: nothing writes the published generation meanwhile
    try:
        store = PassageStore(Path(out).resolve())
        store.record_origins()
    except sqlite3.DatabaseError as exc:
        raise IndexCorrupt(f"the documents written to the index at {out} since its build cannot be read ({exc}), "
                           "so this build would lose them; restore a backup, or build with --drop-written") from exc
    try:
        for group, vectors in store.written_documents(BUILD_GROUP):
            replaced += [doc.doc_id for doc, _ in group if doc.doc_id in read]
            carried = [(doc, passages) for doc, passages in group if doc.doc_id not in read]
            if not keep:
                dropped += [doc.doc_id for doc, _ in carried]
                continue
            if carried:
                commits.append(writer.write_chunked(carried, compact=False, known=vectors if same_model else None).commit)
                kept += [doc.doc_id for doc, _ in carried]
    finally:
        store.close()
    return tuple(kept), tuple(dropped), tuple(replaced)


def _vectors_key(manifest: Manifest) -> tuple:
    """What the stored vectors depend on."""
    return manifest.model, manifest.dimension, manifest.prompts, manifest.encoder.get("precision")


def new_manifest(encoder: TextEncoder, corpus_fingerprint: str = "", passage_tokens: int = PASSAGE_TOKENS,
                 memory_saving: bool = False) -> Manifest:
    return Manifest(
        model=encoder.model_id,
        dimension=encoder.dim,
        prompts=dict(getattr(encoder, "prompts", {})),
        corpus_fingerprint=corpus_fingerprint,
        lexical=LexicalIndex.describe(),
        chunking={**_chunk_settings(passage_tokens), "max_tokens": min(passage_tokens, encoder.max_tokens)},
        encoder={"precision": getattr(encoder, "precision", None)},
        memory_saving=memory_saving,
    )


def build_milvus(paths: Iterable[Path], target: MilvusTarget, encoder: TextEncoder, passage_tokens: int = PASSAGE_TOKENS,
                 shard: tuple[int, int] = (0, 1), progress: bool = True, group: int = BUILD_GROUP,
                 keep_written: bool = True) -> tuple[int, int, int]:
    """Index the files under `paths` into the Milvus collection `target` (created if absent), or
    this process's `shard` (K of N) of them: documents already committed unchanged are skipped,
    and documents of this shard no longer in the input are deleted, except those written since
    (`semsearch add`, the API) unless not `keep_written`. Returns (written, skipped, deleted)
    documents."""
    files = input_files(paths)
    manifest = new_manifest(encoder, fingerprint(files), passage_tokens)
    writer = MilvusWriter.create(target, manifest, encoder, progress,
                                 writer=f"shard-{shard[0]}-of-{shard[1]}" if shard[1] > 1 else None)
    try:
        return writer.build(_groups(read_documents(files), group), shard, count_documents(files) if progress else None,
                            keep_written)
    finally:
        writer.close()


def _groups(items: Iterable[Document], size: int) -> Iterator[list[Document]]:
    iterator = iter(items)
    while group := list(islice(iterator, size)):
        yield group


def add_files(paths: Iterable[Path], location: IndexLocation, encoder: TextEncoder, progress: bool = True) -> WriteResult:
    """Add the documents in `paths` to the index at `location`, replacing documents with the same ids."""
    files = input_files(paths)
    documents = list(read_documents(files, origin="add", empty=True))
    with writing_at(location, encoder, progress) as writer:
        return writer.write(documents)
