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
    page.goto(live_server + "/?q=đảng+viên+chi+bộ&k=5&group=passage")
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
    # "chi" and "bộ" are among the commonest syllables of these articles: not marked
    assert {"sinh", "hoạt"} <= marks and not {"chi", "bộ"} & marks
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


DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
SEED_QUESTION = "Đảng bộ Khối có bao nhiêu đảng viên?"


@pytest.fixture(params=[DESKTOP, PHONE], ids=["desktop", "phone"])
def page(request, browser):
    context = browser.new_context(viewport=request.param)
    page = context.new_page()
    yield page
    context.close()


def ask(page, live_server: str, question: str) -> None:
    page.goto(live_server + "/")
    page.fill("input[name=q]", question)
    page.click("button[type=submit]")
    page.wait_for_selector("ol.results")


def test_answer_box_holds_the_answer_above_the_results(page, live_server):
    ask(page, live_server, SEED_QUESTION)
    box = page.locator("section.answer-box")
    assert box.count() == 1 and page.locator(".no-answer").count() == 0
    assert box.locator("strong").inner_text() == "8.400 đảng viên"
    assert "2023-05-29" in box.inner_text() and "Độ tin cậy" in box.inner_text()
    # on a phone too the answer starts in the first screen, not near its bottom edge
    assert box.bounding_box()["y"] + 60 < page.viewport_size["height"] * 0.6
    box.locator("a").click()
    page.wait_for_selector("section.context p.current")
    assert "8.400 đảng viên" in page.locator("section.context p.current").inner_text()


def test_no_answer_is_said_plainly_with_the_nearest_passages_dimmed(page, live_server):
    ask(page, live_server, "giá vàng hôm nay")
    assert "Không có đoạn văn nào trả lời câu hỏi này" in page.locator(".no-answer").inner_text()
    assert page.locator("section.answer-box").count() == 0
    assert page.locator("ol.results.dimmed li.result").count() >= 1
    assert page.locator("li.result .answer").count() == 0  # nothing underlined as an answer


def test_results_grouped_by_article_and_the_rest_of_one_a_link_away(page, live_server):
    ask(page, live_server, "sinh hoạt chi bộ")
    titles = page.locator("li.result a.title").all_inner_texts()
    assert len(titles) == len(set(titles)) >= 3
    first_title = titles[0]
    page.locator("li.result a.more").first.click()
    page.wait_for_selector("li.result")
    assert "group=passage" in page.url and "doc_id=" in page.url
    assert set(page.locator("li.result a.title").all_inner_texts()) == {first_title}
    assert page.locator("li.result").count() > 1


def test_sort_by_date_puts_the_newest_first(page, live_server):
    page.goto(live_server + "/?q=" + SEED_QUESTION)
    if page.locator("details.options summary").is_visible():  # folded on a phone
        page.click("details.options summary")
    page.select_option("select[name=sort]", "date")
    page.select_option("select[name=group]", "passage")
    page.click("button[type=submit]")
    page.wait_for_selector("li.result")
    assert "sort=date" in page.url and "mới nhất trước" in page.locator("p.summary").inner_text()
    dates = page.locator("li.result .date").all_inner_texts()
    likely = dates[: max(1, len(dates) // 3)]
    assert likely == sorted(likely, reverse=True)
    # the disclosure stays open on the results, showing the option chosen
    assert page.locator("details.options").get_attribute("open") is not None


def test_back_link_keeps_the_question_and_filters(page, live_server):
    page.goto(live_server + "/?q=sinh+hoạt+chi+bộ&k=5&date_from=2023-01-01")
    page.locator("li.result a.title").first.click()
    page.wait_for_selector("section.context")
    page.click("a.back")
    page.wait_for_selector("li.result")
    assert page.input_value("input[name=q]") == "sinh hoạt chi bộ"
    assert page.input_value("input[name=date_from]") == "2023-01-01" and "k=5" in page.url


def test_filters_are_folded_on_a_phone_and_shown_on_a_desktop(page, live_server):
    page.goto(live_server + "/?q=sinh+hoạt+chi+bộ")
    fields = page.locator("details.options select[name=source]")
    if page.viewport_size["width"] < 600:
        assert not fields.is_visible() and page.locator("details.options summary").is_visible()
        page.click("details.options summary")
        assert fields.is_visible()
    else:
        assert fields.is_visible() and not page.locator("details.options summary").is_visible()


def test_paging_past_the_end_says_so(page, live_server):
    page.goto(live_server + "/?q=sinh+hoạt+chi+bộ&k=5&offset=500")
    assert "Không còn kết quả nào ở trang này" in page.locator("p.summary").inner_text()
    page.click("text=Về trang đầu")
    page.wait_for_selector("li.result")
    assert page.locator("ol.results").get_attribute("start") == "1"


@pytest.mark.parametrize(
    "path",
    ["/", f"/?q={SEED_QUESTION}", "/?q=giá+vàng+hôm+nay", "/?q=x&date_from=2023-13-01", "/no/such/page", "/upload"],
    ids=["search", "results", "no-answer", "form-error", "404", "upload"],
)
def test_no_serious_accessibility_violations(browser, live_server, path):
    from axe_playwright_python.sync_playwright import Axe

    for viewport in (DESKTOP, PHONE):
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        page.goto(live_server + path)
        violations = Axe().run(page).response["violations"]
        serious = [
            (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
            for v in violations
            if v["impact"] in ("serious", "critical")
        ]
        assert not serious, (viewport, serious)
        context.close()


def test_passage_page_has_no_serious_accessibility_violations(browser, live_server):
    from axe_playwright_python.sync_playwright import Axe

    page = browser.new_page()
    page.goto(live_server + "/?q=sinh+hoạt+chi+bộ")
    page.locator("li.result a.title").first.click()
    page.wait_for_selector("section.context")
    violations = Axe().run(page).response["violations"]
    assert not [v["id"] for v in violations if v["impact"] in ("serious", "critical")]
    page.close()


def test_favicon_is_served(browser, live_server):
    page = browser.new_page()
    response = page.goto(live_server + "/favicon.ico")
    assert response.status == 200 and response.headers["content-type"] == "image/vnd.microsoft.icon"
    page.close()
