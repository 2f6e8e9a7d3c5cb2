"""Requests that used to produce 500s or odd answers, and what stands in front of the work
(issue 10, findings 3, 4, 6 and 7), through Flask's test client."""

from __future__ import annotations

import pytest

from index.retrieve.search import MAX_K_TIMES_QUERY_CHARS, MAX_QUERY_CHARS
from service.guard import SECURITY_HEADERS, json_nesting


def error_of(response):
    return response.get_json()["error"]


@pytest.mark.parametrize(
    "url, message",
    [
        ("/api/search?q=%ff%fe", "not valid UTF-8"),
        ("/api/search?q=%00", "NUL"),
        ("/api/search?q=a%00b", "NUL"),
        ("/api/search?q=x&k=1_0", "k must be a whole number"),
        ("/api/search?q=x&k=%D9%A1%D9%A0", "k must be a whole number"),  # Arabic-Indic digits
        ("/api/search?q=x&k=+5", "k must be a whole number"),
        ("/api/search?q=x&k=5.0", "k must be a whole number"),
    ],
)
def test_unclean_requests_are_400(client, url, message):
    response = client.get(url)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert message in error_of(response)["message"]


def test_bad_query_on_the_page_is_a_400_page(client):
    response = client.get("/?q=%ff%fe")
    assert response.status_code == 400 and "Máy chủ không hiểu yêu cầu này" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "body, message",
    [
        ('{"text": ' + "[" * 10_000 + "]" * 10_000 + "}", "nested deeper than 64"),
        ('{"text": "\\ud800"}', "lone surrogate"),
        ('{"text": "ok", "k": 3, "x": "\\udfff"}', "lone surrogate"),
        (b'{"text": "\xff\xfe"}', "not valid JSON"),
        ('{"text": "a\\u0000b"}', "NUL"),
    ],
)
def test_hostile_json_bodies_are_400(client, body, message):
    response = client.post("/api/similar", data=body, content_type="application/json")
    assert response.status_code == 400
    assert message in error_of(response)["message"]


def test_nesting_is_measured_outside_strings():
    assert json_nesting('{"a": [[1], {"b": 2}]}') == 3
    assert json_nesting('{"a": "[[[[[[[[[[\\"]]]]"}') == 1
    assert json_nesting("") == 0


def test_nesting_at_the_limit_is_parsed(client):
    body = '{"text": "đảng viên", "k": 2, "nested": ' + "[" * 62 + "]" * 62 + "}"
    response = client.post("/api/similar", data=body, content_type="application/json")
    # parsed, then refused by the model for its unknown field, not for its depth
    assert response.status_code == 400 and "nested: Extra inputs" in error_of(response)["message"]


def test_options_answers_with_allow_and_no_content(client):
    for url, methods in (("/api/search", {"GET", "HEAD", "OPTIONS"}), ("/api/similar", {"POST", "OPTIONS"})):
        response = client.options(url)
        assert response.status_code == 204 and response.get_data() == b""
        assert set(response.headers["Allow"].replace(" ", "").split(",")) == methods
        assert "Content-Type" not in response.headers


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/?q=Zalo",
        "/api/search?q=Zalo",
        "/api/nothing",
        "/openapi.json",
        "/docs",
        "/metrics",
        "/static/style.css",
        "/api/search?q=%00",
    ],
)
def test_security_headers_on_every_response(client, url):
    response = client.get(url)
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value, (url, name)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]


def test_pages_have_no_inline_script(client):
    for url in ("/", "/?q=Zalo", "/docs"):
        page = client.get(url).get_data(as_text=True)
        assert "<script>" not in page and "onclick" not in page.lower()


def test_rate_limit_answers_429_with_retry_after(fake_searcher):
    from service import create_app

    app = create_app({"TESTING": True, "SEARCHER": fake_searcher, "RATE_LIMIT": "3/minute", "RELOAD_SECONDS": 0})
    client = app.test_client()
    statuses = [client.get("/api/search?q=Zalo").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = client.get("/api/search?q=Zalo")
    assert limited.status_code == 429 and error_of(limited)["code"] == "too_many_requests"
    assert int(limited.headers["Retry-After"]) > 0
    assert client.get("/api/health").status_code == 200  # monitoring is never limited
    assert client.get("/metrics").status_code == 200
    other = client.get("/api/search?q=Zalo", environ_base={"REMOTE_ADDR": "10.9.8.7"})
    assert other.status_code == 200  # per client


def test_rate_limit_off(fake_searcher):
    from service import create_app

    app = create_app({"TESTING": True, "SEARCHER": fake_searcher, "RATE_LIMIT": "off", "RELOAD_SECONDS": 0})
    assert {app.test_client().get("/api/search?q=Zalo").status_code for _ in range(30)} == {200}


def test_similar_text_reads_one_passage_window(fake_searcher, fake_encoder):
    window = fake_searcher.index.manifest.chunking["max_tokens"]
    text = "Fanpage Zalo tuyên truyền " + "từ " * 5000
    seen = []
    original = fake_encoder.encode_passages
    fake_encoder.encode_passages = lambda texts, batch_size=32: seen.extend(texts) or original(texts)
    fake_searcher.similar_to_text(text, 3)
    assert len(seen[-1].split()) == window


def test_long_queries_explain_only_the_results_the_budget_covers(fake_searcher):
    query = ("đảng viên sinh hoạt chi bộ " * 20)[:400]
    results = fake_searcher.search(query, 100, "lexical")
    explained = [r for r in results if r.highlights]
    assert len(results) > MAX_K_TIMES_QUERY_CHARS // len(query)
    assert len(explained) == MAX_K_TIMES_QUERY_CHARS // len(query)
    assert results[: len(explained)] == explained


def test_query_length_limit(client):
    ok = client.get("/api/search", query_string={"q": "đ" * MAX_QUERY_CHARS, "k": 1})
    assert ok.status_code == 200
    too_long = client.get("/api/search", query_string={"q": "đ" * (MAX_QUERY_CHARS + 1), "k": 1})
    assert too_long.status_code == 400


def test_request_ids_are_echoed_or_made(client):
    given = client.get("/api/health", headers={"X-Request-Id": "trace-42"})
    assert given.headers["X-Request-Id"] == "trace-42"
    made = client.get("/api/health", headers={"X-Request-Id": "bad id with spaces"})
    assert len(made.headers["X-Request-Id"]) == 32


def test_access_log_is_one_json_line_without_secrets(client, caplog):
    import json
    import logging

    with caplog.at_level(logging.INFO, logger="semsearch.access"):
        client.get("/api/search?q=bí+mật&k=2", headers={"Authorization": "Bearer s3cret-key", "X-Request-Id": "r-1"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "semsearch.access"]
    assert len(lines) == 1
    entry = lines[0]
    assert entry["request_id"] == "r-1" and entry["status"] == 200 and entry["route"] == "/api/search"
    assert "s3cret" not in json.dumps(entry) and "bí" not in json.dumps(entry, ensure_ascii=False)


def test_metrics_count_requests_searches_and_the_cache(client):
    def value(text, line_start):
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))

    before = client.get("/metrics").get_data(as_text=True)
    client.get("/api/search?q=metrics+probe+once&k=2")
    client.get("/api/search?q=metrics+probe+once&k=2")
    after = client.get("/metrics").get_data(as_text=True)
    route = 'semsearch_requests_total{method="GET",route="/api/search",status="200"}'
    assert value(after, route) - value(before, route) == 2
    assert (
        value(after, 'semsearch_query_cache_total{result="hit"}')
        - value(before, 'semsearch_query_cache_total{result="hit"}')
        >= 1
    )
    assert value(after, 'semsearch_search_seconds_count{kind="search",mode="hybrid"}') > value(
        before, 'semsearch_search_seconds_count{kind="search",mode="hybrid"}'
    )
    assert "semsearch_index_passages" in after and "semsearch_encoder_seconds_bucket" in after


def test_openapi_document_covers_every_route(app, client):
    document = client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    documented = {path for path in document["paths"]}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<path:", "{").replace("<", "{").replace(">", "}")
        assert path in documented, rule.rule
    search = document["paths"]["/api/search"]["get"]
    assert {"200", "400", "429", "503"} <= set(search["responses"])
    assert {p["name"] for p in search["parameters"]} >= {"q", "k", "mode"}


def test_docs_page_serves_swagger_from_this_server(client):
    page = client.get("/docs").get_data(as_text=True)
    assert "/docs/assets/swagger-ui-bundle.js" in page and "http" not in page.split("<body>")[1].split("<noscript>")[0]
    bundle = client.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.get_data()) > 100_000


def test_a_damaged_index_under_a_running_app_is_503_not_500(tmp_path, fake_encoder):
    from index.build import build_index
    from index.retrieve.search import Searcher
    from service import create_app
    from tests.conftest import CORPUS

    out = tmp_path / "index"
    build_index([CORPUS], out, fake_encoder, progress=False)
    app = create_app(
        {
            "TESTING": True,
            "SEARCHER": Searcher.open(out, encoder=fake_encoder),
            "RATE_LIMIT": "off",
            "RELOAD_SECONDS": 0,
        }
    )
    client = app.test_client()
    assert client.get("/api/health").status_code == 200
    sqlite_file = out.resolve() / "passages.sqlite"
    sqlite_file.write_bytes(sqlite_file.read_bytes()[:16] + b"\x5a" * (sqlite_file.stat().st_size - 16))
    health = client.get("/api/health")
    assert health.status_code == 503 and health.get_json()["status"] == "unavailable"
    assert health.get_json()["checks"]["passages"] != "ok"
    # searches answer from the pages SQLite already holds (valid under WAL), or 503; never a 500
    search = client.get("/api/search?q=Zalo&k=50")
    assert search.status_code == 200 or error_of(search)["code"] == "index_unavailable"
    assert client.get("/?q=Zalo").status_code in (200, 503)
    search = client.get("/api/search?q=" + "đảng viên chi bộ")  # rows not read before
    assert search.status_code == 200 or error_of(search)["code"] == "index_unavailable"
