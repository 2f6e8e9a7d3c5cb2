"""PDF -> a document, by PDFium (pypdfium2): the text layer page by page, its hard-wrapped lines
joined into paragraphs (a word hyphenated at a line end joined again), running headers and
footers and page numbers dropped, and each paragraph keeping the page it starts on. A PDF
without a text layer (a scan) is an IngestError: indexing it would index nothing.

PDFium rather than pdfminer.six: on bench/readers.py's 60-page PDF it reads ~740 pages a second
against ~54, with a word-level F1 against the text written of .999 against .994 (docs/performance.md),
and it is one C++ library rather than a Python parser."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pypdfium2 as pdfium

from index.ingest.clean import Block, looks_like_heading
from index.ingest.document import Document, IngestError, document_from_lines
from index.text import normalize

# How many lines at the top and at the bottom of a page may be a running header or footer,
# and on what share of the pages a line must recur (digits aside) to be one.
_EDGE_LINES = 2
_RUNNING_SHARE = 0.5
_PAGE_NUMBER = re.compile(
    r"^[\s\-–—(\[]*((page|trang|p\.)\s*)?\d{1,5}(\s*(/|of|trên)\s*\d{1,5})?[\s\-–—)\]]*$", re.IGNORECASE
)
# A line shorter than this share of the document's usual line ends its paragraph.
_SHORT_LINE = 0.8
# Fewer visible characters a page than this, on average, is a scan without a text layer.
_MIN_CHARS_PER_PAGE = 20
_CREATED = re.compile(r"^D:(\d{4})(\d{2})(\d{2})")
_SENTENCE_ENDS = tuple(".!?…:;")
_CLOSING = '"”’»)]'
_HYPHENS = ("-", "\xad", "\u2010", "\x02")


def pdf_document(doc_id: str, file: Path, max_pages: int | None = None, **meta) -> Document:
    try:
        pdf = pdfium.PdfDocument(file)
    except pdfium.PdfiumError as exc:
        raise IngestError(f"not a readable PDF ({exc})") from exc
    try:
        if max_pages is not None and len(pdf) > max_pages:
            raise IngestError(f"{len(pdf)} pages, over the limit of {max_pages}")
        pages = [_page_lines(pdf[number]) for number in range(len(pdf))]
        title = normalize(pdf.get_metadata_value("Title")) or None
        byline = normalize(pdf.get_metadata_value("Author")) or None
        created = _CREATED.match(pdf.get_metadata_value("CreationDate"))
    finally:
        pdf.close()
    if sum(len(line) for lines in pages for line in lines) < _MIN_CHARS_PER_PAGE * max(1, len(pages)):
        raise IngestError(f"no text layer ({len(pages)} page(s) of images: a scan?)")
    running = _running_lines(pages)
    paragraphs = _paragraphs(
        [
            (number, [line for line in lines if _key(line, number) not in running])
            for number, lines in enumerate(pages, 1)
        ]
    )
    date = "-".join(created.groups()) if created else None
    doc = document_from_lines(doc_id, [text for _, text in paragraphs], title=title, byline=byline, date=date, **meta)
    # the cleaner drops and merges nothing it keeps, so its blocks come in order of the paragraphs
    starts = iter(paragraphs)
    paged = []
    for block in doc.blocks:
        page = next((page for page, text in starts if normalize(text) == block.text), None)
        paged.append(Block(block.kind, block.text, page))
    doc.blocks = paged
    return doc


def _page_lines(page) -> list[str]:
    textpage = page.get_textpage()
    try:
        text = textpage.get_text_bounded()
    finally:
        textpage.close()
        page.close()
    # PDFium marks a word it joined across a line end's hyphen with \x02
    text = text.replace("\x02", "")
    lines = [line.strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return [line for line in lines if line and not _PAGE_NUMBER.match(line)]


def _key(line: str, page: int) -> str:
    """A line with its page's number aside: "Báo cáo 2024 — trang 3" recurs as one line on every page."""
    return re.sub(rf"(?<!\d){page}(?!\d)", "#", line.lower())


def _running_lines(pages: list[list[str]]) -> set[str]:
    if len(pages) < 2:
        return set()
    edges = Counter(
        key
        for page, lines in enumerate(pages, 1)
        for key in {_key(line, page) for line in lines[:_EDGE_LINES] + lines[-_EDGE_LINES:]}
    )
    return {key for key, count in edges.items() if count >= max(2, _RUNNING_SHARE * len(pages))}


def text_ends(paragraphs: list[tuple[int, str]]) -> bool:
    return bool(paragraphs) and paragraphs[-1][1].rstrip(_CLOSING).endswith(_SENTENCE_ENDS)


def _paragraphs(pages: list[tuple[int, list[str]]]) -> list[tuple[int, str]]:
    """(page, paragraph) from hard-wrapped lines: a line continues the paragraph above unless
    that one ended short (its last line, or a heading), and a paragraph runs on across a page
    break when the page ended mid-sentence."""
    lengths = sorted(len(line) for _, lines in pages for line in lines)
    usual = lengths[int(len(lengths) * 0.9)] if lengths else 0
    paragraphs: list[tuple[int, str]] = []
    open_paragraph = False
    for number, lines in pages:
        for line in lines:
            # a short line without an end after a sentence's end is a heading, not more of it
            starts_anew = text_ends(paragraphs) and len(line) < _SHORT_LINE * usual and looks_like_heading(line, 6)
            if open_paragraph and not starts_anew:
                page, text = paragraphs[-1]
                if text.endswith(_HYPHENS) and line[:1].islower():
                    paragraphs[-1] = (page, text.rstrip("".join(_HYPHENS)) + line)
                else:
                    paragraphs[-1] = (page, f"{text} {line}")
            else:
                paragraphs.append((number, line))
            open_paragraph = len(line) >= _SHORT_LINE * usual and not looks_like_heading(line, 6)
    return paragraphs
