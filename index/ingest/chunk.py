"""Documents -> passages: one passage per paragraph, long paragraphs split into windows that fit."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

from index.ingest.document import Document
from index.text import language_of, sentence_spans, split_sentences

TokenCounter = Callable[[str], int]


# Words of the document title put in front of each passage when it is embedded.
TITLE_CONTEXT_WORDS = 12
# Sentences embedded per passage at most (a 256-token passage has 14 on the dev sets); a passage
# of more, shorter ones has them embedded in this many runs of consecutive sentences.
MAX_SENTENCES = 32


@dataclass(frozen=True)
class Passage:
    id: str
    doc_id: str
    position: int
    heading: str | None
    text: str
    context: str = ""
    page: int | None = None  # the page of a PDF it starts on

    @property
    def int_id(self) -> int:
        return int(self.id, 16)

    @property
    def embedding_text(self) -> str:
        return embedding_text_of(self.context, self.text)

    @cached_property
    def language(self) -> str:
        """The language it is written in (ISO 639-1), which decides how its words are analysed."""
        return language_of(self.embedding_text)

    @property
    def sentences(self) -> list[str]:
        """What is embedded as the passage's sentences: each sentence alone, and again under the
        passage's context. A question usually matches one sentence; some need the title to
        (the seed articles name their subject only there), while the title in front of every
        sentence of a long article drowns them (ViNewsQA hybrid MRR@10 .830 alone, .803 under
        the title, .830 with both; ViQuAD .849, .855, .855)."""
        alone = evidence_sentences(self.text)
        return alone + [embedding_text_of(self.context, sentence) for sentence in alone] if self.context else alone


def evidence_sentences(text: str) -> list[str]:
    """A passage's sentences, at most MAX_SENTENCES of them (neighbours joined beyond that)."""
    return [" ".join(text[a:b] for a, b in group) for group in _evidence_groups(text)]


def evidence_spans(text: str) -> list[tuple[int, int]]:
    """Where each of `evidence_sentences(text)` stands in `text`."""
    return [(group[0][0], group[-1][1]) for group in _evidence_groups(text)]


def _evidence_groups(text: str) -> list[list[tuple[int, int]]]:
    spans = sentence_spans(text) or [(0, len(text))]
    if len(spans) <= MAX_SENTENCES:
        return [[span] for span in spans]
    bounds = [round(i * len(spans) / MAX_SENTENCES) for i in range(MAX_SENTENCES + 1)]
    return [spans[a:b] for a, b in zip(bounds, bounds[1:])]


def embedding_text_of(context: str, text: str) -> str:
    """What the model embeds and the lexical leg analyses: a passage with its context above it."""
    return f"{context}\n{text}" if context else text


def document_text_of(passages: Sequence[tuple[str, str]]) -> str:
    """What the lexical leg analyses of a whole document, from its (context, text) passages in
    order: the first one's context, then every passage's text."""
    return embedding_text_of(passages[0][0], "\n".join(text for _, text in passages)) if passages else ""


def passage_context(title: str, heading: str | None) -> str:
    """What a paragraph is about beyond its own words: the start of its document's title and the
    heading it sits under (on the seed dev set this lifted Hit@5 from 12 to 13 of 15)."""
    short_title = " ".join(title.split()[:TITLE_CONTEXT_WORDS])
    return " — ".join(part for part in (short_title, heading) if part)


def passage_id(doc_id: str, position: int, text: str) -> str:
    """16 hex digits of a 63-bit hash: stable for the same input, and usable as a FAISS int64 id."""
    digest = hashlib.blake2b(f"{doc_id}\x1f{position}\x1f{text}".encode(), digest_size=8).digest()
    return f"{int.from_bytes(digest, 'big') & (2**63 - 1):016x}"


def chunk_document(
    doc: Document, count_tokens: TokenCounter, max_tokens: int, overlap_sentences: int = 1
) -> Iterator[Passage]:
    heading: str | None = None
    position = 0
    for block in doc.blocks:
        if block.kind == "heading":
            heading = block.text
            continue
        context = passage_context(doc.title, heading)
        budget = max_tokens - (count_tokens(context + "\n") if context else 0)
        for window in split_to_fit(block.text, count_tokens, budget, overlap_sentences):
            yield Passage(
                passage_id(doc.doc_id, position, window), doc.doc_id, position, heading, window, context, block.page
            )
            position += 1


def split_to_fit(text: str, count_tokens: TokenCounter, budget: int, overlap_sentences: int = 1) -> list[str]:
    """`text` itself if it fits, else windows of whole sentences that fit, consecutive windows
    sharing `overlap_sentences` sentences. A sentence too long on its own is cut between words."""
    if count_tokens(text) <= budget:
        return [text]
    sentences = [piece for s in split_sentences(text) for piece in _cut_words(s, count_tokens, budget)]
    windows: list[str] = []
    start = covered = 0
    while covered < len(sentences):
        end = start + 1
        while end < len(sentences) and count_tokens(" ".join(sentences[start : end + 1])) <= budget:
            end += 1
        if end <= covered:  # the overlap left no room for a new sentence
            start = covered
            continue
        windows.append(" ".join(sentences[start:end]))
        covered = end
        start = max(end - overlap_sentences, start + 1)
    return windows


def _cut_words(sentence: str, count_tokens: TokenCounter, budget: int) -> list[str]:
    if count_tokens(sentence) <= budget:
        return [sentence]
    pieces: list[str] = []
    current: list[str] = []
    for word in (piece for whole in sentence.split() for piece in _cut_characters(whole, count_tokens, budget)):
        if current and count_tokens(" ".join([*current, word])) > budget:
            pieces.append(" ".join(current))
            current = []
        current.append(word)
    if current:
        pieces.append(" ".join(current))
    return pieces


def _cut_characters(word: str, count_tokens: TokenCounter, budget: int) -> list[str]:
    """A "word" too long on its own (a URL, a run of symbols, text without spaces) in pieces
    that fit: otherwise it would be one passage however long."""
    pieces = []
    while count_tokens(word) > budget:
        size = max(1, len(word) * budget // count_tokens(word))
        while size > 1 and count_tokens(word[:size]) > budget:
            size = size * 3 // 4
        pieces.append(word[:size])
        word = word[size:]
    return [*pieces, word] if word else pieces
