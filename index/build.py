"""The indexing pipeline: files -> documents -> passages -> vectors -> a published index directory."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .backend import FaissBackend, IndexPlan
from .chunk import Passage, chunk_document
from .embed import TextEncoder
from .ingest import IngestError, find_files, fingerprint, read_documents
from .lexical import AccentVocabulary, LexicalIndex
from .passage_store import PassageWriter
from .store import Manifest, previous_version, read_manifest_if_any, staging_directory

OVERLAP_SENTENCES = 1
# Paragraphs longer than this many tokens are split into sentence windows: shorter passages keep
# specific facts (numbers, names) from being averaged away (seed dev set: Hit@5 13/15 at 256).
PASSAGE_TOKENS = 256
# Bumped when cleaning or chunking changes what passages a corpus yields, so old indexes count as stale.
PIPELINE_VERSION = 2
# Passages are embedded in groups this size so the progress bar moves and memory stays flat.
EMBED_GROUP = 256


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
    batch_size: int = 32,
    passage_tokens: int = PASSAGE_TOKENS,
    memory_saving: bool = False,
    progress: bool = True,
) -> Manifest:
    """Index every supported file under `paths` into `out`. The previous index at `out` stays
    intact and servable until the new one is complete."""
    started = time.perf_counter()
    files = find_files(paths)
    if not files:
        raise IngestError(f"no .txt, .md, .html or .jsonl files under {', '.join(map(str, paths))}")
    max_tokens = min(passage_tokens, encoder.max_tokens)
    with staging_directory(out) as staging:
        writer = PassageWriter(staging)
        passages: list[Passage] = []
        documents = 0
        for doc in tqdm(read_documents(files), desc="reading", unit="doc", disable=not progress):
            writer.add_document(doc)
            passages.extend(chunk_document(doc, encoder.count_tokens, max_tokens, OVERLAP_SENTENCES))
            documents += 1
        if not passages:
            raise IngestError("the input has no text to index")
        writer.add_passages(passages)
        writer.close()

        int_ids = np.array([p.int_id for p in passages], dtype=np.int64)
        texts = [p.embedding_text for p in passages]
        lexical = LexicalIndex.build(texts, int_ids, staging, progress=progress)
        AccentVocabulary.count(texts, progress=progress).save(staging)

        embedded = np.empty((len(passages), encoder.dim), dtype=np.float32)
        # longest first across the whole corpus, so each batch pads to a similar length
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        with tqdm(total=len(passages), desc="embedding", unit="passage", disable=not progress) as bar:
            for start in range(0, len(order), EMBED_GROUP):
                group = order[start : start + EMBED_GROUP]
                embedded[group] = encoder.encode_passages([texts[i] for i in group], batch_size=batch_size)
                bar.update(len(group))
        vectors = FaissBackend.build(int_ids, embedded, IndexPlan.for_size(len(passages), memory_saving))
        vectors.save(staging)

        manifest = Manifest(
            model=encoder.model_id,
            dimension=encoder.dim,
            prompts=dict(getattr(encoder, "prompts", {})),
            passages=len(passages),
            documents=documents,
            corpus_fingerprint=fingerprint(files),
            backend=vectors.describe(),
            lexical=lexical.describe(),
            chunking={**_chunk_settings(passage_tokens), "max_tokens": max_tokens},
            encoder={"precision": getattr(encoder, "precision", None)},
            build_seconds=round(time.perf_counter() - started, 3),
            version=previous_version(out) + 1,
        )
        manifest.write(staging)
    return manifest
