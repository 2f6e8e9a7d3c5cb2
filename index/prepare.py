"""Documents -> passages -> vectors: what a write hands the store, ready-made. Both backends'
writers receive the same `PreparedDocument`s, so cutting and embedding happen in one place, and
passages a store holds unchanged (same id, same context) keep their vectors instead of being
embedded again."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from index.encode.embed import TextEncoder, limited_cores
from index.encode.evidence import pack_vectors
from index.ingest.chunk import Passage, chunk_document
from index.ingest.document import Document

EMBED_GROUP = 256

# A store's vectors of those of `passages` it holds unchanged: {passage id: (vector, packed
# sentence vectors)}.
StoredVectors = Callable[[Sequence[Passage]], Mapping[str, tuple[np.ndarray, bytes]]]


@dataclass(frozen=True)
class PreparedDocument:
    document: Document
    passages: list[Passage]
    vectors: np.ndarray  # one per passage
    sentences: list[bytes]  # each passage's sentence vectors, packed
    embedded: int  # passages that needed the encoder


def chunk(document: Document, encoder: TextEncoder, chunking: Mapping) -> list[Passage]:
    """`document`'s passages, cut as an index's manifest says (its `chunking`)."""
    return list(chunk_document(document, encoder.count_tokens, chunking["max_tokens"], chunking["overlap_sentences"]))


def prepare(
    documents: Iterable[Document],
    encoder: TextEncoder,
    chunking: Mapping,
    stored: StoredVectors | None = None,
    progress: bool = False,
    cores: int | None = None,
) -> list[PreparedDocument]:
    """`documents` cut and embedded (on at most `cores` cores); passages `stored` holds unchanged
    are not embedded again."""
    return prepare_chunked(
        [(doc, chunk(doc, encoder, chunking)) for doc in documents], encoder, stored, progress, cores
    )


def prepare_chunked(
    chunked: Sequence[tuple[Document, list[Passage]]],
    encoder: TextEncoder,
    stored: StoredVectors | None = None,
    progress: bool = False,
    cores: int | None = None,
) -> list[PreparedDocument]:
    """`prepare` of documents already cut into passages."""
    passages = [p for _, doc_passages in chunked for p in doc_passages]
    known = dict(stored(passages)) if stored and passages else {}
    vectors = np.empty((len(passages), encoder.dim), np.float32)
    sentences: list[bytes] = [b""] * len(passages)
    todo = []
    for i, passage in enumerate(passages):
        if passage.id in known:
            vectors[i], sentences[i] = known[passage.id]
        else:
            todo.append(i)
    texts = {i: passages[i].sentences for i in todo}
    with limited_cores(encoder, cores):
        vectors[todo] = _encoded([passages[i].embedding_text for i in todo], encoder, "embedding passages", progress)
        encoded = _encoded([sentence for i in todo for sentence in texts[i]], encoder, "embedding sentences", progress)
    start = 0
    for i in todo:
        sentences[i] = pack_vectors(encoded[start : start + len(texts[i])])
        start += len(texts[i])
    prepared, first = [], 0
    needed = set(todo)
    for doc, doc_passages in chunked:
        end = first + len(doc_passages)
        prepared.append(
            PreparedDocument(
                doc,
                doc_passages,
                vectors[first:end],
                sentences[first:end],
                sum(1 for i in range(first, end) if i in needed),
            )
        )
        first = end
    return prepared


def _encoded(texts: list[str], encoder: TextEncoder, what: str, progress: bool) -> np.ndarray:
    vectors = np.empty((len(texts), encoder.dim), np.float32)
    # longest first, so each batch pads to a similar length
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    with tqdm(total=len(texts), desc=what, unit="text", disable=not progress or not texts) as bar:
        for start in range(0, len(order), EMBED_GROUP):
            group = order[start : start + EMBED_GROUP]
            vectors[group] = encoder.encode_passages([texts[i] for i in group])
            bar.update(len(group))
    return vectors
