"""The README's screenshot: the search page answering the demo question, taken by Debian's
chromium through Playwright from a server on the index given (`make index` builds the demo's).

    python bench/screenshot.py --index var/index [--out docs/screenshot.png]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from http_load import free_port, start_server
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "Đảng bộ Khối có bao nhiêu đảng viên?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index", type=Path, default=ROOT / "var" / "index")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    args = parser.parse_args()

    port = free_port()
    server = start_server(args.index, port, workers=1, threads=4)
    base = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as playwright:
            chromium = shutil.which("chromium") or "/usr/bin/chromium"
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"], headless=True)
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            page.goto(base + "/")
            page.fill("input[name=q]", QUESTION)
            page.select_option("select[name=k]", "5")
            page.click("button[type=submit]")
            page.wait_for_selector("li.result")
            page.screenshot(path=str(args.out), full_page=False)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
