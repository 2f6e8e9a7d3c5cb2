"""Reading the files people have: every format from real files written by code (tests/files.py),
odd encodings, files that cannot be read, and the summary that says so."""

from __future__ import annotations

import json

import pytest

from index.build import build_index, sync_folder
from index.ingest.document import IngestError
from index.ingest.files import Reading, find_files, read_documents
from index.ingest.tables import ANY_COLUMNS, Columns
from index.store.filters import Filters
from index.store.location import open_location
from tests import files as fx


def read(paths, columns: Columns = ANY_COLUMNS) -> tuple[dict, Reading]:
    reading = Reading()
    documents = {doc.doc_id: doc for doc in read_documents(find_files(paths), reading, columns=columns)}
    return documents, reading


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    return fx.mixed_folder(tmp_path_factory.mktemp("docs") / "mydocs")


def test_a_mixed_folder_reads_every_readable_file_and_says_what_it_skipped(mixed):
    documents, reading = read([mixed])
    assert sorted(documents) == [
        "a/readme.md",
        "b/readme.md",  # twin names in subfolders are two documents
        "books/guide.epub",
        "cu.txt",
        "gia-1",
        "gia-2",
        "lyon.txt",
        "notepad.txt",
        "rec-1",
        "reports/maintenance.docx",
        "reports/minutes.odt",
        "reports/water.pdf",
        "web/mua-kho.html",
    ]
    assert dict(reading.files) == {
        **{"csv": 1, "docx": 1, "epub": 1, "html": 1, "jsonl": 1},
        **{"markdown": 2, "odt": 1, "pdf": 1, "text": 3},
    }
    assert dict(reading.skipped) == {
        "budget.xlsx": "a broken ZIP archive (File is not a zip file)",
        "fake.pdf": "named .pdf but it is not a PDF file",
        "records.jsonl:2": "invalid JSON (Expecting property name enclosed in double quotes)",
        "reports/scan.pdf": "no text layer (2 page(s) of images: a scan?)",
    }
    assert reading.unread == {"budget.xlsx", "fake.pdf", "reports/scan.pdf"}  # a bad row is not a bad file
    lines = reading.lines()
    assert lines[0] == (
        "read 12 file(s) (1 csv, 1 docx, 1 epub, 1 html, 1 jsonl, 2 markdown, 1 odt, 1 pdf, 3 text): 13 document(s)"
    )
    assert lines[1].startswith("skipped 4: ")
    assert "  skipped reports/scan.pdf: no text layer (2 page(s) of images: a scan?)" in lines
    assert {(d.path, d.format) for d in documents.values()} >= {("reports/water.pdf", "pdf"), ("prices.csv", "csv")}


def test_pdf_pages_headers_footers_and_hyphenation(tmp_path):
    pdf = fx.write_pdf(
        tmp_path / "r.pdf",
        [
            [
                "Phần A",
                "Nhà máy đã hoàn thành việc nâng cấp hệ thống lọc nước trong quý một, với tổng vốn đầu",
                "tư là mười hai tỷ đồng. The plant also renewed its filtration contract for an invest-",
                "ment of two million.",
            ],
            [
                "Phần B",
                "Quý hai, nhà máy lắp thêm hai bể lắng mới, nâng công suất thêm mười lăm phần trăm so với",
                "trước.",
            ],
            ["Phần C", "Quý ba dành cho đào tạo vận hành viên và kiểm định chất lượng nước tại phòng thí nghiệm."],
        ],
        title="Báo cáo quý",
        header="Nhà máy nước Bình An — Báo cáo 2024",
        lines=True,
    )
    [doc] = read([pdf])[0].values()
    assert doc.title == "Báo cáo quý"
    assert [(b.kind, b.text, b.page) for b in doc.blocks] == [
        ("heading", "Phần A", 1),
        (
            "paragraph",
            "Nhà máy đã hoàn thành việc nâng cấp hệ thống lọc nước trong quý một, với tổng vốn đầu tư là mười "
            "hai tỷ đồng. The plant also renewed its filtration contract for an investment of two million.",
            1,
        ),
        ("heading", "Phần B", 2),
        (
            "paragraph",
            "Quý hai, nhà máy lắp thêm hai bể lắng mới, nâng công suất thêm mười lăm phần trăm so với trước.",
            2,
        ),
        ("heading", "Phần C", 3),
        ("paragraph", "Quý ba dành cho đào tạo vận hành viên và kiểm định chất lượng nước tại phòng thí nghiệm.", 3),
    ]
    assert not any("Bình An" in b.text or "Trang" in b.text for b in doc.blocks)  # header and page numbers


def test_a_pdf_over_the_page_limit_is_skipped_before_it_is_read(tmp_path):
    from index.ingest.files import Limits

    pdf = fx.write_pdf(tmp_path / "long.pdf", [["Một trang có nội dung đủ dài để không phải là bản quét."]] * 12)
    reading = Reading()
    assert list(read_documents(find_files([pdf]), reading, limits=Limits(max_pages=10))) == []
    assert reading.skipped == [("long.pdf", "12 pages, over the limit of 10")]


def test_docx_headings_tables_and_properties(mixed):
    doc = read([mixed / "reports" / "maintenance.docx"])[0]["maintenance.docx"]
    assert (doc.title, doc.byline, doc.date) == ("Báo cáo bảo trì tòa nhà", "Phòng Hành chính", "2024-05-20")
    assert [(b.kind, b.text) for b in doc.blocks] == [
        ("heading", "Hợp đồng dịch vụ"),
        ("paragraph", fx.DOCX_FACT + ", thời hạn hai năm."),
        ("heading", "Chi phí theo hạng mục"),
        ("paragraph", "Hạng mục: Thang máy; Chi phí: 480 triệu"),
        ("paragraph", "Hạng mục: Điều hòa; Chi phí: 95 triệu"),
    ]


def test_odt_and_epub(mixed):
    odt = read([mixed / "reports" / "minutes.odt"])[0]["minutes.odt"]
    assert (odt.title, odt.byline, odt.date) == ("Biên bản họp tháng Tư", "Ban Kỹ thuật", "2024-04-12")
    assert [(b.kind, b.text) for b in odt.blocks] == [
        ("heading", "Biên bản họp kỹ thuật"),
        ("paragraph", fx.ODT_FACT + ", theo kết luận của đoàn kiểm tra."),
        ("heading", "Việc cần làm"),
        ("paragraph", "Hạng mục: Gia cố đập; Hạn: Tháng Năm"),
    ]
    epub = read([mixed / "books" / "guide.epub"])[0]["guide.epub"]
    assert (epub.title, epub.byline, epub.date) == ("Sổ tay nước sạch", "Trung tâm Y tế", "2023-09-01")
    assert [(b.kind, b.text) for b in epub.blocks] == [  # in the spine's order, not the manifest's
        ("heading", "Chương một: Khử trùng"),
        ("paragraph", fx.EPUB_FACT + " với liều lượng theo hướng dẫn."),
        ("heading", "Chương hai: Lưu trữ"),
        ("paragraph", "Nước đã khử trùng nên dùng trong vòng hai ngày."),
    ]


def test_html_main_content_title_date_and_author(mixed):
    doc = read([mixed / "web" / "mua-kho.html"])[0]["mua-kho.html"]
    assert (doc.title, doc.date, doc.byline) == ("Cấp nước an toàn mùa khô 2024", "2024-03-15", "Nguyễn Văn An")
    text = " ".join(b.text for b in doc.blocks)
    for furniture in ("cookie", "Trang chủ", "Chia sẻ", "123 Đường Lớn", "Công ty Cấp nước ABC"):
        assert furniture not in text
    assert [b.kind for b in doc.blocks] == ["paragraph", "heading", "paragraph"]
    assert doc.blocks[1].text == "Kế hoạch dự phòng khi mất nước"


def test_markdown_syntax_is_stripped(tmp_path):
    (tmp_path / "n.md").write_text(
        "# Tiêu đề\n\n> Trích **đậm** và *nghiêng*, `mã` và [liên kết](http://x).\n\n"
        "---\n\n## Phần hai\n\n```\nin ra\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        encoding="utf-8",
    )
    [doc] = read([tmp_path / "n.md"])[0].values()
    assert doc.title == "Tiêu đề"
    assert [(b.kind, b.text) for b in doc.blocks] == [
        ("paragraph", "Trích đậm và nghiêng, mã và liên kết."),
        ("heading", "Phần hai"),
        ("paragraph", "in ra"),
        ("paragraph", "a | b"),
        ("paragraph", "1 | 2"),
    ]


@pytest.mark.parametrize(
    "name, encoding, fact",
    [
        ("notepad.txt", "utf-16", fx.UTF16_FACT),
        ("cu.txt", "cp1258", fx.CP1258_FACT),
        ("lyon.txt", None, fx.CP1252_FACT),
    ],
)
def test_text_in_any_common_encoding(mixed, name, encoding, fact):
    doc = read([mixed / name])[0][name]
    assert fact in doc.blocks[0].text
    assert doc.encoding == encoding or (encoding is None and doc.encoding in ("cp1252", "cp1250"))


def test_table_columns_by_name_or_by_flag(tmp_path):
    (tmp_path / "t.tsv").write_text("Mã\tTên\tMô tả\tGhi chú\nx1\tBơm\tMáy bơm ly tâm.\tKho A\n", encoding="utf-8")
    [doc] = read([tmp_path / "t.tsv"])[0].values()
    assert (doc.doc_id, doc.title, doc.row, [b.text for b in doc.blocks]) == ("x1", "Bơm", 2, ["Máy bơm ly tâm."])
    chosen = Columns(title="Ghi chú", text=("Mô tả", "Tên"))
    [doc] = read([tmp_path / "t.tsv"], chosen)[0].values()
    assert (doc.title, [b.text for b in doc.blocks]) == ("Kho A", ["Máy bơm ly tâm.", "Bơm"])
    (tmp_path / "a.json").write_text(json.dumps({"items": [{"body": "Nội dung một."}, {"body": ""}]}), "utf-8")
    documents, reading = read([tmp_path / "a.json"])
    assert list(documents) == ["a.json#1"] and reading.skipped == [("a.json:2", "empty text")]
    (tmp_path / "n.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    _, reading = read([tmp_path / "n.csv"])
    assert reading.skipped == [("n.csv", "no text column: name one with --text-column (columns: a, b)")]


def test_strict_and_nothing_readable_are_errors_that_write_nothing(tmp_path, fake_encoder, mixed):
    out = tmp_path / "index"
    with pytest.raises(IngestError, match="4 skipped and --strict"):
        build_index([mixed], out, fake_encoder, progress=False, strict=True)
    assert not out.exists()
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    fx.write_scan(only_bad / "scan.pdf")
    reading = Reading()
    with pytest.raises(IngestError, match="nothing could be read"):
        build_index([only_bad], out, fake_encoder, progress=False, reading=reading)
    assert reading.skipped == [("scan.pdf", "no text layer (2 page(s) of images: a scan?)")]


def test_the_cli_prints_the_summary_and_exits_2_when_strict(tmp_path, mixed, capsys, monkeypatch):
    from service import cli

    monkeypatch.setattr(
        "index.encode.embed.load_encoder", lambda *a, **k: __import__("tests.conftest").conftest.FakeEncoder()
    )
    assert cli.main(["index", str(mixed), "--out", str(tmp_path / "i"), "--quiet", "--strict"]) == 2
    err = capsys.readouterr().err
    assert "skipped 4:" in err and "reports/scan.pdf: no text layer" in err and "--strict" in err


def test_sync_mirrors_a_folder_and_leaves_api_documents_alone(tmp_path, fake_encoder):
    from index.build import write_documents
    from index.ingest.document import document_from_record
    from index.store.location import writing_at

    folder = tmp_path / "docs"
    folder.mkdir()
    for n in range(3):
        (folder / f"d{n}.txt").write_text(f"Tin {n}\n\nĐoạn một của tài liệu {n}.\n\nĐoạn hai của tài liệu {n}.\n")
    out = tmp_path / "index"
    build_index([folder], out, fake_encoder, progress=False)
    with writing_at(out) as writer:
        write_documents(writer, [document_from_record("api-1", {"text": "Qua API."}, None, origin="api")], fake_encoder)
    (folder / "d0.txt").unlink()
    (folder / "d1.txt").write_text("Tin 1\n\nĐoạn một của tài liệu 1.\n\nĐoạn hai đã sửa.\n")
    (folder / "new.md").write_text("# Mới\n\nTài liệu mới.\n")
    synced = sync_folder(folder, out, fake_encoder, progress=False)
    assert (synced.written, synced.unchanged, synced.deleted) == (2, 1, 1)
    assert synced.embedded == 2  # the changed paragraph and the new one; the rest keep their vectors
    index = open_location(out)
    try:
        assert index.passages.document("d0.txt") is None
        assert index.passages.document("api-1") is not None
        assert index.passages.document("new.md")["format"] == "markdown"
    finally:
        index.close()
    again = sync_folder(folder, out, fake_encoder, progress=False)
    assert (again.written, again.deleted, again.embedded) == (0, 0, 0)


@pytest.mark.model
def test_uploads_over_http_are_read_in_a_child_within_limits(real_index, tmp_path, mixed):
    """The real server: a PDF and a Word file uploaded become searchable; a 600-page PDF is
    refused by the page cap in its child, and a file that is not one is skipped."""
    import time

    import requests

    from tests.conftest import copy_index, start_server

    index = copy_index(real_index, tmp_path / "copy")
    key = "upload-key"
    process, base = start_server(index, "--rate-limit", "off", env={"SEMSEARCH_API_KEYS": key})
    auth = {"Authorization": f"Bearer {key}"}
    huge = fx.write_pdf(tmp_path / "huge.pdf", [["Trang có chữ, đủ dài để có lớp văn bản thật sự."]] * 600)
    try:
        with (
            open(mixed / "reports" / "water.pdf", "rb") as pdf,
            open(mixed / "reports" / "maintenance.docx", "rb") as word,
        ):
            answer = requests.post(
                f"{base}/api/files",
                files=[
                    ("files", ("water.pdf", pdf)),
                    ("files", ("maintenance.docx", word)),
                    ("files", ("x.pdf", b"nope")),
                ],
                headers=auth,
                timeout=120,
            )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert sorted(body["documents"]) == ["maintenance.docx", "water.pdf"]
        assert body["read"]["files"] == {"docx": 1, "pdf": 1}
        assert body["read"]["skipped"] == [{"file": "x.pdf", "reason": "named .pdf but it is not a PDF file"}]
        for _ in range(50):  # the other worker follows the write within RELOAD_SECONDS
            hits = requests.get(
                f"{base}/api/search", params={"q": "Trạm bơm Phú Lâm công suất bao nhiêu?", "path": "water"}, timeout=30
            )
            if hits.json()["results"]:
                break
            time.sleep(0.1)
        top = hits.json()["results"][0]
        assert (top["doc_id"], top["path"], top["page"]) == ("water.pdf", "water.pdf", 2)
        with open(huge, "rb") as f:
            refused = requests.post(f"{base}/api/files", files={"files": ("huge.pdf", f)}, headers=auth, timeout=120)
        assert refused.status_code == 422
        assert "600 pages, over the limit of 500" in refused.json()["error"]["message"]
        anonymous = requests.post(f"{base}/api/files", files={"files": ("a.txt", b"x")}, timeout=30)
        assert anonymous.status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.model
def test_each_format_s_own_fact_is_found_by_a_question(real_encoder, tmp_path, mixed):
    from index.retrieve.search import Searcher

    out = tmp_path / "index"
    build_index([mixed], out, real_encoder, progress=False)
    searcher = Searcher.open(out, encoder=real_encoder)
    questions = {
        "Trạm bơm Phú Lâm có công suất bao nhiêu?": "reports/water.pdf",
        "Hợp đồng bảo trì thang máy trị giá bao nhiêu?": "reports/maintenance.docx",
        "Đội xe bồn có bao nhiêu chiếc?": "web/mua-kho.html",
        "Giá nước sinh hoạt bậc một là bao nhiêu?": "gia-1",
        "Thư viện mở cửa đến mấy giờ thứ Bảy?": "a/readme.md",
        "Nhà máy nước Thủ Đức xử lý nước sông nào?": "notepad.txt",
        "Hồ chứa nào cung cấp nước thô?": "cu.txt",
        "What budget did the Lyon water board approve?": "lyon.txt",
        "Đập tràn nào cần gia cố trước mùa mưa?": "reports/minutes.odt",
        "Khử trùng bể chứa nước bằng chất gì?": "books/guide.epub",
    }
    for question, doc_id in questions.items():
        top = [r.doc_id for r in searcher.search(question, 3)]
        assert doc_id in top, (question, top)
    [pdf_hit] = searcher.search("Trạm bơm Phú Lâm", 1, mode="lexical")
    assert (pdf_hit.path, pdf_hit.page) == ("reports/water.pdf", 2)
    only_reports = searcher.search("công suất", 10, filters=Filters(paths=("reports/",)))
    assert only_reports and all(r.path.startswith("reports/") for r in only_reports)


@pytest.mark.parametrize("backend", ["embedded", "milvus"])
def test_provenance_and_path_filters_on_both_backends(backend, tmp_path, fake_encoder, mixed):
    from index.retrieve.search import Searcher
    from tests.conftest import milvus_lite

    stop = None
    location = tmp_path / "index"
    if backend == "milvus":
        location, stop = milvus_lite(tmp_path / "m.db")
    try:
        build_index([mixed], location, fake_encoder, progress=False)
        searcher = Searcher.open(location, encoder=fake_encoder)
        hits = searcher.search("Trạm bơm Phú Lâm công suất", 10, mode="lexical", filters=Filters(paths=("reports/",)))
        assert hits and {r.path for r in hits} <= {
            "reports/water.pdf",
            "reports/maintenance.docx",
            "reports/minutes.odt",
        }
        pdf = next(r for r in hits if r.path == "reports/water.pdf")
        assert pdf.page == 2 and pdf.doc_id == "reports/water.pdf"
        dense = searcher.search("giá nước", 10, mode="dense", filters=Filters(paths=("prices.csv",)))
        assert {(r.doc_id, r.row) for r in dense} == {("gia-1", 2), ("gia-2", 3)}
        assert searcher.search("giá nước", 5, filters=Filters(paths=("nowhere/",))) == []
        document = searcher.document("reports/water.pdf")
        assert (document["path"], document["format"]) == ("reports/water.pdf", "pdf")
        searcher.index.close()
    finally:
        if stop:
            stop()


def test_the_sandbox_enforces_its_time_and_memory_limits(tmp_path, mixed):
    from index.ingest.files import InputFile
    from index.ingest.sandbox import SandboxLimits, read_untrusted

    pdf = InputFile(mixed / "reports" / "water.pdf", "water.pdf")
    reading = Reading()
    assert read_untrusted([pdf], SandboxLimits(wall_seconds=0.05), reading, "api") == []
    assert reading.skipped == [("water.pdf", "took longer than 0.05 s to read")]
    big = tmp_path / "big.txt"  # 40 MB of text: reading and decoding it needs more than the cap leaves
    big.write_bytes(("Một dòng văn bản dài để đọc. " * 1000 + "\n").encode() * 1250)
    reading = Reading()
    limits = SandboxLimits(memory_bytes=256 * 2**20)
    assert read_untrusted([InputFile(big, "big.txt")], limits, reading, "api") == []
    [(what, why)] = reading.skipped
    assert what == "big.txt" and ("MemoryError" in why or "needed more than 256 MiB" in why), why
    reading = Reading()
    [doc] = read_untrusted([pdf], SandboxLimits(), reading, "api")
    assert (doc.doc_id, doc.origin, doc.blocks[-1].page) == ("water.pdf", "api", 2)


def test_a_path_filter_over_more_documents_than_sqlite_binds_at_once(tmp_path, fake_encoder):
    import sqlite3

    from index.build import build_from_documents
    from index.ingest.document import document_from_lines
    from index.retrieve.search import Searcher

    documents = [
        document_from_lines(f"d/{n}.txt", [f"Tài liệu số {n} về nước sạch."], title="", path=f"d/{n}.txt")
        for n in range(25_000)
    ]
    out = tmp_path / "index"
    build_from_documents(documents, out, fake_encoder, progress=False)
    searcher = Searcher.open(out, encoder=fake_encoder)
    # as SQLite builds with a lower limit than this machine's (32,766 by default, 999 before 3.32)
    searcher.index.passages._connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 10_000)
    for mode in ("dense", "lexical", "hybrid"):
        hits = searcher.search("nước sạch", 5, mode=mode, filters=Filters(paths=("d/",)))
        assert len(hits) == 5 and all(r.path.startswith("d/") for r in hits)
    searcher.index.close()
