"""Turn the lines of a scraped article into title, metadata and content blocks.

News pages copied as text carry site furniture between the paragraphs: ads, share and comment
widgets, social counters, weather headers, photo captions, bylines. This module keeps the article
and reports everything it drops with the reason, so the choice can be checked.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Literal

from index.text import normalize

BlockKind = Literal["heading", "paragraph"]


@dataclass(frozen=True)
class Block:
    kind: BlockKind
    text: str
    page: int | None = None  # the page it starts on, from 1, in a paged format (PDF)


@dataclass
class CleanArticle:
    title: str
    blocks: list[Block]
    date: str | None = None
    byline: str | None = None
    source: str | None = None
    dropped: list[tuple[str, str]] = field(default_factory=list)


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


_BOILERPLATE: list[tuple[str, re.Pattern[str]]] = [
    ("advert", _rx(r"^-?\s*(advertisement|quảng cáo)\s*-?$")),
    (
        "widget",
        _rx(
            r"^(chia sẻ( bài viết)?|share|bình luận|comments?|in bài|gửi email|email|print"
            r"|đăng ký|subscribe|theo dõi|tweet|facebook|zalo)$"
        ),
    ),
    ("widget", _rx(r"^vui lòng nhập .*$")),
    ("widget", _rx(r"^(bài|tin) (liên quan|mới|cùng chuyên mục|khác)$")),
    (
        "widget",
        _rx(
            r"^(được quan tâm|đọc nhiều( nhất)?|xem nhiều( nhất)?|kết nối|xem thêm|website liên kết"
            r"|video hoạt động.*|hình ảnh hoạt động|tags?:.*|từ khóa:.*)$"
        ),
    ),
    ("counter", _rx(r"^[\d.,]+\s*(thành viên|người theo dõi|fans?|followers?|lượt thích)[^.!?]{0,30}$")),
    ("counter", _rx(r"^lượt (xem|đọc):?\s*[\d.,]+$")),
    ("widget", _rx(r"^web basic \d+x$")),
    ("punctuation", _rx(r"^[\s.…·•*_\-–—|/\\]*$")),
    ("weather", _rx(r"^-?\d{1,2}(\.\d)?\s*°?\s*[cf]$")),
    ("caption", _rx(r"^ảnh\s*:.*$")),
    ("caption", _rx(r"^.{0,200}\((ảnh|nguồn ảnh|photo)\s*:[^)]*\)$")),
]

_SOURCE = _rx(r"^\(?\s*nguồn\s*:\s*(?P<value>[^)]+?)\s*\)?$")
_BYLINE = _rx(r"^(?P<label>(tin|bài|ảnh|video|clip)(\s*(,|và|-)\s*(tin|bài|ảnh|video|clip))*)\s*:\s*(?P<value>.+)$")

_MONTH_WORDS = {
    "một": 1,
    "giêng": 1,
    "hai": 2,
    "ba": 3,
    "tư": 4,
    "bốn": 4,
    "năm": 5,
    "sáu": 6,
    "bảy": 7,
    "tám": 8,
    "chín": 9,
    "mười": 10,
    "mười một": 11,
    "mười hai": 12,
    "chạp": 12,
}
_WEEKDAY = r"(thứ\s*(hai|ba|tư|năm|sáu|bảy|[2-7])|chủ nhật)\s*,?\s*"
_DATE_PATTERNS = [
    # 05/06/2023 - 05:25, Thứ Hai, 18/09/2023, 09:27 (GMT+7), Thứ 2, Ngày 29 / 05 / 2023
    _rx(rf"^({_WEEKDAY})?(ngày\s*)?(?P<d>\d{{1,2}})\s*[/\-.]\s*(?P<m>\d{{1,2}})\s*[/\-.]\s*(?P<y>\d{{4}})\b.*$"),
    # ngày 28 tháng 9 năm 2021
    _rx(rf"^({_WEEKDAY})?ngày\s*(?P<d>\d{{1,2}})\s*tháng\s*(?P<m>\d{{1,2}})\s*năm\s*(?P<y>\d{{4}})\b.*$"),
    # Thứ Ba, Tháng Chín 28, 2021
    _rx(
        rf"^({_WEEKDAY})?tháng\s*(?P<mw>mười một|mười hai|[^\s\d,]+|\d{{1,2}})"
        rf"\s*(?P<d>\d{{1,2}})\s*,\s*(?P<y>\d{{4}})\b.*$"
    ),
]
_DATE_LINE_MAX = 60
_HEADING_MAX_WORDS = 20
_TITLE_MAX_WORDS = 50
_CLOSING_QUOTES = "\"”’»'"
_SENTENCE_PUNCTUATION = tuple(".!?…;:")


def parse_date(line: str) -> str | None:
    """ISO date of a line that is nothing but a date (with weekday/time), else None."""
    if len(line) > _DATE_LINE_MAX:
        return None
    for pattern in _DATE_PATTERNS:
        match = pattern.match(line)
        if not match:
            continue
        parts = match.groupdict()
        month_text = (parts.get("m") or parts.get("mw") or "").lower()
        month = int(month_text) if month_text.isdigit() else _MONTH_WORDS.get(month_text)
        day, year = int(parts["d"]), int(parts["y"])
        if month and 1 <= month <= 12 and 1 <= day <= 31:
            return f"{year:04d}-{month:02d}-{day:02d}"
    return None


def boilerplate_reason(line: str) -> str | None:
    for reason, pattern in _BOILERPLATE:
        if pattern.match(line):
            return reason
    return None


def looks_like_heading(line: str, max_words: int = _HEADING_MAX_WORDS) -> bool:
    return len(line.split()) <= max_words and not line.rstrip(_CLOSING_QUOTES).endswith(_SENTENCE_PUNCTUATION)


def _is_kicker(line: str) -> bool:
    """An upper-case label ending with a colon above a headline ("ĐẢNG ỦY KHỐI ...:")."""
    return line.endswith(":") and len(line.split()) <= _HEADING_MAX_WORDS


def _near_duplicate(a: str, b: str) -> bool:
    return difflib.SequenceMatcher(None, a.lower(), b.lower()).ratio() >= 0.85


def clean_article(raw_lines: list[str], title: str | None = None, infer_structure: bool = True) -> CleanArticle:
    """Split scraped article lines into title, metadata and heading/paragraph blocks.

    `title` is given when the container (HTML <title>, a JSONL field) already knows it; otherwise
    the leading heading-like lines form it. With `infer_structure=False` (structured records)
    every line is a paragraph and no byline is guessed.
    """
    article = CleanArticle(title="", blocks=[])
    lines: list[str] = []
    previous_weather = False
    for raw in raw_lines:
        line = normalize(raw)
        if not line:
            continue
        if infer_structure:
            reason = _furniture_reason(line, previous_weather, article)
            previous_weather = reason == "weather"
        else:
            # structured records are the user's own text: only lines without a letter or digit go
            reason = None if any(c.isalnum() for c in line) else "punctuation"
        if reason is None and lines and line == lines[-1]:
            reason = "repeated"
        if reason:
            article.dropped.append((reason, line))
        else:
            lines.append(line)

    if infer_structure:
        lines = _take_trailer(lines, article)
    if title is None:
        head: list[str] = []
        while len(lines) > 1 and (looks_like_heading(lines[0], _TITLE_MAX_WORDS) or _is_kicker(lines[0])):
            line = lines.pop(0)
            if any(_near_duplicate(line, h) for h in head):
                article.dropped.append(("repeated", line))
            else:
                head.append(line)
        title = " ".join(h if h.endswith(":") else h + ":" for h in head[:-1])
        title = f"{title} {head[-1]}".strip() if head else ""
    article.title = normalize(title)

    seen: set[str] = set()
    for line in lines:
        if line in seen or (article.title and _near_duplicate(line, article.title)):
            article.dropped.append(("repeated", line))
            continue
        seen.add(line)
        kind: BlockKind = "heading" if infer_structure and looks_like_heading(line) else "paragraph"
        article.blocks.append(Block(kind, line))
    # a heading with nothing under it is furniture, not structure
    while article.blocks and article.blocks[-1].kind == "heading":
        article.dropped.append(("trailing heading", article.blocks.pop().text))
    return article


def _furniture_reason(line: str, previous_weather: bool, article: CleanArticle) -> str | None:
    """Why a scraped line is site furniture rather than article text; takes the first date line
    into `article.date`."""
    reason = boilerplate_reason(line)
    if reason is None and previous_weather and len(line.split()) <= 4 and not parse_date(line):
        reason = "weather"  # the location printed under a temperature
    if reason is None and article.date is None and (date := parse_date(line)):
        article.date = date
        reason = "date"
    return reason


def _take_trailer(lines: list[str], article: CleanArticle) -> list[str]:
    """Move the source and byline lines after the last paragraph into metadata."""
    end = len(lines)
    while end > 1:
        line = lines[end - 1]
        if (source := _SOURCE.match(line)) is not None:
            article.source = source.group("value")
        elif (byline := _BYLINE.match(line)) is not None:
            article.byline = byline.group("value")
        elif article.byline is None and looks_like_heading(line):
            # a short unpunctuated line closing the article ("LÊ NGUYÊN", "Đ.V") signs it
            article.byline = line
        else:
            break
        article.dropped.append(("source" if source else "byline", line))
        end -= 1
    return lines[:end]
