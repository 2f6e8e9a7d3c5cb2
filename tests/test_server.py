"""The production server (waitress) over real HTTP."""

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

pytestmark = pytest.mark.model


def get(url: str):
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.status, json.loads(response.read())


def test_search_over_http(live_server):
    query = urllib.parse.quote("Đảng bộ Khối có bao nhiêu đảng viên")
    status, body = get(f"{live_server}/api/search?q={query}&k=3")
    assert status == 200 and body["k"] == 3
    assert any("152 đảng bộ" in r["text"] for r in body["results"])


def test_errors_over_http(live_server):
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"{live_server}/api/search?q=", timeout=30)
    assert error.value.code == 400
    assert json.loads(error.value.read())["error"]["code"] == "bad_request"


def test_similar_post_over_http(live_server):
    request = urllib.request.Request(
        f"{live_server}/api/similar",
        data=json.dumps({"text": "Cuộc thi viết Bác Hồ với Nam Định", "k": 2}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert len(json.loads(response.read())["results"]) == 2


def test_page_over_http(live_server):
    with urllib.request.urlopen(f"{live_server}/?q=Fanpage+Zalo", timeout=60) as response:
        page = response.read().decode()
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<mark>Fanpage</mark>" in page
