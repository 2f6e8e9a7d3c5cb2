"""Word (.docx) -> a document, by python-docx: the body's paragraphs and tables in reading order,
"Title" and "Heading N" styles as the title and headings, each table row one paragraph of
"header: cell" pairs, and the title, author and date from the document's properties."""

from __future__ import annotations

from pathlib import Path
from zipfile import BadZipFile

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from index.ingest.clean import Block
from index.ingest.document import Document, IngestError, document_from_blocks
from index.text import normalize


def docx_document(doc_id: str, file: Path, **meta) -> Document:
    try:
        word = docx.Document(str(file))
    except (BadZipFile, KeyError, ValueError) as exc:
        raise IngestError(f"not a readable Word file ({exc})") from exc
    title: str | None = None
    blocks: list[Block] = []
    for item in word.iter_inner_content():
        if isinstance(item, Table):
            blocks += [Block("paragraph", row) for row in _table_rows(item)]
            continue
        text = normalize(item.text)
        if not text:
            continue
        style = _style(item)
        if style == "title" and title is None:
            title = text
        elif style.startswith("heading") or style == "title":
            blocks.append(Block("heading", text))
        else:
            blocks.append(Block("paragraph", text))
    properties = word.core_properties
    date = properties.created or properties.modified
    return document_from_blocks(
        doc_id,
        blocks,
        title or normalize(properties.title or "") or None,
        date=date.date().isoformat() if date else None,
        byline=normalize(properties.author or "") or None,
        **meta,
    )


def _style(paragraph: Paragraph) -> str:
    name = paragraph.style.name if paragraph.style is not None else ""
    return (name or "").lower()


def _table_rows(table: Table) -> list[str]:
    return table_row_paragraphs([[normalize(cell.text) for cell in row.cells] for row in table.rows])


def table_row_paragraphs(rows: list[list[str]]) -> list[str]:
    """A table's rows as paragraphs: "header: cell; ..." under a full header row, else the cells
    joined with " | " (opendocument.py reads tables the same way)."""
    if not rows:
        return []
    header, body = rows[0], rows[1:]
    if not body or not all(header):  # no header row: each row's cells as they are
        return [" | ".join(_distinct(row)) for row in rows if any(row)]
    return ["; ".join(f"{name}: {cell}" for name, cell in zip(header, row) if cell) for row in body if any(row)]


def _distinct(cells: list[str]) -> list[str]:
    """A row's cells once each: python-docx repeats a merged cell in every column it spans."""
    seen: list[str] = []
    for cell in cells:
        if cell and (not seen or seen[-1] != cell):
            seen.append(cell)
    return seen
