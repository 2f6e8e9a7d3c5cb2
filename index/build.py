"""The indexing pipeline: files -> documents -> passages -> vectors -> a published index directory."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

from tqdm import tqdm

from index.encode.embed import TextEncoder
from index.ingest.files import Document, IngestError, count_documents, find_files, fingerprint, read_documents
from index.store.lexical import LexicalIndex
from index.store.live import IndexWriter, WriteResult
from index.store.location import IndexLocation, writing_at
from index.store.milvus import MilvusTarget, MilvusWriter
from index.store.passages import Commit
from index.store.publish import Manifest, previous_version, read_manifest_if_any, staging_directory, writing

OVERLAP_SENTENCES = 1
# Paragraphs longer than this many tokens are split into sentence windows: shorter passages keep
# specific facts (numbers, names) from being averaged away (seed dev set: Hit@5 13/15 at 256).
PASSAGE_TOKENS = 256
# Bumped when cleaning or chunking changes what passages a corpus yields, so old indexes count as stale.
PIPELINE_VERSION = 2
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


def _chunk_settings(passage_tokens: int) -> dict:
    return {"passage_tokens": passage_tokens, "overlap_sentences": OVERLAP_SENTENCES, "pipeline": PIPELINE_VERSION}


def build_index(
    paths: Iterable[Path],
    out: Path,
    encoder: TextEncoder,
    passage_tokens: int = PASSAGE_TOKENS,
    memory_saving: bool = False,
    progress: bool = True,
) -> tuple[Manifest, Commit]:
    """Index every supported file under `paths` into a new generation at `out`. The previous
    index at `out` stays intact and servable until the new one is complete."""
    files = find_files(paths)
    if not files:
        raise IngestError(f"no .txt, .md, .html or .jsonl files under {', '.join(map(str, paths))}")
    return build_from_documents(read_documents(files), out, encoder, fingerprint(files), passage_tokens, memory_saving,
                                progress, total=count_documents(files) if progress else None)


def build_from_documents(
    documents: Iterable[Document],
    out: Path,
    encoder: TextEncoder,
    corpus_fingerprint: str = "",
    passage_tokens: int = PASSAGE_TOKENS,
    memory_saving: bool = False,
    progress: bool = True,
    total: int | None = None,
) -> tuple[Manifest, Commit]:
    """A new generation at `out` holding `documents` (read as they come, BUILD_GROUP at a time,
    each group one commit; `total`, when known, gives the progress bar its end and an ETA).
    Returns the manifest and a commit summing the build's."""
    manifest = new_manifest(encoder, corpus_fingerprint, passage_tokens, memory_saving)
    version = previous_version(out)
    with staging_directory(out) as staging:
        # one bar for the whole build rather than one per group
        writer = IndexWriter.create(staging, manifest, encoder, progress=False, version=version)
        commits: list[Commit] = []
        try:
            with tqdm(total=total, desc="indexing", unit="doc", disable=not progress, smoothing=0.05) as bar:
                for group in _groups(documents, BUILD_GROUP):
                    commits.append(writer.write(group, compact=False).commit)
                    bar.update(len(group))
                    bar.set_postfix(passages=sum(c.added for c in commits), refresh=False)
                bar.total = bar.n  # documents without text were counted but never came
            if not sum(c.added for c in commits):
                raise IngestError("the input has no text to index")
            writer.progress = progress
            writer.compact()
        finally:
            writer.close()
    summary = Commit(version=commits[-1].version, added=sum(c.added for c in commits),
                     removed=sum(c.removed for c in commits), documents=tuple(d for c in commits for d in c.documents))
    return manifest, summary


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
                 shard: tuple[int, int] = (0, 1), progress: bool = True, group: int = BUILD_GROUP) -> tuple[int, int, int]:
    """Index the files under `paths` into the Milvus collection `target` (created if absent), or
    this process's `shard` (K of N) of them: documents already committed unchanged are skipped,
    and documents of this shard no longer in the input are deleted. Returns (written, skipped,
    deleted) documents."""
    files = find_files(paths)
    if not files:
        raise IngestError(f"no .txt, .md, .html or .jsonl files under {', '.join(map(str, paths))}")
    manifest = new_manifest(encoder, fingerprint(files), passage_tokens)
    writer = MilvusWriter.create(target, manifest, encoder, progress,
                                 writer=f"shard-{shard[0]}-of-{shard[1]}" if shard[1] > 1 else None)
    try:
        return writer.build(_groups(read_documents(files), group), shard, count_documents(files) if progress else None)
    finally:
        writer.close()


def _groups(items: Iterable[Document], size: int) -> Iterator[list[Document]]:
    iterator = iter(items)
    while group := list(islice(iterator, size)):
        yield group


def add_files(paths: Iterable[Path], location: IndexLocation, encoder: TextEncoder, progress: bool = True) -> WriteResult:
    """Add the documents in `paths` to the index at `location`, replacing documents with the same ids."""
    files = find_files(paths)
    if not files:
        raise IngestError(f"no .txt, .md, .html or .jsonl files under {', '.join(map(str, paths))}")
    documents = list(read_documents(files))
    with writing_at(location, encoder, progress) as writer:
        return writer.write(documents)
