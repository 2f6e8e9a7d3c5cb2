import json

import pytest

from index.ingest.document import IngestError
from index.ingest.files import Reading, find_files, fingerprint, read_documents
from tests.conftest import CORPUS


def docs(tmp_path, name: str, content: str | bytes):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return list(read_documents(find_files([path])))


def test_seed_corpus_reads_five_documents_with_metadata():
    documents = list(read_documents(find_files([CORPUS])))
    assert [d.doc_id for d in documents] == sorted(p.name for p in CORPUS.glob("*.txt"))
    assert all(d.original_name == d.path == d.doc_id and d.format == "text" for d in documents)
    assert sum(d.date is not None for d in documents) == 4


def test_markdown_headings_and_soft_wraps(tmp_path):
    [doc] = docs(
        tmp_path,
        "note.md",
        "# Tiêu đề\n\nDòng một\nnối tiếp.\n\n## Phần hai\n\n- mục **một**.\n- mục [hai](http://x).\n",
    )
    assert doc.title == "Tiêu đề"
    assert [(b.kind, b.text) for b in doc.blocks] == [
        ("paragraph", "Dòng một nối tiếp."),
        ("heading", "Phần hai"),
        ("paragraph", "mục một."),
        ("paragraph", "mục hai."),
    ]


def test_html_skips_scripts_and_navigation(tmp_path):
    html = """<html><head><title>Bài viết | Báo</title>
    <meta property="article:published_time" content="2024-03-01T08:00">
    <script>var ad = 1;</script></head><body><nav>Trang chủ</nav><article><h1>Bài viết</h1>
    <p>Đoạn thứ nhất có nội dung &amp; ý nghĩa.</p><h2>Mục thứ hai</h2><p>Đoạn thứ hai.</p></article>
    <footer>Bản quyền</footer></body></html>"""
    [doc] = docs(tmp_path, "page.html", html)
    assert doc.title == "Bài viết"
    assert doc.date == "2024-03-01"
    assert [(b.kind, b.text) for b in doc.blocks] == [
        ("paragraph", "Đoạn thứ nhất có nội dung & ý nghĩa."),
        ("heading", "Mục thứ hai"),
        ("paragraph", "Đoạn thứ hai."),
    ]


def test_jsonl_records_keep_their_ids_and_fields(tmp_path):
    lines = [
        {"id": "a1", "title": "T", "text": "Đoạn một.\n\nĐoạn hai", "date": "2020-01-02", "source": "S"},
        {"id": "a2", "text": "Chỉ một dòng"},
    ]
    documents = docs(tmp_path, "c.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in lines) + "\n\n")
    assert [(d.doc_id, d.title, d.date, d.source) for d in documents] == [
        ("a1", "T", "2020-01-02", "S"),
        ("a2", "", None, None),
    ]
    # structured records: short lines stay paragraphs, nothing is taken for a byline
    assert [b.text for b in documents[0].blocks] == ["Đoạn một.", "Đoạn hai"]
    assert [b.kind for b in documents[1].blocks] == ["paragraph"]


def test_decomposed_unicode_is_composed(tmp_path):
    decomposed = "Tie\u0302\u0301ng Vie\u0323\u0302t la\u0300 ngôn ngữ đẹp."
    [doc] = docs(tmp_path, "nfd.txt", decomposed)
    assert doc.blocks[0].text == "Tiếng Việt là ngôn ngữ đẹp."


@pytest.mark.parametrize(
    "name, content, skipped",
    [
        ("bad.jsonl", '{"id": 1, "text": "ok"}\n{not json}\n', ("bad.jsonl:2", "invalid JSON")),
        ("bad2.jsonl", '{"id": 1, "note": "no text"}\n', ("bad2.jsonl", "no text column")),
        ("bin.txt", bytes(range(256)) * 4, ("bin.txt", "not text in any encoding")),
        ("dupe.jsonl", '{"id": "x", "text": "a"}\n{"id": "x", "text": "b"}\n', ("dupe.jsonl", "appears twice")),
    ],
)
def test_what_cannot_be_read_is_skipped_with_why(tmp_path, name, content, skipped):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    reading = Reading()
    list(read_documents(find_files([path]), reading))
    [(what, why)] = reading.skipped
    assert what == skipped[0] and skipped[1] in why


def test_missing_and_unsupported_paths(tmp_path):
    with pytest.raises(IngestError, match="no such file"):
        find_files([tmp_path / "nope"])
    (tmp_path / "x.xls").write_bytes(b"\xd0\xcf")
    reading = Reading()
    assert list(read_documents(find_files([tmp_path]), reading)) == []
    assert reading.skipped == [("x.xls", "unsupported type (.xls)")]


def test_fingerprint_changes_with_content(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("một")
    before = fingerprint(find_files([path]))
    assert fingerprint(find_files([path])) == before
    path.write_text("hai")
    assert fingerprint(find_files([path])) != before


def test_structured_records_keep_lines_that_look_like_site_furniture(tmp_path):
    record = {
        "id": "r",
        "title": "Thư viện",
        "text": "Thư viện tỉnh mở thêm 3 phòng đọc cho thiếu nhi.\n\n12/03/2014\n\n...",
    }
    [doc] = docs(tmp_path, "r.jsonl", json.dumps(record, ensure_ascii=False))
    assert [b.text for b in doc.blocks] == ["Thư viện tỉnh mở thêm 3 phòng đọc cho thiếu nhi.", "12/03/2014"]
    assert doc.date is None
