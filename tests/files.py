"""Real files of every format the readers take, written by code (fpdf2 for PDF, python-docx for
Word): each holds a fact no other file does, so a question finds it only if it was read."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # Debian's fonts-dejavu-core (chromium's fonts)

PDF_FACT = "Trạm bơm Phú Lâm công suất 150.000 mét khối mỗi ngày"
DOCX_FACT = "Hợp đồng bảo trì thang máy ký với Công ty Thăng Long trị giá 480 triệu đồng"
HTML_FACT = "Đội xe bồn gồm 25 chiếc túc trực 24 giờ"
CSV_FACT = "Giá nước sinh hoạt bậc một là 6.700 đồng mỗi mét khối"
MD_FACT = "Thư viện mở cửa đến 21 giờ vào thứ Bảy"
UTF16_FACT = "Nhà máy nước Thủ Đức xử lý nước sông Đồng Nai"
CP1258_FACT = "Hồ chứa Dầu Tiếng cung cấp nước thô cho thành phố"
CP1252_FACT = "The Lyon water board approved a budget of 12 million euros"
ODT_FACT = "Biên bản họp ghi nhận đập tràn Suối Cát cần gia cố trước mùa mưa"
EPUB_FACT = "Sổ tay hướng dẫn cách khử trùng bể chứa nước bằng Cloramin B"

HTML_PAGE = (
    """<!DOCTYPE html><html lang="vi"><head><meta charset="utf-8">
<title>Cấp nước an toàn mùa khô 2024 | Công ty Cấp nước ABC</title>
<meta property="og:title" content="Cấp nước an toàn mùa khô 2024">
<meta property="article:published_time" content="2024-03-15T08:00:00+07:00">
<meta name="author" content="Nguyễn Văn An"></head><body>
<div class="logo">Công ty Cấp nước ABC</div>
<nav><a href="/">Trang chủ</a> <a href="/tin">Tin tức</a> <a href="/lien-he">Liên hệ</a></nav>
<div id="cookie-banner" class="cookie-consent">Chúng tôi dùng cookie để cải thiện trải nghiệm của bạn.
<button>Đồng ý</button></div>
<article><h1>Cấp nước an toàn mùa khô 2024</h1>
<p>Công ty đã lắp đặt 12 trạm bơm tăng áp mới tại các xã vùng cao, bảo đảm nước sạch cho hơn 40.000 hộ dân.</p>
<h2>Kế hoạch dự phòng khi mất nước</h2>
<p>"""
    + HTML_FACT
    + """, sẵn sàng chở nước đến các khu dân cư bị gián đoạn do sự cố đường ống.</p>
</article>
<div class="share">Chia sẻ: Facebook Zalo Twitter</div>
<footer>© 2024 Công ty Cấp nước ABC. Địa chỉ: 123 Đường Lớn, Hà Nội.</footer></body></html>"""
)

_TONES = "\u0300\u0301\u0303\u0309\u0323"


def cp1258(text: str) -> bytes:
    """Vietnamese as Windows-1258 writes it: base letters precomposed, tone marks combining."""
    out = []
    for char in unicodedata.normalize("NFC", text):
        try:
            char.encode("cp1258")
            out.append(char)
        except UnicodeEncodeError:
            parts = unicodedata.normalize("NFD", char)
            base = parts[0] + "".join(m for m in parts[1:] if m not in _TONES)
            out.append(unicodedata.normalize("NFC", base) + "".join(m for m in parts[1:] if m in _TONES))
    return "".join(out).encode("cp1258")


def write_pdf(path: Path, pages: list[list[str]], title: str = "", header: str = "", lines: bool = False) -> Path:
    """A PDF with a text layer: each page's paragraphs (wrapped by fpdf2, or one line each when
    `lines`), a running `header`, and its page number at the foot."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_font("dejavu", fname=str(FONT))
    pdf.set_auto_page_break(False)
    if title:
        pdf.set_title(title)
    for number, paragraphs in enumerate(pages, 1):
        pdf.add_page()
        pdf.set_font("dejavu", size=9)
        if header:
            pdf.set_xy(10, 8)
            pdf.cell(0, 5, header, align="C")
        pdf.set_xy(10, 20)
        pdf.set_font("dejavu", size=11)
        for paragraph in paragraphs:
            if lines:
                pdf.cell(0, 6, paragraph, new_x="LMARGIN", new_y="NEXT")
            else:
                pdf.multi_cell(0, 6, paragraph, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(4)
        pdf.set_xy(10, 285)
        pdf.set_font("dejavu", size=9)
        pdf.cell(0, 5, f"Trang {number}", align="C")
    pdf.output(str(path))
    return path


def write_scan(path: Path, pages: int = 2) -> Path:
    """A PDF of drawings only, as a scanner makes: no text layer."""
    from fpdf import FPDF

    pdf = FPDF()
    for _ in range(pages):
        pdf.add_page()
        pdf.rect(20, 20, 170, 250, style="F")
    pdf.output(str(path))
    return path


def write_docx(path: Path) -> Path:
    import datetime

    import docx

    word = docx.Document()
    word.core_properties.title = "Báo cáo bảo trì tòa nhà"
    word.core_properties.author = "Phòng Hành chính"
    word.core_properties.created = datetime.datetime(2024, 5, 20, 9, 0)
    word.add_heading("Hợp đồng dịch vụ", level=1)
    word.add_paragraph(DOCX_FACT + ", thời hạn hai năm.")
    word.add_heading("Chi phí theo hạng mục", level=2)
    table = word.add_table(rows=3, cols=2)
    for row, cells in zip(table.rows, [("Hạng mục", "Chi phí"), ("Thang máy", "480 triệu"), ("Điều hòa", "95 triệu")]):
        for cell, text in zip(row.cells, cells):
            cell.text = text
    word.save(str(path))
    return path


def write_odt(path: Path) -> Path:
    """An OpenDocument text as LibreOffice lays one out: mimetype first, content.xml, meta.xml."""
    import zipfile

    office = 'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
    text = 'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"'
    table = 'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"'
    content = f"""<?xml version="1.0" encoding="UTF-8"?>
<office:document-content {office} {text} {table}><office:body><office:text>
<text:h text:outline-level="1">Biên bản họp kỹ thuật</text:h>
<text:p>{ODT_FACT}, theo kết luận của đoàn kiểm tra.</text:p>
<text:h text:outline-level="2">Việc cần làm</text:h>
<table:table><table:table-row><table:table-cell><text:p>Hạng mục</text:p></table:table-cell>
<table:table-cell><text:p>Hạn</text:p></table:table-cell></table:table-row>
<table:table-row><table:table-cell><text:p>Gia cố đập</text:p></table:table-cell>
<table:table-cell><text:p>Tháng Năm</text:p></table:table-cell></table:table-row></table:table>
</office:text></office:body></office:document-content>"""
    meta = f"""<?xml version="1.0" encoding="UTF-8"?>
<office:document-meta {office} xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0"
 xmlns:dc="http://purl.org/dc/elements/1.1/"><office:meta><dc:title>Biên bản họp tháng Tư</dc:title>
<meta:initial-creator>Ban Kỹ thuật</meta:initial-creator><meta:creation-date>2024-04-12T10:00:00</meta:creation-date>
</office:meta></office:document-meta>"""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        archive.writestr("content.xml", content)
        archive.writestr("meta.xml", meta)
    return path


def write_epub(path: Path) -> Path:
    """An EPUB 3 of two chapters: container, package document (OPF) and XHTML chapters."""
    import zipfile

    def chapter(title: str, text: str) -> str:
        return (
            '<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml"><head>'
            f"<title>{title}</title></head><body><h1>{title}</h1><p>{text}</p></body></html>"
        )

    package = """<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
<dc:title>Sổ tay nước sạch</dc:title><dc:creator>Trung tâm Y tế</dc:creator><dc:date>2023-09-01</dc:date></metadata>
<manifest><item id="c2" href="text/c2.xhtml" media-type="application/xhtml+xml"/>
<item id="c1" href="text/c1.xhtml" media-type="application/xhtml+xml"/></manifest>
<spine><itemref idref="c1"/><itemref idref="c2"/></spine></package>"""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/epub+zip")
        archive.writestr(
            "META-INF/container.xml",
            '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
            '<rootfiles><rootfile full-path="OEBPS/book.opf" media-type="application/oebps-package+xml"/>'
            "</rootfiles></container>",
        )
        archive.writestr("OEBPS/book.opf", package)
        archive.writestr(
            "OEBPS/text/c1.xhtml", chapter("Chương một: Khử trùng", EPUB_FACT + " với liều lượng theo hướng dẫn.")
        )
        archive.writestr(
            "OEBPS/text/c2.xhtml", chapter("Chương hai: Lưu trữ", "Nước đã khử trùng nên dùng trong vòng hai ngày.")
        )
    return path


def mixed_folder(root: Path) -> Path:
    """A folder with every format, odd encodings, twin names in subfolders, and files that cannot
    be read: a scan, an unsupported type, a PDF that is not one."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "reports").mkdir()
    write_pdf(
        root / "reports" / "water.pdf",
        [
            ["Báo cáo vận hành hệ thống cấp nước năm 2024 của thành phố, tổng hợp từ các nhà máy và trạm bơm."],
            [PDF_FACT + ", phục vụ các quận phía tây thành phố từ tháng Ba năm 2024."],
        ],
        title="Báo cáo vận hành 2024",
        header="Công ty Cấp nước — Báo cáo nội bộ",
    )
    write_scan(root / "reports" / "scan.pdf")
    write_docx(root / "reports" / "maintenance.docx")
    write_odt(root / "reports" / "minutes.odt")
    (root / "books").mkdir()
    write_epub(root / "books" / "guide.epub")
    (root / "web").mkdir()
    (root / "web" / "mua-kho.html").write_text(HTML_PAGE, encoding="utf-8")
    (root / "prices.csv").write_text(
        "id,title,content,date\n"
        f"gia-1,Giá nước sinh hoạt,{CSV_FACT}.,2024-01-01\n"
        "gia-2,Giá nước kinh doanh,Giá nước cho cơ sở kinh doanh là 22.000 đồng mỗi mét khối.,2024-01-01\n",
        encoding="utf-8",
    )
    for folder, fact in (("a", MD_FACT), ("b", "Phòng đọc tầng hai dành cho sinh viên")):
        (root / folder).mkdir()
        (root / folder / "readme.md").write_text(
            f"# Thông báo {folder}\n\n> {fact}, theo **quy định** mới của [thư viện](http://lib.example).\n",
            encoding="utf-8",
        )
    (root / "notepad.txt").write_bytes(("\ufeff" + f"Thông báo\n\n{UTF16_FACT}.\n").encode("utf-16-le"))
    (root / "cu.txt").write_bytes(cp1258(f"Tin cũ\n\n{CP1258_FACT} từ năm 1985.\n"))
    (root / "lyon.txt").write_bytes(f"Lyon news\n\n{CP1252_FACT} — “approved” unanimously.\n".encode("cp1252"))
    (root / "budget.xlsx").write_bytes(b"PK\x03\x04not really a workbook")
    (root / "fake.pdf").write_text("this is not a PDF", encoding="utf-8")
    (root / "records.jsonl").write_text(
        json.dumps({"id": "rec-1", "text": "Bản ghi số một về đồng hồ nước thông minh."}, ensure_ascii=False)
        + "\n{broken\n",
        encoding="utf-8",
    )
    return root
