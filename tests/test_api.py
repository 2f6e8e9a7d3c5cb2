"""Every route and every error status, through Flask's test client."""

import pytest

from index.retrieve.search import MAX_QUERY_CHARS


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
        assert response.get_json()["error"] == {"code": "not_found", "message": "no passage with id " + repr(url.split("/")[3])}
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
    page = client.get("/?q=tuyên+truyền+Fanpage+Zalo&k=5").get_data(as_text=True)
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
    assert response.status_code == 400 and "k must be" in response.get_data(as_text=True)


def test_passage_page_shows_neighbours_and_similar(client):
    hit = first_hit(client)
    page = client.get(f"/passages/{hit['id']}").get_data(as_text=True)
    assert 'class="current"' in page and page.count('class="neighbour"') >= 1
    assert "Đoạn tương tự" in page and page.count('class="result"') == 5
    missing = client.get("/passages/doesnotexist")
    assert missing.status_code == 404 and "Lỗi 404" in missing.get_data(as_text=True)


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
    from index.store.publish import IndexNotFound
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
    assert response.status_code == 400 and "mode: Input should be 'hybrid', 'dense' or 'lexical'" in response.get_json()["error"]["message"]


def test_results_carry_highlights_and_answer(client):
    body = client.get("/api/search", query_string={"q": "thông tin tuyên truyền Fanpage Zalo", "k": 5, "mode": "lexical"}).get_json()
    top = body["results"][0]
    assert [top["text"][a:b] for a, b in top["highlights"]][:1] and all(
        top["text"][a:b].lower() in {"thông", "tin", "tuyên", "truyền", "fanpage", "zalo"} for a, b in top["highlights"]
    )
    answer = top["answer"]
    assert answer["text"] == top["text"][answer["start"] : answer["end"]]
    assert "tuyên truyền" in answer["text"]


def test_page_marks_the_answer_sentence_and_offers_modes(client):
    page = client.get("/?q=Fanpage+Zalo&k=5&mode=lexical").get_data(as_text=True)
    assert '<span class="answer">' in page and '<option value="lexical" selected>' in page
