"""Writes with the real model: through the CLI, over HTTP between two server processes, and
across a kill -9 of the server right after an acknowledged write."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from service.cli import main
from tests.conftest import copy_index, start_server

pytestmark = pytest.mark.model

KEY = "test-write-key"
NEW = {
    "title": "Hội thi Rung chuông vàng của Đoàn Khối năm 2024",
    "text": "Ngày 12/4, Đoàn Khối các cơ quan tỉnh tổ chức Hội thi Rung chuông vàng tìm hiểu lịch sử Đảng.\n\n"
    "Hội thi thu hút 317 đoàn viên thanh niên đến từ 24 cơ sở Đoàn tham gia.",
    "date": "2024-04-12",
    "source": "Báo Thanh Niên Khối",
}
QUESTION = "Hội thi Rung chuông vàng có bao nhiêu đoàn viên tham gia?"


def call(base: str, path: str, method: str = "GET", body=None, key: str | None = KEY) -> tuple[int, dict]:
    request = urllib.request.Request(
        base + path, method=method, data=json.dumps(body).encode() if body is not None else None
    )
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def top_doc(base: str, question: str = QUESTION) -> str:
    query = urllib.parse.urlencode({"q": question, "k": 1})
    return call(base, f"/api/search?{query}")[1]["results"][0]["doc_id"]


def wait_for(condition, seconds: float) -> float:
    """Seconds until `condition()` held; fails after `seconds`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        time.sleep(0.05)
    return time.monotonic() - started


def test_cli_add_and_delete_change_what_search_finds(real_index, tmp_path, capsys):
    index = copy_index(real_index, tmp_path / "copy")
    article = tmp_path / "rung-chuong-vang.txt"
    article.write_text(f"{NEW['title']}\n\n12/04/2024 - 08:00\n\n{NEW['text']}\n", encoding="utf-8")
    assert main(["add", str(article), "--index", str(index), "--quiet"]) == 0
    assert "2 passages added (2 embedded)" in capsys.readouterr().err
    assert main(["search", QUESTION, "--index", str(index), "--k", "1", "--json"]) == 0
    top = json.loads(capsys.readouterr().out)["results"][0]
    assert top["doc_id"] == "rung-chuong-vang.txt" and "317 đoàn viên" in top["text"]
    # unaccented, filtered to the new date range
    assert (
        main(
            [
                "search",
                "hoi thi rung chuong vang",
                "--index",
                str(index),
                "--k",
                "3",
                "--json",
                "--date-from",
                "2024-01-01",
            ]
        )
        == 0
    )
    assert {r["doc_id"] for r in json.loads(capsys.readouterr().out)["results"]} == {"rung-chuong-vang.txt"}

    assert main(["add", str(article), "--index", str(index), "--quiet"]) == 0  # unchanged: nothing embedded
    assert "2 passages added (0 embedded), 2 removed" in capsys.readouterr().err
    assert main(["delete", "rung-chuong-vang.txt", "--index", str(index)]) == 0
    assert main(["delete", "rung-chuong-vang.txt", "--index", str(index)]) == 2
    assert "no document with id 'rung-chuong-vang.txt'" in capsys.readouterr().err
    assert main(["search", QUESTION, "--index", str(index), "--k", "5", "--json"]) == 0
    assert "rung-chuong-vang.txt" not in {r["doc_id"] for r in json.loads(capsys.readouterr().out)["results"]}
    assert main(["compact", "--index", str(index), "--quiet"]) == 0
    assert main(["verify", "--index", str(index)]) == 0


def test_a_write_through_one_server_is_seen_by_another_within_a_second(real_index, tmp_path):
    index = copy_index(real_index, tmp_path / "copy")
    first, a = start_server(index, "--workers", "1", "--rate-limit", "off", env={"SEMSEARCH_API_KEYS": KEY})
    second, b = start_server(index, "--workers", "1", "--rate-limit", "off", env={"SEMSEARCH_API_KEYS": KEY})
    try:
        assert call(a, "/api/documents/new-1", "PUT", NEW, key=None)[0] == 401
        assert call(a, "/api/documents/new-1", "PUT", NEW, key="wrong")[0] == 401
        status, committed = call(a, "/api/documents/new-1", "PUT", NEW)
        assert status == 200 and committed["passages_added"] == 2
        assert top_doc(a) == "new-1"  # the writing server at once
        assert wait_for(lambda: top_doc(b) == "new-1", 1.0) < 1.0  # the other one within a second
        assert call(b, "/api/documents/new-1")[1]["passages"]

        status, _ = call(b, "/api/documents/new-1", "DELETE")
        assert status == 200
        wait_for(lambda: top_doc(a) != "new-1", 1.0)
        assert call(a, "/api/documents/new-1")[0] == 404
    finally:
        for process in (first, second):
            process.terminate()
            process.wait(timeout=30)


def test_an_acknowledged_write_survives_kill_9_of_the_server(real_index, tmp_path):
    index = copy_index(real_index, tmp_path / "copy")
    process, base = start_server(index, "--workers", "1", "--rate-limit", "off", env={"SEMSEARCH_API_KEYS": KEY})
    try:
        status, committed = call(base, "/api/documents/new-1", "PUT", NEW)
        assert status == 200
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    process, base = start_server(index, "--workers", "1", "--rate-limit", "off")
    try:
        assert call(base, "/api/health")[1]["index_version"] == committed["version"]
        assert top_doc(base) == "new-1"
        assert call(base, "/api/documents/new-1", "PUT", NEW, key=KEY)[0] == 403  # no key configured now
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_rebuild_under_a_running_server_keeps_the_documents_written_to_it(real_index, tmp_path, capsys):
    """A rebuild with `semsearch index --if-stale` after a corpus file changed: the
    documents written over HTTP and by `semsearch add` since the last build stay."""
    import shutil

    from tests.conftest import CORPUS

    index = copy_index(real_index, tmp_path / "copy")
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    article = tmp_path / "rung-chuong-vang.txt"
    article.write_text(f"{NEW['title']}\n\n12/04/2024 - 08:00\n\n{NEW['text']}\n", encoding="utf-8")
    process, base = start_server(index, "--workers", "1", "--rate-limit", "off", env={"SEMSEARCH_API_KEYS": KEY})
    try:
        assert call(base, "/api/documents/api-doc-1", "PUT", {**NEW, "title": "Bài viết qua API"})[0] == 200
        assert main(["add", str(article), "--index", str(index), "--quiet"]) == 0
        generation = call(base, "/api/health")[1]["index_generation"]
        (corpus / "extra.txt").write_text("Tin ngắn\n\nChi bộ Zyxwv họp thường kỳ tháng Năm.\n", encoding="utf-8")
        capsys.readouterr()
        assert main(["index", str(corpus), "--out", str(index), "--if-stale", "--quiet"]) == 0
        said = capsys.readouterr().err
        assert "2 document(s) kept, written since the last build" in said and "'api-doc-1'" in said
        wait_for(lambda: call(base, "/api/health")[1]["index_generation"] != generation, 10.0)
        status, document = call(base, "/api/documents/api-doc-1")
        assert status == 200 and document["origin"] == "api" and document["passages"]
        assert call(base, "/api/documents/rung-chuong-vang.txt")[1]["origin"] == "add"
        assert call(base, "/api/documents/extra.txt")[1]["origin"] == "build"
        assert top_doc(base) in ("api-doc-1", "rung-chuong-vang.txt")

        (corpus / "extra.txt").write_text("Tin ngắn\n\nChi bộ Zyxwv họp thường kỳ tháng Sáu.\n", encoding="utf-8")
        assert main(["index", str(corpus), "--out", str(index), "--drop-written", "--quiet"]) == 0
        said = capsys.readouterr().err
        assert (
            "2 document(s) written since the last build, dropped (--drop-written): 'api-doc-1', 'rung-chuong-vang.txt'"
            in said
        )
        wait_for(lambda: call(base, "/api/documents/api-doc-1")[0] == 404, 10.0)
    finally:
        process.terminate()
        process.wait(timeout=30)
