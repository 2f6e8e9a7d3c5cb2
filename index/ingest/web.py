"""HTML -> a document, by trafilatura: it finds the main content (navigation, footers, cookie
banners and share widgets go), and reads the title (og:title, <title>, <h1>), publication date
(htmldate) and author from the page's metadata. Its Markdown output keeps the headings, and
markdown.py reads it like any Markdown file."""

from __future__ import annotations

import trafilatura
from trafilatura.settings import use_config

from index.ingest.document import Document
from index.ingest.markdown import markdown_document

# Dates from the page's metadata and markup, never guessed from dates in its text.
_DATES = {"extensive_search": False, "original_date": True}
# A short page is still a page: trafilatura's defaults drop main content under 250 characters.
_CONFIG = use_config()
_CONFIG.set("DEFAULT", "MIN_EXTRACTED_SIZE", "1")
_CONFIG.set("DEFAULT", "MIN_OUTPUT_SIZE", "1")


def html_document(doc_id: str, html: str, **meta) -> Document:
    found = trafilatura.bare_extraction(
        html,
        with_metadata=True,
        include_comments=False,
        include_tables=True,
        include_formatting=True,
        favor_recall=True,
        date_extraction_params=_DATES,
        config=_CONFIG,
    )
    text = found.text if found is not None and found.text else trafilatura.html2txt(html)
    title = found.title if found is not None else None
    date = found.date if found is not None else None
    byline = found.author if found is not None else None
    return markdown_document(doc_id, text or "", title=title, date=date, byline=byline, **meta)
