"""The production server (gunicorn, two threaded workers) over real HTTP."""

import json
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

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
        data=json.dumps(
            {"text": "Kỷ niệm 60 năm Ngày Bác Hồ về thăm Đảng bộ và nhân dân tỉnh Nam Định", "k": 2}
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert len(json.loads(response.read())["results"]) == 2


def test_page_over_http(live_server):
    with urllib.request.urlopen(f"{live_server}/?q=Fanpage+Zalo", timeout=60) as response:
        page = response.read().decode()
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<mark>Fanpage</mark>" in page


def worker_pids(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(child) for child in f.read().split()]


def test_workers_share_the_port_and_stop_with_the_server(real_index):
    import os
    import signal

    from tests.conftest import start_server

    process, base = start_server(real_index, "--workers", "2", "--threads", "2")
    workers = worker_pids(process.pid)
    try:
        assert len(workers) == 2
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda i: get(f"{base}/api/search?q=%C4%91%E1%BA%A3ng+vi%C3%AAn&k=1"), range(16)))
        assert all(status == 200 and body["results"] for status, body in answers)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    for worker in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(worker, 0)


def test_server_refuses_to_start_without_an_index(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            "--index",
            str(tmp_path / "missing"),
            "--workers",
            "2",
            "--port",
            "0",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "no index at" in done.stderr
