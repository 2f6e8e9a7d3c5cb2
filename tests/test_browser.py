"""The search page in a real browser: Debian's chromium driven by Playwright."""

import shutil

import pytest

pytestmark = [pytest.mark.model, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# No background traffic: this machine has no network beyond package registries.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def test_search_from_the_form_and_follow_similar(browser, live_server, tmp_path):
    page = browser.new_page()
    page.goto(live_server + "/")
    assert page.locator("html").get_attribute("lang") == "vi"
    page.fill("input[name=q]", "Đảng bộ Khối có bao nhiêu đảng viên?")
    page.select_option("select[name=k]", "5")
    page.click("button[type=submit]")
    page.wait_for_selector("li.result")
    results = page.locator("li.result")
    assert results.count() == 5
    top_three = " ".join(results.nth(i).inner_text() for i in range(3))
    assert "152 đảng bộ" in top_three
    assert page.locator("li.result mark").count() > 0
    assert "8.400 đảng viên" in page.locator("li.result .answer").first.inner_text()
    assert "2023-05-29" in results.first.inner_text()
    page.screenshot(path=str(tmp_path / "search.png"), full_page=True)

    results.first.locator("a.similar").click()
    page.wait_for_selector("section.context p.current")
    assert "/passages/" in page.url
    assert page.locator("ol.results li.result").count() == 5
    page.close()


def test_filters_and_next_page_from_the_form(browser, live_server):
    page = browser.new_page()
    page.goto(live_server + "/?q=đảng+viên+chi+bộ&k=5")
    first_page = [page.locator("li.result .text").nth(i).inner_text() for i in range(5)]
    page.click("a[rel=next]")
    page.wait_for_selector("ol.results[start='6'] li.result")
    assert "offset=5" in page.url and page.locator("a[rel=prev]").count() == 1
    assert not set(first_page) & {page.locator("li.result .text").nth(i).inner_text() for i in range(5)}

    page.fill("input[name=date_from]", "2023-05-01")
    page.fill("input[name=date_to]", "2023-06-30")
    page.click("button[type=submit]")
    page.wait_for_selector("li.result")
    dates = page.locator("li.result .date").all_inner_texts()
    assert dates and all("2023-05-01" <= d <= "2023-06-30" for d in dates)
    assert page.locator("li.result").count() == len(dates)  # undated documents are filtered out

    page.select_option("select[name=source]", "Báo Nam Định")
    page.fill("input[name=date_from]", "")
    page.fill("input[name=date_to]", "")
    page.click("button[type=submit]")
    page.wait_for_selector("li.result")
    assert set(page.locator("li.result .source").all_inner_texts()) == {"Báo Nam Định"}
    assert page.locator("li.result").count() == page.locator("li.result .source").count()
    page.close()


def test_page_works_without_javascript(browser, live_server):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(live_server + "/?q=tuyen+truyen+Fanpage+Zalo&k=5")
    assert page.locator("li.result").count() == 5
    assert page.locator("li.result mark", has_text="Fanpage").count() >= 1
    context.close()


def test_unaccented_query_highlights_accented_words(browser, live_server):
    page = browser.new_page()
    page.goto(live_server + "/?q=sinh+hoat+chi+bo&k=5")
    marks = {m.lower() for m in page.locator("li.result mark").all_inner_texts()}
    assert {"sinh", "hoạt", "chi", "bộ"} <= marks
    page.close()


def csp_violations(page) -> list[str]:
    seen: list[str] = []
    page.on("console", lambda message: seen.append(message.text) if "Content Security Policy" in message.text else None)
    return seen


def test_api_docs_render_offline_under_the_security_policy(browser, live_server):
    page = browser.new_page()
    violations = csp_violations(page)
    page.goto(live_server + "/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    assert page.locator(".opblock").count() >= 10
    assert "/api/search" in page.locator("body").inner_text()
    assert not violations
    page.close()


def test_search_page_breaks_no_security_policy(browser, live_server):
    page = browser.new_page()
    violations = csp_violations(page)
    page.goto(live_server + "/?q=Fanpage+Zalo&k=5")
    assert page.locator("li.result").count() == 5
    assert page.evaluate("getComputedStyle(document.querySelector('header.site')).display") != ""
    assert not violations
    page.close()
