"""Bytes -> text for files that do not say their encoding: UTF-8 first (most files, and the only
check that is exact), else what charset-normalizer finds likeliest (UTF-16 with or without BOM,
cp1252, cp1258, windows-1250, ...)."""

from __future__ import annotations

import charset_normalizer

from index.ingest.document import IngestError

_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding name) of `data`; IngestError when it is not text in any encoding."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding), encoding
    if b"\x00" not in data[:4096]:  # NULs are valid UTF-8, but text that has them is UTF-16 without a BOM
        try:
            return data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            pass
    best = charset_normalizer.from_bytes(data).best()
    if best is None:
        raise IngestError("not text in any encoding we know (a binary file?)")
    return str(best), best.encoding
