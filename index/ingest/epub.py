"""EPUB -> a document: the chapters in the order of the book's spine, each chapter's XHTML read
as a web page is (web.py: trafilatura, headings kept), its title a heading; the book's title,
author and date from its package document (OPF)."""

from __future__ import annotations

import posixpath
import zipfile
from pathlib import Path

from lxml import etree

from index.ingest.clean import Block
from index.ingest.document import Document, IngestError, document_from_blocks
from index.ingest.web import html_document
from index.text import normalize

_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"
_OPF = "{http://www.idpf.org/2007/opf}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def epub_document(doc_id: str, file: Path, **meta) -> Document:
    try:
        with zipfile.ZipFile(file) as archive:
            container = etree.fromstring(archive.read("META-INF/container.xml"), _PARSER)
            root = container.find(f".//{_CONTAINER}rootfile")
            if root is None:
                raise IngestError("an EPUB without a package document")
            package_path = root.get("full-path", "")
            package = etree.fromstring(archive.read(package_path), _PARSER)
            items = {item.get("id"): item.get("href") for item in package.iter(f"{_OPF}item")}
            base = posixpath.dirname(package_path)
            chapters = [
                archive.read(posixpath.normpath(posixpath.join(base, items[ref.get("idref")]))).decode(
                    "utf-8", "replace"
                )
                for ref in package.iter(f"{_OPF}itemref")
                if ref.get("idref") in items
            ]
    except (zipfile.BadZipFile, KeyError, etree.XMLSyntaxError) as exc:
        raise IngestError(f"not a readable EPUB ({exc})") from exc

    def property_(name: str) -> str | None:
        found = package.find(f".//{_DC}{name}")
        return normalize(found.text or "") or None if found is not None else None

    title = property_("title") or ""
    blocks: list[Block] = []
    for chapter in chapters:
        read = html_document(doc_id, chapter)
        if read.title and read.title != title:
            blocks.append(Block("heading", read.title))
        blocks += read.blocks
    date = property_("date")
    return document_from_blocks(
        doc_id, blocks, title, date=date[:10] if date else None, byline=property_("creator"), **meta
    )
