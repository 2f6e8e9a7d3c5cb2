"""The production server as operators meet it: gunicorn's limits in front of the app, bodies refused
before they are read and dropped when they stop arriving, metrics summed over workers, refusal of
a damaged database or an unreadable key file at start, and a rebuilt index picked up by every
worker without a restart. (Supervision: test_supervision.py.)"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from index.build import build_index
from tests.conftest import CORPUS, ROOT, start_server

pytestmark = pytest.mark.model

KEY = "operations-key"


def fetch(url, data=None, headers=None, timeout=30):
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def raw_request(base, payload: bytes) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(payload)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture(scope="module")
def server(real_index):
    process, base = start_server(
        real_index, "--workers", "2", "--rate-limit", "off", "--idle-timeout", "5", env={"SEMSEARCH_API_KEYS": KEY}
    )
    yield base
    process.terminate()
    process.wait(timeout=30)


def test_idle_connections_do_not_lock_clients_out(server):
    host, port = server.removeprefix("http://").split(":")
    idle = [socket.create_connection((host, int(port))) for _ in range(300)]
    try:
        started = time.monotonic()
        statuses = [fetch(f"{server}/api/search?q=%C4%91%E1%BA%A3ng+vi%C3%AAn&k=1")[0] for _ in range(5)]
        assert statuses == [200] * 5 and time.monotonic() - started < 20
    finally:
        for connection in idle:
            connection.close()


def test_idle_keep_alive_is_closed_by_the_server(server):
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        started = time.monotonic()
        assert connection.recv(1) == b""  # closed by the server, not by us
        assert time.monotonic() - started < 20


def first_answer(base, payload: bytes) -> tuple[int, dict, float]:
    """Status, JSON body and seconds until the whole answer arrived (the server may keep reading
    the connection after it)."""
    host, port = base.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=60) as connection:
        connection.sendall(payload)
        received = b""
        while b"\r\n\r\n" not in received or len(received.partition(b"\r\n\r\n")[2]) < _length(received):
            chunk = connection.recv(65536)
            assert chunk, f"closed before a whole answer: {received!r}"
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body), time.monotonic() - started


def _length(received: bytes) -> int:
    for line in received.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


@pytest.mark.parametrize(
    "path, headers, announced, status",
    [
        ("/api/similar", "", 300_000, 413),  # over the read limit (256 KiB)
        ("/api/documents", "", 15_000_000, 401),  # anonymous: refused before its body is read
        ("/api/documents", f"Authorization: Bearer {KEY}\r\n", 64 * 1024 * 1024, 413),  # over the write limit (16 MiB)
    ],
)
def test_a_body_is_refused_from_its_length_before_it_is_read(server, path, headers, announced, status):
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}"
        f"Content-Length: {announced}\r\n\r\n"
    ).encode()
    code, body, seconds = first_answer(server, head + b"{" * 1024)  # the rest is never sent
    assert code == status and seconds < 2
    assert body["error"]["code"] == {413: "payload_too_large", 401: "unauthorized"}[status]


def test_a_body_that_stops_arriving_is_a_408(server):
    from service.workers import READ_SECONDS

    head = b"POST /api/similar HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    code, body, seconds = first_answer(server, head + b'{"text": "')
    assert code == 408 and body["error"]["code"] == "request_timeout"
    assert READ_SECONDS <= seconds < READ_SECONDS + 5


def test_a_request_head_that_stops_arriving_is_dropped(server):
    from service.workers import READ_SECONDS

    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as connection:
        connection.sendall(b"GET /api/health HTTP/1.1\r\nHost:")
        started = time.monotonic()
        assert connection.recv(1) == b""
        assert time.monotonic() - started < READ_SECONDS + 5
    assert fetch(f"{server}/api/health")[0] == 200


def test_over_long_request_line_is_a_json_414(server):
    status, headers, body = fetch(f"{server}/api/search?q={'a' * 1_000_000}")
    assert status == 414 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "uri_too_long"
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_path_that_is_not_utf8_is_400(server):
    answer = raw_request(server, b"GET /api/passages/%ff%fe/similar HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"not valid UTF-8" in answer


def test_metrics_add_up_every_worker(server):
    def count(text):
        pattern = 'semsearch_requests_total{method="GET",route="/api/health",status="200"}'
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(pattern))

    before = count(fetch(f"{server}/metrics")[2].decode())
    pids = {json.loads(fetch(f"{server}/api/health", headers={"Connection": "close"})[2])["process"] for _ in range(20)}
    after = count(fetch(f"{server}/metrics")[2].decode())
    assert len(pids) == 2, "both workers answered"
    assert after - before == 20


def test_a_damaged_database_stops_the_server_at_start(tmp_path, real_index):
    """(Damaged vectors or postings are rebuilt from the database instead: test_crash_safety.py.)"""
    copy = tmp_path / "index"
    generation = tmp_path / ".index.gen-copy"
    shutil.copytree(real_index.resolve(), generation)
    os.symlink(generation.name, copy)
    database = generation / "passages.sqlite"
    data = bytearray(database.read_bytes())
    data[4096 + 8 : 4096 + 72] = bytes(b ^ 0x5A for b in data[4096 + 8 : 4096 + 72])
    database.write_bytes(bytes(data))
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--index", str(copy), "--workers", "2", "--port", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 2
    assert "passages.sqlite" in done.stderr and "semsearch verify" in done.stderr


def test_a_key_file_that_cannot_be_read_stops_the_server_at_start(tmp_path, real_index):
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--index", str(real_index), "--workers", "2", "--port", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "SEMSEARCH_API_KEYS_FILE": str(tmp_path / "no-such-file")},
    )
    assert done.returncode == 2
    assert "the API keys file" in done.stderr and "cannot be read" in done.stderr


def test_a_rebuilt_index_reaches_every_worker_without_a_restart(tmp_path, real_encoder):
    out = tmp_path / "index"
    build_index([CORPUS / "000_3c2f5f3f6056e9aa.txt"], out, real_encoder, progress=False)
    first_generation = out.resolve().name
    process, base = start_server(out, "--workers", "2", "--rate-limit", "off")
    try:
        health = json.loads(fetch(f"{base}/api/health")[2])
        assert health["index_version"] == 1 and health["documents"] == 1
        build_index([CORPUS], out, real_encoder, progress=False)
        build_index([CORPUS], out, real_encoder, progress=False)  # the first generation is now deleted
        deadline = time.monotonic() + 60
        seen: dict[int, int] = {}
        errors = 0
        while time.monotonic() < deadline and (len(seen) < 2 or set(seen.values()) != {3}):
            status, _, body = fetch(f"{base}/api/health", headers={"Connection": "close"})
            errors += status != 200
            answer = json.loads(body)
            seen[answer["process"]] = answer["index_version"]
            searched = fetch(f"{base}/api/search?q=Cu%E1%BB%99c+thi+vi%E1%BA%BFt&k=3", headers={"Connection": "close"})[
                0
            ]
            errors += searched != 200
        assert set(seen.values()) == {3} and len(seen) == 2, seen
        assert errors == 0
        answer = json.loads(fetch(f"{base}/api/health")[2])
        assert answer["documents"] == 5 and answer["reload_error"] is None
        still_held = dict.fromkeys(seen, "?")
        deadline = time.monotonic() + 15  # the last searches on the old index end, references drop
        while still_held and time.monotonic() < deadline:
            for worker in list(still_held):
                held = [line.split()[-2] for line in open(f"/proc/{worker}/maps") if first_generation in line]
                held += [
                    os.path.realpath(f"/proc/{worker}/fd/{fd}")
                    for fd in os.listdir(f"/proc/{worker}/fd")
                    if first_generation in os.path.realpath(f"/proc/{worker}/fd/{fd}")
                ]
                if held:
                    still_held[worker] = held
                else:
                    del still_held[worker]
            time.sleep(0.5)
        assert not still_held, f"old files still held: {still_held}"
    finally:
        process.terminate()
        process.wait(timeout=30)
