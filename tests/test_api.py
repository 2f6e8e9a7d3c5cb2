"""Every route and every error status, through Flask's test client, on both backends."""

import io
from pathlib import Path

import pytest

from index.retrieve.search import MAX_QUERY_CHARS
from tests.conftest import both_backends as backend  # noqa: F401  (every test here runs on each)


def first_hit(client, q="đảng viên sinh hoạt chi bộ"):
    return client.get("/api/search", query_string={"q": q, "k": 3}).get_json()["results"][0]


def test_search(client):
    response = client.get("/api/search", query_string={"q": "Fanpage Zalo", "k": 4})
    assert response.status_code == 200
    body = response.get_json()
    assert body["query"] == "Fanpage Zalo" and body["k"] == 4 and body["took_ms"] >= 0
    assert len(body["results"]) == 4
    top = body["results"][0]
    assert set(top) >= {"id", "score", "text", "doc_id", "title", "date", "source", "position"}
    assert "Fanpage" in top["text"]
    assert [r["score"] for r in body["results"]] == sorted((r["score"] for r in body["results"]), reverse=True)


def test_default_k(client, app):
    body = client.get("/api/search?q=đảng").get_json()
    assert body["k"] == app.config["DEFAULT_K"] == len(body["results"])


def test_passage_and_similar(client):
    hit = first_hit(client)
    passage = client.get(f"/api/passages/{hit['id']}").get_json()
    assert passage["id"] == hit["id"] and passage["text"] == hit["text"] and "byline" in passage
    similar = client.get(f"/api/passages/{hit['id']}/similar?k=3").get_json()
    assert similar["id"] == hit["id"] and len(similar["results"]) == 3
    assert hit["id"] not in [r["id"] for r in similar["results"]]


def test_similar_to_text(client):
    response = client.post("/api/similar", json={"text": "tuyên truyền qua Fanpage và Zalo", "k": 2})
    assert response.status_code == 200
    assert len(response.get_json()["results"]) == 2


def test_health(client, fake_searcher):
    body = client.get("/api/health").get_json()
    assert body["status"] == "ok" and body["passages"] == fake_searcher.size and body["documents"] == 5


@pytest.mark.parametrize(
    "url, message",
    [
        ("/api/search", "q is required"),
        ("/api/search?q=%20%20", "q is empty"),
        ("/api/search?q=" + "a" * (MAX_QUERY_CHARS + 1), f"q is longer than {MAX_QUERY_CHARS} characters"),
        ("/api/search?q=x&k=0", "k must be"),
        ("/api/search?q=x&k=abc", "k must be"),
        ("/api/search?q=x&k=101", "k must be"),
        ("/api/passages/0000000000000001/similar?k=-1", "k must be"),
    ],
)
def test_bad_request_is_400_json(client, url, message):
    response = client.get(url)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "bad_request" and message in error["message"]


@pytest.mark.parametrize(
    "body, message",
    [
        ({"text": ""}, "text is empty"),
        ({"text": " \n "}, "text is empty"),
        ({"text": 12}, "text: Input should be a valid string"),
        ({"text": "abc", "k": 2.5}, "k: Input should be a valid integer"),
        ({"text": "abc", "k": "5"}, "k: Input should be a valid integer"),
        ({"text": "abc", "k": 0}, "k must be a whole number"),
        ({"text": "abc", "colour": "red"}, "colour: Extra inputs are not permitted"),
        (["not", "an", "object"], "Input should be a valid dictionary"),
    ],
)
def test_bad_similar_bodies(client, body, message):
    response = client.post("/api/similar", json=body)
    assert response.status_code == 400 and message in response.get_json()["error"]["message"]


def test_invalid_json_body(client):
    response = client.post("/api/similar", data="{oops", content_type="application/json")
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "bad_request"


def test_unknown_ids_are_404(client):
    for url in ("/api/passages/nope", "/api/passages/0000000000000001/similar"):
        response = client.get(url)
        assert response.status_code == 404
        assert response.get_json()["error"] == {
            "code": "not_found",
            "message": "no passage with id " + repr(url.split("/")[3]),
        }
    response = client.get("/api/nothing-here")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"


def test_wrong_method_is_405(client):
    response = client.post("/api/search?q=x")
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]
    assert client.get("/api/similar").status_code == 405


def test_oversized_body_is_413(client, app):
    payload = '{"text": "' + "a" * app.config["MAX_CONTENT_LENGTH"] + '"}'
    response = client.post("/api/similar", data=payload, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"


def test_non_json_body_is_415(client):
    response = client.post("/api/similar", data="text=abc", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.get_json()["error"]["code"] == "unsupported_media_type"


def test_search_page_without_query(client):
    page = client.get("/").get_data(as_text=True)
    assert 'name="q"' in page and "Tìm kiếm" in page and "Số kết quả" in page


def test_search_page_renders_results_on_the_server(client):
    # query_string: a URL written with raw non-ASCII reached the app as mojibake
    page = client.get("/", query_string={"q": "tuyên truyền Fanpage Zalo", "k": 5}).get_data(as_text=True)
    assert page.count('class="result"') == 5
    assert "<mark>Fanpage</mark>" in page and "<mark>Zalo</mark>" in page
    assert "Đoạn tương tự" in page and "/passages/" in page


def test_search_page_highlights_without_diacritics(client):
    page = client.get("/?q=tuyen+truyen+fanpage").get_data(as_text=True)
    assert "<mark>tuyên</mark> <mark>truyền</mark>" in page.lower()


def test_search_page_escapes_the_query(client):
    page = client.get("/", query_string={"q": '<script>alert("x")</script> Zalo'}).get_data(as_text=True)
    assert "<script>alert" not in page
    assert "&lt;script&gt;" in page


def test_search_page_errors_are_shown(client):
    response = client.get("/?q=x&k=zero")
    # in the page's language, naming the field; the API keeps its English
    assert response.status_code == 400 and "Số kết quả: giá trị không hợp lệ" in response.get_data(as_text=True)


def test_passage_page_shows_neighbours_and_similar(client):
    hit = first_hit(client)
    page = client.get(f"/passages/{hit['id']}").get_data(as_text=True)
    assert 'class="current"' in page and page.count('class="neighbour"') >= 1
    assert "Đoạn tương tự" in page and page.count('class="result"') == 5
    missing = client.get("/passages/doesnotexist")
    assert missing.status_code == 404 and "Không có đoạn văn này" in missing.get_data(as_text=True)
    assert missing.headers["Content-Type"].startswith("text/html")


def test_config_from_file_and_environment(tmp_path, monkeypatch, fake_searcher):
    from service import create_app

    settings = tmp_path / "settings.py"
    settings.write_text("DEFAULT_K = 3\nMAX_CONTENT_LENGTH = 1000\n")
    monkeypatch.setenv("SEMSEARCH_CONFIG", str(settings))
    monkeypatch.setenv("SEMSEARCH_DEFAULT_K", "4")
    app = create_app({"SEARCHER": fake_searcher})
    assert app.config["DEFAULT_K"] == 4  # the environment overrides the file
    assert app.config["MAX_CONTENT_LENGTH"] == 1000
    assert len(app.test_client().get("/api/search?q=đảng").get_json()["results"]) == 4


def test_app_refuses_to_start_without_an_index(tmp_path):
    from index.store.base import IndexNotFound
    from service import create_app

    with pytest.raises(IndexNotFound):
        create_app({"INDEX_DIR": str(tmp_path / "missing")})


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_search_modes(client, mode):
    body = client.get("/api/search", query_string={"q": "tuyen truyen Fanpage Zalo", "k": 3, "mode": mode}).get_json()
    assert body["mode"] == mode and len(body["results"]) == 3
    assert any("Fanpage" in r["text"] for r in body["results"])


def test_unknown_mode_is_400(client):
    response = client.get("/api/search?q=x&mode=magic")
    assert (
        response.status_code == 400
        and "mode: Input should be 'hybrid', 'dense' or 'lexical'" in response.get_json()["error"]["message"]
    )


def test_results_carry_highlights_and_answer(client):
    body = client.get(
        "/api/search", query_string={"q": "thông tin tuyên truyền Fanpage Zalo", "k": 5, "mode": "lexical"}
    ).get_json()
    top = body["results"][0]
    assert [top["text"][a:b] for a, b in top["highlights"]][:1] and all(
        top["text"][a:b].lower() in {"thông", "tin", "tuyên", "truyền", "fanpage", "zalo"} for a, b in top["highlights"]
    )
    answer = top["answer"]
    assert answer["text"] == top["text"][answer["start"] : answer["end"]]
    assert "tuyên truyền" in answer["text"]


def _search(client, **asked) -> dict:
    response = client.get("/api/search", query_string={"q": "đảng viên sinh hoạt chi bộ", **asked})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_results_carry_a_confidence_and_the_answer_says_whether_it_answers(client, mode):
    from index.retrieve.confidence import ANSWERED_AT

    first = _search(client, k=5, mode=mode)
    confidences = [r["confidence"] for r in first["results"]]
    assert len(confidences) == 5 and all(0 <= c <= 1 for c in confidences)
    assert first["answered"] is (confidences[0] >= ANSWERED_AT)
    assert first["group"] == "passage" and first["sort"] == "relevance"
    # the best result decides, whichever page is asked for
    assert _search(client, k=5, mode=mode, offset=5)["answered"] is first["answered"]
    # similar passages have no question to answer
    similar = client.get(f"/api/passages/{first['results'][0]['id']}/similar?k=2").get_json()
    assert "answered" not in similar and all(r["confidence"] is None for r in similar["results"])


def test_grouped_by_document_each_document_once_with_how_many_more(client, fake_searcher):
    from index.retrieve.search import POOL

    # the passages a page of documents is grouped from
    _, ids = fake_searcher.rank("đảng viên sinh hoạt chi bộ", POOL, "hybrid")
    stored = fake_searcher.index.passages.by_int_ids(ids.tolist())
    groups: dict[str, int] = {}
    best: dict[str, str] = {}
    for passage in (stored[i] for i in ids.tolist()):
        groups[passage.doc_id] = groups.get(passage.doc_id, -1) + 1
        best.setdefault(passage.doc_id, passage.id)
    assert len(groups) >= 4 and all(r["more"] is None for r in _search(client, k=5)["results"])
    grouped = _search(client, k=2, group="document")
    assert grouped["group"] == "document"
    assert [r["doc_id"] for r in grouped["results"]] == list(groups)[:2]
    assert [r["more"] for r in grouped["results"]] == list(groups.values())[:2]
    assert [r["id"] for r in grouped["results"]] == list(best.values())[:2]
    # paging counts documents
    page = _search(client, k=2, offset=2, group="document")["results"]
    assert [r["doc_id"] for r in page] == list(groups)[2:4]
    # more documents asked for than the first passages hold: ranked deeper until there are
    every = _search(client, k=50, group="document")["results"]
    assert len({r["doc_id"] for r in every}) == len(every) >= len(groups)


def test_sorted_by_date_newest_first_among_likely_results(client, monkeypatch):
    import math

    from index.retrieve import search

    # the first six by relevance are likely enough, the rest are not
    monkeypatch.setattr(search, "confidence", lambda features: 0.9 if features.rank < math.log1p(6) else 0.01)
    ranked = _search(client, k=100)["results"]
    by_date = _search(client, k=20, sort="date")
    assert by_date["sort"] == "date" and by_date["answered"] is True
    likely = sorted(ranked[:6], key=lambda r: r["date"] or "", reverse=True)
    assert [r["id"] for r in by_date["results"]] == [r["id"] for r in likely + ranked[6:20]]
    dates = [r["date"] or "" for r in by_date["results"][:6]]
    assert dates == sorted(dates, reverse=True) and len(set(dates)) > 1
    # grouped and sorted: each document once, the likely ones newest first
    both = _search(client, k=10, sort="date", group="document")["results"]
    assert len({r["doc_id"] for r in both}) == len(both)


def test_a_later_page_of_a_search_matching_nothing_is_empty(client):
    """Whether such a search is answered is asked of a first result there is none of."""
    for asked in ({}, {"group": "document"}, {"sort": "date"}):
        body = _search(client, k=1, offset=998, date_from="1000-01-01", date_to="1000-01-01", **asked)
        assert body["results"] == [] and body["answered"] is False
    page = client.get("/", query_string={"q": "x", "offset": 998, "k": 1, "date_to": "1000-01-01"})
    assert page.status_code == 200 and "Không còn kết quả nào ở trang này" in page.get_data(as_text=True)


@pytest.mark.parametrize("name, value", [("group", "site"), ("sort", "score")])
def test_unknown_group_or_sort_is_400(client, name, value):
    response = client.get("/api/search", query_string={"q": "x", name: value})
    assert response.status_code == 400 and name in response.get_json()["error"]["message"]


def test_page_groups_by_document_and_links_the_rest(client):
    page = client.get("/", query_string={"q": "đảng viên sinh hoạt chi bộ", "k": 10}).get_data(as_text=True)
    assert '<option value="document" selected>' in page and "Bài viết 1–5" in page
    assert page.count('class="result"') == 5 and "đoạn khác từ bài này" in page
    assert f'maxlength="{MAX_QUERY_CHARS}"' in page
    # the link to the rest of a document: the same question, that document's passages
    more = page.split('<a class="more" href="')[1].split('"')[0].replace("&amp;", "&")
    rest = client.get(more).get_data(as_text=True)
    assert '<option value="passage" selected>' in rest and rest.count('class="result"') > 1


def test_page_past_the_end_says_so(client):
    page = client.get("/", query_string={"q": "đảng viên", "k": 5, "offset": 990}).get_data(as_text=True)
    assert "Không còn kết quả nào ở trang này" in page and "Kết quả 991" not in page
    assert 'rel="prev"' not in page and "Về trang đầu" in page


def test_passage_page_links_back_to_the_search(client):
    asked = {"q": "đảng viên sinh hoạt chi bộ", "k": "5", "sort": "date", "date_from": "2020-01-01"}
    page = client.get("/", query_string=asked).get_data(as_text=True)
    link = page.split('<a class="title" href="')[1].split('"')[0].replace("&amp;", "&")
    passage = client.get(link).get_data(as_text=True)
    back = passage.split('<a class="back" href="')[1].split('"')[0].replace("&amp;", "&")
    from urllib.parse import parse_qs, urlsplit

    assert {key: values[0] for key, values in parse_qs(urlsplit(back).query).items()} == asked
    assert "Kết quả tìm kiếm" in passage
    # without a search behind it, back to the empty form
    alone = client.get(link.split("?")[0]).get_data(as_text=True)
    assert '<a class="back" href="/">' in alone
    # a search that could not have been made: refused, in the page's language
    bad = client.get(link.split("?")[0] + "?k=abc")
    assert bad.status_code == 400 and "Số kết quả: giá trị không hợp lệ" in bad.get_data(as_text=True)


def test_favicon_and_a_localized_404(client):
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["Content-Type"] == "image/vnd.microsoft.icon"
    assert icon.data[:4] == b"\x00\x00\x01\x00"  # an ICO file
    missing = client.get("/no/such/page")
    text = missing.get_data(as_text=True)
    assert missing.status_code == 404 and "Không tìm thấy trang" in text and "Not Found" not in text
    assert client.get("/api/nothing").get_json()["error"]["code"] == "not_found"  # the API keeps its English


def test_page_underlines_answers_only_of_likely_results_and_offers_modes(client, monkeypatch):
    from index.retrieve import search

    asked = {"q": "tuyen truyen Fanpage Zalo", "k": 5, "mode": "lexical", "group": "passage"}
    page = client.get("/", query_string=asked).get_data(as_text=True)
    assert '<option value="lexical" selected>' in page and '<option value="passage" selected>' in page
    results = client.get("/api/search", query_string=asked).get_json()["results"]
    likely = [r for r in results if r["answer"] and r["confidence"] >= search.ANSWERED_AT]
    assert page.count('<span class="answer">') == len(likely)
    # every result likely: each answer sentence underlined
    monkeypatch.setattr(search, "confidence", lambda features: 0.99)
    page = client.get("/", query_string=asked).get_data(as_text=True)
    assert page.count('<span class="answer">') == sum(1 for r in results if r["answer"]) >= 1
    assert 'class="answer-box"' in page and "no-answer" not in page
    monkeypatch.setattr(search, "confidence", lambda features: 0.01)
    page = client.get("/", query_string=asked).get_data(as_text=True)
    assert '<span class="answer">' not in page and 'class="answer-box"' not in page
    assert "Không có đoạn văn nào trả lời câu hỏi này" in page and 'class="results dimmed"' in page


# -- writes --------------------------------------------------------------------------------------

KEY = "k-" + "s3cret" * 4


@pytest.fixture
def writable(fake_searcher):
    from service import create_app

    app = create_app(
        {
            "TESTING": True,
            "SEARCHER": fake_searcher,
            "RATE_LIMIT": "off",
            "RELOAD_SECONDS": 0,
            "API_KEYS": f"other-key,{KEY}",
        }
    )
    return app.test_client()


AUTH = {"Authorization": f"Bearer {KEY}"}
DOC = {
    "title": "Hội thao Zyxwv",
    "text": "Chi bộ Zyxwv tổ chức hội thao.\n\nGiải bóng chuyền Zyxwv có mười hai đội.",
    "date": "2024-05-01",
    "source": "Báo Mới",
}


def test_writes_are_off_without_configured_keys(client):
    response = client.put("/api/documents/new-1", json=DOC)
    assert response.status_code == 403 and "SEMSEARCH_API_KEYS" in response.get_json()["error"]["message"]
    assert client.delete("/api/documents/new-1").status_code == 403


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {KEY}", f"Bearer {KEY}x", "Bearer"])
def test_writes_need_a_valid_key(writable, header):
    response = writable.put("/api/documents/new-1", json=DOC, headers={"Authorization": header} if header else {})
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    assert writable.get("/api/documents/new-1").status_code == 404  # nothing was written


def test_put_get_search_delete(writable, caplog):
    created = writable.put("/api/documents/new-1", json=DOC, headers=AUTH)
    assert created.status_code == 200
    body = created.get_json()
    assert body["documents"] == ["new-1"] and body["passages_added"] == 2 and body["passages_removed"] == 0
    top = writable.get("/api/search", query_string={"q": "Zyxwv bóng chuyền", "k": 1}).get_json()["results"][0]
    assert top["doc_id"] == "new-1" and top["source"] == "Báo Mới" and top["date"] == "2024-05-01"
    stored = writable.get("/api/documents/new-1").get_json()
    assert stored["title"] == "Hội thao Zyxwv" and top["id"] in stored["passages"] and len(stored["passages"]) == 2

    replaced = writable.put("/api/documents/new-1", json={**DOC, "text": "Chỉ còn một đoạn Zyxwv."}, headers=AUTH)
    assert replaced.get_json()["passages_removed"] == 2 and replaced.get_json()["version"] == body["version"] + 1
    deleted = writable.delete("/api/documents/new-1", headers=AUTH)
    assert deleted.status_code == 200 and deleted.get_json()["passages_removed"] == 1
    assert writable.delete("/api/documents/new-1", headers=AUTH).status_code == 404
    assert writable.get("/api/documents/new-1").status_code == 404
    results = writable.get("/api/search", query_string={"q": "Zyxwv", "k": 20}).get_json()["results"]
    assert "new-1" not in {r["doc_id"] for r in results}
    assert KEY not in caplog.text  # keys are never logged
    metrics = writable.get("/metrics").get_data(as_text=True)
    assert 'semsearch_writes_total{operation="put",result="ok"}' in metrics


def test_post_a_batch_as_json_or_ndjson(writable):
    import json

    batch = [{**DOC, "id": f"batch-{n}", "text": f"Đoạn Zyxwv số {n}."} for n in range(3)]
    answer = writable.post("/api/documents", json=batch, headers=AUTH).get_json()
    assert answer["documents"] == ["batch-0", "batch-1", "batch-2"] and answer["passages_added"] == 3
    ndjson = "\n".join(
        json.dumps({**item, "id": item["id"].replace("batch", "nd")}, ensure_ascii=False) for item in batch
    )
    answer = writable.post(
        "/api/documents", data=ndjson.encode(), headers={**AUTH, "Content-Type": "application/x-ndjson"}
    )
    assert answer.status_code == 200 and answer.get_json()["passages_added"] == 3
    hits = writable.get("/api/search", query_string={"q": "Zyxwv số", "k": 10, "source": "Báo Mới"}).get_json()[
        "results"
    ]
    assert {r["doc_id"] for r in hits} == {"batch-0", "batch-1", "batch-2", "nd-0", "nd-1", "nd-2"}


@pytest.mark.parametrize(
    "body, message",
    [
        ([], "documents has fewer than 1"),
        ([{**DOC, "id": "a//b"}], "documents.0.id"),
        ([{**DOC, "id": "a", "date": "2024-02-30"}], "not a calendar date"),
        ([{**DOC, "id": "a", "colour": "red"}], "colour"),
        ([{"id": "a", "text": " "}], "text is empty"),
        ({"not": "a list"}, "documents is required"),
    ],
)
def test_bad_batches_commit_nothing(writable, body, message):
    before = writable.get("/api/health").get_json()["index_version"]
    response = writable.post("/api/documents", json=body, headers=AUTH)
    assert response.status_code == 400 and message in response.get_json()["error"]["message"]
    assert writable.get("/api/health").get_json()["index_version"] == before


def test_bad_ndjson_is_a_clear_error(writable):
    response = writable.post(
        "/api/documents",
        data=b'{"id": "a", "text": "x"}\n{broken',
        headers={**AUTH, "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 400 and "NDJSON" in response.get_json()["error"]["message"]


def test_filters_and_offset_on_every_search_route(writable):
    writable.post(
        "/api/documents",
        headers=AUTH,
        json=[
            {
                "id": f"f-{n}",
                "text": f"Hội nghị Zyxwv lần {n}.",
                "source": "Báo A" if n % 2 else "Báo B",
                "date": f"2024-0{1 + n % 3}-15",
            }
            for n in range(6)
        ],
    )

    def doc_ids(path, **params):
        answer = writable.get(path, query_string={"k": 10, **params})
        assert answer.status_code == 200, answer.get_json()
        return [r["doc_id"] for r in answer.get_json()["results"]]

    assert set(doc_ids("/api/search", q="Zyxwv hội nghị", source="Báo A")) == {"f-1", "f-3", "f-5"}
    assert set(doc_ids("/api/search", q="Zyxwv hội nghị", doc_id=["f-0", "f-4"])) == {"f-0", "f-4"}
    assert set(doc_ids("/api/search", q="Zyxwv hội nghị", date_from="2024-02-01", date_to="2024-02-28")) == {
        "f-1",
        "f-4",
    }
    first = writable.get(
        "/api/search", query_string={"q": "Zyxwv hội nghị", "k": 3, "source": ["Báo A", "Báo B"]}
    ).get_json()
    second = writable.get(
        "/api/search", query_string={"q": "Zyxwv hội nghị", "k": 3, "offset": 3, "source": ["Báo A", "Báo B"]}
    ).get_json()
    assert second["offset"] == 3 and {r["doc_id"] for r in first["results"] + second["results"]} == {
        f"f-{n}" for n in range(6)
    }
    passage = first["results"][0]["id"]
    assert set(doc_ids(f"/api/passages/{passage}/similar", source="Báo B")) <= {"f-0", "f-2", "f-4"}
    similar = writable.post("/api/similar", json={"text": "Hội nghị Zyxwv", "k": 5, "source": ["Báo A"]}).get_json()
    assert {r["doc_id"] for r in similar["results"]} == {"f-1", "f-3", "f-5"}


@pytest.mark.parametrize(
    "params, message",
    [
        ({"date_from": "15/01/2024"}, "date_from"),
        ({"date_from": "2024-13-01"}, "date_from is not a date (YYYY-MM-DD)"),
        ({"date_to": "2024-02-30"}, "not a calendar date"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "1000"}, "offset"),
        ({"source": ""}, "source"),
    ],
)
def test_bad_filters_are_clear_400s(client, params, message):
    response = client.get("/api/search", query_string={"q": "đảng", **params})
    assert response.status_code == 400 and message in response.get_json()["error"]["message"]


def test_the_page_filters_and_pages(writable):
    writable.post(
        "/api/documents",
        headers=AUTH,
        json=[
            {"id": f"p-{n}", "text": f"Tin Zyxwv thứ {n}.", "source": "Báo A", "date": f"2024-01-0{1 + n % 9}"}
            for n in range(12)
        ],
    )
    form = {"q": "Zyxwv", "k": 5, "source": "Báo A", "date_from": "", "date_to": ""}
    page = writable.get("/", query_string=form).get_data(as_text=True)
    assert page.count('<li class="result">') == 5 and 'rel="next"' in page and 'rel="prev"' not in page
    assert '<option value="Báo A" selected>' in page
    second = writable.get("/", query_string={**form, "offset": 5}).get_data(as_text=True)
    assert 'start="6"' in second and 'rel="prev"' in second
    assert writable.get("/?q=Zyxwv&date_from=hôm+qua").status_code == 400


def test_edge_requests_the_schema_allows_get_plain_answers(writable):
    """What JSON Schema cannot forbid is answered, not refused: a date range that ends before it
    starts matches nothing, a page reaching past depth 1000 is cut short, the later of two
    documents with one id in a batch stays, a document of boilerplate only has no passages."""
    empty = writable.get("/api/search", query_string={"q": "đảng", "date_from": "2024-03-01", "date_to": "2024-01-01"})
    assert empty.status_code == 200 and empty.get_json()["results"] == []
    last = writable.get("/api/search", query_string={"q": "đảng", "offset": 995, "k": 10}).get_json()
    assert len(last["results"]) <= 5
    batch = [
        {"id": "twice", "text": "Bản đầu Zyxwv."},
        {"id": "twice", "text": "Bản sau Zyxwv."},
        {"id": "bare", "text": "***"},
    ]
    answer = writable.post("/api/documents", json=batch, headers=AUTH).get_json()
    assert answer["documents"] == ["twice", "bare"] and answer["passages_added"] == 1
    assert (
        writable.get("/api/search", query_string={"q": "Zyxwv", "k": 1}).get_json()["results"][0]["text"]
        == "Bản sau Zyxwv."
    )
    assert writable.get("/api/documents/bare").get_json()["passages"] == []
    wrong_type = writable.put(
        "/api/documents/x", data=b"text=1", headers={**AUTH, "Content-Type": "multipart/form-data"}
    )
    assert wrong_type.status_code == 415


def test_document_writes_take_json_bodies_up_to_their_own_limit(writable, app):
    """(A body over a route's limit is refused from Content-Length before it is read:
    test_operations.py, against the real server.)"""
    big = [{**DOC, "id": f"big-{n}", "text": f"Đoạn Zyxwv {n}. " + "chữ " * 200} for n in range(400)]
    import json

    body = json.dumps(big, ensure_ascii=False).encode()
    assert app.config["MAX_CONTENT_LENGTH"] < len(body) < app.config["DOCUMENTS_MAX_BYTES"]
    answer = writable.post("/api/documents", data=body, headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["documents"][-1] == "big-399"
    # the search routes keep theirs
    assert writable.post("/api/similar", data=body, content_type="application/json").status_code == 413


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085"])
def test_ndjson_lines_end_at_newlines_only(writable, separator):
    line = '{"id": "nd-sep", "text": "Chi bộ Zyxwv' + separator + 'họp thường kỳ."}'
    answer = writable.post(
        "/api/documents", data=line.encode(), headers={**AUTH, "Content-Type": "application/x-ndjson"}
    )
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["documents"] == ["nd-sep"]


@pytest.mark.parametrize(
    "doc_id",
    [
        " ",
        "  ",
        " lead",
        "trail ",
        "a\u0085b",
        "a\u202eb",
        "a\u200bb",
        "\ufeffbom",
        "a\u2028b",
        ".",
        "..",
        "a//b",
        "a/./b",
        "x" * 201,
    ],
)
def test_document_ids_a_person_cannot_tell_apart_are_refused(writable, doc_id):
    from urllib.parse import quote

    answer = writable.put(f"/api/documents/{quote(doc_id, safe='')}", json=DOC, headers=AUTH)
    assert answer.status_code in (400, 404), answer.get_json()  # '/' never reaches the route
    batch = writable.post("/api/documents", json=[{**DOC, "id": doc_id}], headers=AUTH)
    assert batch.status_code == 400 and "id" in batch.get_json()["error"]["message"]


def test_document_ids_are_one_whatever_the_unicode_form(writable):
    import unicodedata
    from urllib.parse import quote

    composed, decomposed = unicodedata.normalize("NFC", "bài-viết-é"), unicodedata.normalize("NFD", "bài-viết-é")
    assert composed != decomposed
    assert writable.put(f"/api/documents/{quote(composed)}", json=DOC, headers=AUTH).status_code == 200
    replaced = writable.put(f"/api/documents/{quote(decomposed)}", json=DOC, headers=AUTH).get_json()
    assert replaced["documents"] == [composed] and replaced["passages_removed"] == 2
    assert writable.get(f"/api/documents/{quote(decomposed)}").get_json()["id"] == composed
    assert writable.delete(f"/api/documents/{quote(decomposed)}", headers=AUTH).status_code == 200
    assert writable.get(f"/api/documents/{quote(composed)}").status_code == 404


def test_a_key_file_that_cannot_be_read_stops_the_start_and_refuses_writes_with_503(fake_searcher, tmp_path):
    from service import create_app
    from service.errors import ConfigurationError

    keys = tmp_path / "keys"
    config = {
        "TESTING": True,
        "SEARCHER": fake_searcher,
        "RATE_LIMIT": "off",
        "RELOAD_SECONDS": 0,
        "API_KEYS_FILE": str(keys),
    }
    with pytest.raises(ConfigurationError, match="cannot be read"):
        create_app(config)  # missing
    keys.write_bytes(b"\xff\xfe key")
    with pytest.raises(ConfigurationError, match="cannot be read"):
        create_app(config)  # not UTF-8
    keys.write_text(f"{KEY}\n")
    client = create_app(config).test_client()
    assert client.put("/api/documents/k-1", json=DOC, headers=AUTH).status_code == 200
    keys.rename(tmp_path / "moved")  # at run time
    answer = client.put("/api/documents/k-1", json=DOC, headers=AUTH)
    assert answer.status_code == 503 and answer.get_json()["error"]["code"] == "keys_unavailable"
    assert answer.headers["Retry-After"]
    assert client.get("/api/search", query_string={"q": "Zyxwv"}).status_code == 200  # reads go on


def test_writes_are_capped_for_key_holders(writable):
    from service.openapi import MAX_BATCH_DOCUMENTS, MAX_DOCUMENT_CHARS

    many = [{"id": f"cap-{n}", "text": "x"} for n in range(MAX_BATCH_DOCUMENTS + 1)]
    answer = writable.post("/api/documents", json=many, headers=AUTH)
    assert answer.status_code == 400 and f"more than {MAX_BATCH_DOCUMENTS}" in answer.get_json()["error"]["message"]
    long = writable.put(
        "/api/documents/cap-long", json={**DOC, "text": "chữ " * (MAX_DOCUMENT_CHARS // 4 + 1)}, headers=AUTH
    )
    assert long.status_code == 400 and f"longer than {MAX_DOCUMENT_CHARS}" in long.get_json()["error"]["message"]


def test_a_write_waiting_for_another_is_answered_503_soon(writable, fake_searcher):
    import time

    from service import documents

    with documents._WRITING:  # a write of this process under way: answered at once
        started = time.monotonic()
        answer = writable.put("/api/documents/w-1", json=DOC, headers=AUTH)
        assert answer.status_code == 503 and answer.headers["Retry-After"] and time.monotonic() - started < 1
    if isinstance(fake_searcher.followed.location, Path):  # another process's write: after WRITE_WAIT_SECONDS
        from index.store.embedded.publish import index_lock

        with index_lock(fake_searcher.followed.location):
            started = time.monotonic()
            answer = writable.put("/api/documents/w-1", json=DOC, headers=AUTH)
            assert answer.status_code == 503 and answer.get_json()["error"]["code"] == "index_busy"
            assert time.monotonic() - started < 5
    assert writable.put("/api/documents/w-1", json=DOC, headers=AUTH).status_code == 200


def test_the_upload_page_reads_files_for_key_holders_without_javascript(writable):
    page = writable.get("/upload")
    assert page.status_code == 200 and b'enctype="multipart/form-data"' in page.data
    note = (io.BytesIO("Tiêu đề\n\nChi bộ Qwerty tổ chức hội nghị.\n".encode()), "note.txt")
    refused = writable.post("/upload", data={"key": "wrong", "files": [note]}, content_type="multipart/form-data")
    assert refused.status_code == 401 and "Khóa API không đúng".encode() in refused.data
    note = (io.BytesIO("Tiêu đề\n\nChi bộ Qwerty tổ chức hội nghị.\n".encode()), "note.txt")
    bad = (io.BytesIO(b"%PDF-1.4 broken"), "bad.pdf")
    sent = writable.post("/upload", data={"key": KEY, "files": [note, bad]}, content_type="multipart/form-data")
    assert sent.status_code == 200, sent.data
    page = sent.get_data(as_text=True)
    assert "Đã thêm 1 tài liệu" in page and "Bỏ qua bad.pdf: not a readable PDF" in page
    hits = writable.get("/api/search", query_string={"q": "Qwerty", "mode": "lexical"}).get_json()["results"]
    assert [(r["doc_id"], r["path"]) for r in hits] == [("note.txt", "note.txt")]


def test_file_uploads_need_a_key_and_multipart(writable):
    files = {"files": (io.BytesIO(b"x"), "a.txt")}
    assert writable.post("/api/files", data=files, content_type="multipart/form-data").status_code == 401
    typed = writable.post("/api/files", json={"files": []}, headers=AUTH)
    assert typed.status_code == 415
    nothing = writable.post(
        "/api/files",
        data={"files": (io.BytesIO(b"\x00\x01"), "a.bin")},
        headers=AUTH,
        content_type="multipart/form-data",
    )
    assert nothing.status_code == 422
    assert nothing.get_json()["error"] == {"code": "unreadable", "message": "a.bin: unsupported type (.bin)"}


def test_files_their_name_and_first_bytes_refuse_start_no_reader(writable, monkeypatch):
    """A child costs half a second: twenty images took ten, past a client's patience."""
    from index.ingest import sandbox

    monkeypatch.setattr(sandbox.subprocess, "run", lambda *a, **k: pytest.fail("a child was started"))
    files = [(io.BytesIO(b"\x89PNG\r\n\x1a\n"), f"{n}.png") for n in range(19)]
    files.append((io.BytesIO(b"plain text"), "fake.pdf"))
    answer = writable.post("/api/files", data={"files": files}, headers=AUTH, content_type="multipart/form-data")
    assert answer.status_code == 422, answer.get_json()


def test_one_upload_is_read_at_a_time_per_process(writable):
    from service import documents

    with documents._READING:  # another request's files are being read
        api = writable.post(
            "/api/files",
            data={"files": (io.BytesIO(b"Tin.\n"), "a.txt")},
            headers=AUTH,
            content_type="multipart/form-data",
        )
        page = writable.post(
            "/upload", data={"key": KEY, "files": (io.BytesIO(b"Tin.\n"), "a.txt")}, content_type="multipart/form-data"
        )
    assert api.status_code == 503 and api.get_json()["error"]["code"] == "index_busy"
    assert api.headers["Retry-After"] == "1"
    assert page.status_code == 503 and "Máy chủ đang bận" in page.get_data(as_text=True)
