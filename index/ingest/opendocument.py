"""OpenDocument text (.odt, LibreOffice's) -> a document: its content.xml read with lxml, headings
(text:h) as headings, paragraphs and list items as paragraphs, each table row one paragraph as
Word tables are (word.py), and the title, author and date from meta.xml."""

from __future__ import annotations

import zipfile
from pathlib import Path

from lxml import etree

from index.ingest.clean import Block
from index.ingest.document import Document, IngestError, document_from_blocks
from index.ingest.word import table_row_paragraphs
from index.text import normalize

_NS = {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "meta": "urn:oasis:names:tc:opendocument:xmlns:meta:1.0",
    "dc": "http://purl.org/dc/elements/1.1/",
}
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def _tag(prefix: str, name: str) -> str:
    return f"{{{_NS[prefix]}}}{name}"


def odt_document(doc_id: str, file: Path, **meta) -> Document:
    try:
        with zipfile.ZipFile(file) as archive:
            content = etree.fromstring(archive.read("content.xml"), _PARSER)
            about = etree.fromstring(archive.read("meta.xml"), _PARSER) if "meta.xml" in archive.namelist() else None
    except (zipfile.BadZipFile, KeyError, etree.XMLSyntaxError) as exc:
        raise IngestError(f"not a readable OpenDocument file ({exc})") from exc
    body = content.find("office:body/office:text", _NS)
    blocks: list[Block] = []
    for element in body.iter(_tag("text", "h"), _tag("text", "p"), _tag("table", "table")) if body is not None else ():
        if any(parent.tag == _tag("table", "table") for parent in element.iterancestors()):
            continue  # a cell's paragraph: read with its table
        if element.tag == _tag("table", "table"):
            rows = [
                [normalize("".join(cell.itertext())) for cell in row.iter(_tag("table", "table-cell"))]
                for row in element.iter(_tag("table", "table-row"))
            ]
            blocks += [Block("paragraph", text) for text in table_row_paragraphs(rows)]
        elif text := normalize("".join(element.itertext())):
            blocks.append(Block("heading" if element.tag == _tag("text", "h") else "paragraph", text))

    def property_(path: str) -> str | None:
        found = about.find(f"office:meta/{path}", _NS) if about is not None else None
        return normalize(found.text or "") or None if found is not None else None

    date = property_("meta:creation-date") or property_("dc:date")
    return document_from_blocks(
        doc_id,
        blocks,
        property_("dc:title"),
        date=date[:10] if date else None,
        byline=property_("meta:initial-creator") or property_("dc:creator"),
        **meta,
    )
