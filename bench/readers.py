"""How fast the readers read, and how well: PDF by PDFium (pypdfium2, what semsearch uses) against
pdfminer.six on the same PDF, and files a second for every other format.

The files are written here from ViQuAD paragraphs (Vietnamese Wikipedia): a PDF of --pages pages
(fpdf2, DejaVu Sans, a running header and page numbers), and --files files of each other format.
PDF text quality is the word-level F1 of the text read against the paragraphs written (headers
and page numbers aside), so a reader that drops, splits or garbles words scores lower.

    python bench/readers.py [--pages 60] [--files 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import shutil
import time
from collections import Counter
from pathlib import Path

from figures import spread

from index.ingest.files import Reading, find_files, read_documents
from index.ingest.pdf import pdf_document

ROOT = Path(__file__).resolve().parent.parent
VIQUAD = ROOT.parent / "shared" / "eval" / "viquad" / "corpus.jsonl"
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def paragraphs(count: int) -> list[str]:
    lines = VIQUAD.read_text(encoding="utf-8").splitlines()[:count]
    return [json.loads(line)["text"] for line in lines]


def write_pdf(path: Path, texts: list[str], pages: int) -> list[str]:
    """Paragraphs until `pages` pages are full; the paragraphs written."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_font("dejavu", fname=str(FONT))
    pdf.set_margins(15, 20)
    pdf.set_auto_page_break(True, margin=20)

    def furniture() -> None:
        pdf.set_font("dejavu", size=8)
        pdf.set_xy(15, 8)
        pdf.cell(0, 5, "Bách khoa thư — bản in thử", align="C")
        pdf.set_xy(15, 285)
        pdf.cell(0, 5, f"Trang {pdf.page_no()}", align="C")
        pdf.set_xy(15, 20)
        pdf.set_font("dejavu", size=10)

    pdf.add_page()
    furniture()
    written = []
    for text in texts:
        before = pdf.page_no()
        pdf.multi_cell(0, 5, text, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        if pdf.page_no() != before:  # furniture on the pages the paragraph ran onto
            y = pdf.get_y()
            furniture()
            pdf.set_y(y)
        written.append(text)
        if pdf.page_no() >= pages:
            break
    pdf.output(str(path))
    return written


def f1(read: str, truth: str) -> float:
    got, want = Counter(read.split()), Counter(truth.split())
    common = sum((got & want).values())
    return 2 * common / (sum(got.values()) + sum(want.values()))


def timed(function, repeats: int) -> tuple[list[float], object]:
    seconds, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - started)
    return seconds, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=60)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = ROOT / "var" / "bench" / "readers"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    texts = paragraphs(max(args.files, 2000))

    pdf = work / "book.pdf"
    truth = " ".join(write_pdf(pdf, texts, args.pages))
    print(f"PDF: {args.pages} pages of ViQuAD paragraphs, {args.repeats} repeats; pages/s min / median / max")

    def pdfium() -> str:
        return " ".join(block.text for block in pdf_document("book.pdf", pdf).blocks)

    def pdfminer() -> str:
        from pdfminer.high_level import extract_text

        return " ".join(extract_text(str(pdf)).split())

    for name, reader in (("pypdfium2 (semsearch's reader)", pdfium), ("pdfminer.six extract_text", pdfminer)):
        seconds, text = timed(reader, args.repeats)
        rates = [args.pages / s for s in seconds]
        print(f"  {name:32s} {spread(rates)} pages/s   word F1 {f1(text, truth):.3f}")

    folders = {
        "docx": _docx_folder,
        "html": _html_folder,
        "markdown": _markdown_folder,
        "text (cp1258)": _cp1258_folder,
    }
    print(f"\nOther formats: {args.files} files each, read by read_documents; files/s min / median / max")
    for name, make in folders.items():
        folder = work / name.split()[0]
        folder.mkdir()
        make(folder, texts[: args.files])
        files = find_files([folder])
        seconds, documents = timed(lambda files=files: list(read_documents(files, Reading())), args.repeats)
        assert len(documents) == args.files, (name, len(documents))
        print(f"  {name:16s} {spread([args.files / s for s in seconds])} files/s")
    table = work / "rows.csv"
    with open(table, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "title", "text"])
        writer.writerows([f"r{n}", f"Dòng {n}", text] for n, text in enumerate(texts))
    seconds, documents = timed(lambda: list(read_documents(find_files([table]), Reading())), args.repeats)
    print(f"  {'csv rows':16s} {spread([len(documents) / s for s in seconds], 0)} rows/s ({len(documents)} rows)")
    print(f"\n{datetime.date.today().isoformat()}, `python bench/readers.py` (pages={args.pages}, files={args.files})")
    return 0


def _docx_folder(folder: Path, texts: list[str]) -> None:
    import docx

    for n, text in enumerate(texts):
        word = docx.Document()
        word.add_heading(f"Mục {n}", level=1)
        for sentence in text.split(". "):
            word.add_paragraph(sentence)
        word.save(str(folder / f"{n}.docx"))


def _html_folder(folder: Path, texts: list[str]) -> None:
    for n, text in enumerate(texts):
        body = "".join(f"<p>{sentence}.</p>" for sentence in text.split(". "))
        (folder / f"{n}.html").write_text(
            f"<html><head><title>Bài {n}</title></head><body><nav>Trang chủ · Tin tức</nav>"
            f"<article><h1>Bài {n}</h1>{body}</article><footer>© Báo</footer></body></html>",
            encoding="utf-8",
        )


def _markdown_folder(folder: Path, texts: list[str]) -> None:
    for n, text in enumerate(texts):
        (folder / f"{n}.md").write_text(f"# Bài {n}\n\n> {text}\n\n## Ghi chú\n\n*{text[:80]}*\n", encoding="utf-8")


def _cp1258_folder(folder: Path, texts: list[str]) -> None:
    import unicodedata

    tones = "\u0300\u0301\u0303\u0309\u0323"
    for n, text in enumerate(texts):
        out = []
        for char in unicodedata.normalize("NFC", f"Bài {n}\n\n{text}"):
            try:
                char.encode("cp1258")
                out.append(char)
            except UnicodeEncodeError:
                parts = unicodedata.normalize("NFD", char)
                base = unicodedata.normalize("NFC", parts[0] + "".join(m for m in parts[1:] if m not in tones))
                out.append(base + "".join(m for m in parts[1:] if m in tones))
        (folder / f"{n}.txt").write_bytes("".join(out).encode("cp1258", errors="replace"))


if __name__ == "__main__":
    raise SystemExit(main())
