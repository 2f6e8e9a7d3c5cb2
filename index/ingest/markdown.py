"""Markdown -> a document: its syntax stripped (quote markers, emphasis, links, images, code
fences, tables' pipes, HTML tags), the first heading its title, later ones headings, and
soft-wrapped lines joined into paragraphs. HTML pages come here too, as the Markdown
trafilatura makes of their main content (web.py)."""

from __future__ import annotations

import re

from index.ingest.clean import Block, BlockKind
from index.ingest.document import Document, document_from_blocks
from index.text import normalize

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_SETEXT_UNDERLINE = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_LIST_ITEM = re.compile(r"^\s*([-*+]|\d+[.)])\s+")
_QUOTE = re.compile(r"^\s{0,3}(>\s?)+")
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_RULE = re.compile(r"^\s{0,3}([-*_]\s*){3,}$")
_TABLE_DIVIDER = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s+\S+")
_INLINE = [
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),  # an image: its alt text
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # a link: its text
    (re.compile(r"\[([^\]]+)\]\[[^\]]*\]"), r"\1"),  # a reference link
    (re.compile(r"<(https?://[^>]+)>"), r"\1"),  # an autolink
    (re.compile(r"</?[A-Za-z][^>]*>"), ""),  # an HTML tag
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),  # strong
    (re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])"), r"\1"),  # emphasis
    (re.compile(r"(?<![\w_])_(?=\S)(.+?)(?<=\S)_(?![\w_])"), r"\1"),
    (re.compile(r"~~(?=\S)(.+?)(?<=\S)~~"), r"\1"),  # strike-through
    (re.compile(r"`+([^`]*)`+"), r"\1"),  # code
]


def plain(line: str) -> str:
    """One line's inline syntax stripped."""
    for pattern, replacement in _INLINE:
        line = pattern.sub(replacement, line)
    return line


def markdown_document(doc_id: str, text: str, title: str | None = None, **meta) -> Document:
    """`title`, when given, is the document's (a web page's); a first heading saying the same
    is dropped. Headings are the Markdown's own: nothing is guessed, as it is for plain text."""
    blocks: list[tuple[BlockKind, str]] = []
    paragraph: list[str] = []
    in_fence = False

    def flush() -> None:
        if paragraph:
            blocks.append(("paragraph", " ".join(paragraph)))
            paragraph.clear()

    raw = text.splitlines()
    for number, line in enumerate(raw):
        if _FENCE.match(line):
            flush()
            in_fence = not in_fence
            continue
        if in_fence:  # code keeps its lines
            if line.strip():
                blocks.append(("paragraph", line.strip()))
            continue
        line = _QUOTE.sub("", line)
        if _RULE.match(line) or _TABLE_DIVIDER.match(line) or _REFERENCE.match(line):
            flush()
            continue
        heading = _HEADING.match(line)
        underline = number + 1 < len(raw) and _SETEXT_UNDERLINE.match(raw[number + 1]) and line.strip()
        if heading or underline:
            flush()
            blocks.append(("heading", plain(heading.group(1) if heading else line.strip())))
            continue
        if _SETEXT_UNDERLINE.match(line) and number and blocks and blocks[-1] == ("heading", raw[number - 1].strip()):
            continue
        if not line.strip() or _LIST_ITEM.match(line) or line.lstrip().startswith("|"):
            flush()
        line = plain(_LIST_ITEM.sub("", line)).strip()
        if line.startswith("|"):  # a table row: its cells
            blocks.append(("paragraph", " | ".join(cell.strip() for cell in line.strip("|").split("|"))))
        elif line:
            paragraph.append(line)
    flush()
    cleaned = [Block(kind, normalize(text)) for kind, text in blocks if normalize(text)]
    if title is not None and cleaned and cleaned[0].kind == "heading" and cleaned[0].text in title:
        cleaned.pop(0)  # the page's title again
    return document_from_blocks(doc_id, cleaned, None if title is None else normalize(title), **meta)
