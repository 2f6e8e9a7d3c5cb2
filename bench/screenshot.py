"""The docs' screenshots of the search page, taken by Debian's chromium through Playwright from a
server on the index given (`make index` builds the demo's): a question answered (the README's),
a question nothing answers, a phone's screen, and a passage in its context.

    python bench/screenshot.py --index var/index [--out docs]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from urllib.parse import quote

from http_load import free_port, start_server
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "Đảng bộ Khối có bao nhiêu đảng viên?"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# file name: (viewport, what to open, what to click then, if anything)
SHOTS = {
    "screenshot.png": (DESKTOP, f"/?q={quote(QUESTION)}", None),
    "screenshot-no-answer.png": (DESKTOP, "/?q=" + quote("giá vàng hôm nay"), None),
    "screenshot-phone.png": (PHONE, f"/?q={quote(QUESTION)}", None),
    "screenshot-passage.png": (DESKTOP, f"/?q={quote(QUESTION)}", "section.answer-box a"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index", type=Path, default=ROOT / "var" / "index")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()

    port = free_port()
    server = start_server(args.index, port, workers=1, threads=4)
    base = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as playwright:
            chromium = shutil.which("chromium") or "/usr/bin/chromium"
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"], headless=True)
            for name, (viewport, path, click) in SHOTS.items():
                page = browser.new_page(viewport=viewport)
                page.goto(base + path)
                if click:
                    page.click(click)
                    page.wait_for_load_state()
                page.screenshot(path=str(args.out / name), full_page=False)
                page.close()
                print(f"wrote {args.out / name}")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
