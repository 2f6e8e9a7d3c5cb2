import json

import pytest

from index.ingest.files import IngestError, find_files, fingerprint, read_documents
from tests.conftest import CORPUS


def docs(tmp_path, name: str, content: str | bytes):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return list(read_documents(find_files([path])))


def test_seed_corpus_reads_five_documents_with_metadata():
    documents = list(read_documents(find_files([CORPUS])))
    assert [d.doc_id for d in documents] == sorted(p.stem for p in CORPUS.glob("*.txt"))
    assert all(d.original_name == f"{d.doc_id}.txt" for d in documents)
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
    <script>var ad = 1;</script></head><body><nav>Trang chủ</nav><h1>Bài viết</h1>
    <p>Đoạn thứ nhất có nội dung &amp; ý nghĩa.</p><h2>Mục</h2><p>Đoạn thứ hai.</p>
    <footer>Bản quyền</footer></body></html>"""
    [doc] = docs(tmp_path, "page.html", html)
    assert doc.title == "Bài viết"
    assert doc.date == "2024-03-01"
    assert [(b.kind, b.text) for b in doc.blocks] == [
        ("paragraph", "Đoạn thứ nhất có nội dung & ý nghĩa."),
        ("heading", "Mục"),
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
    "name, content, message",
    [
        ("bad.jsonl", '{"id": 1, "text": "ok"}\n{not json}\n', "bad.jsonl:2: invalid JSON"),
        ("bad2.jsonl", '{"id": 1, "body": "no text"}\n', "must be an object with a string 'text'"),
        ("latin1.txt", "Ti\xeang".encode("latin-1"), "not UTF-8"),
        ("dupe.jsonl", '{"id": "x", "text": "a"}\n{"id": "x", "text": "b"}\n', "appears twice"),
    ],
)
def test_broken_files_give_clear_errors(tmp_path, name, content, message):
    with pytest.raises(IngestError, match=message):
        docs(tmp_path, name, content)


def test_missing_and_unsupported_paths(tmp_path):
    with pytest.raises(IngestError, match="no such file"):
        find_files([tmp_path / "nope"])
    (tmp_path / "x.pdf").write_bytes(b"%PDF")
    with pytest.raises(IngestError, match="unsupported file type"):
        find_files([tmp_path / "x.pdf"])
    assert find_files([tmp_path]) == []  # directories skip what they cannot read


def test_fingerprint_changes_with_content(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("một")
    before = fingerprint([path])
    assert fingerprint([path]) == before
    path.write_text("hai")
    assert fingerprint([path]) != before


def test_structured_records_keep_lines_that_look_like_site_furniture(tmp_path):
    record = {
        "id": "r",
        "title": "Thư viện",
        "text": "Thư viện tỉnh mở thêm 3 phòng đọc cho thiếu nhi.\n\n12/03/2014\n\n...",
    }
    [doc] = docs(tmp_path, "r.jsonl", json.dumps(record, ensure_ascii=False))
    assert [b.text for b in doc.blocks] == ["Thư viện tỉnh mở thêm 3 phòng đọc cho thiếu nhi.", "12/03/2014"]
    assert doc.date is None
