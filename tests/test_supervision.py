"""The server as a supervised whole (gunicorn): a killed worker is replaced, workers leave with a
killed parent (so a restart gets the port), and SIGTERM lets a write in flight answer."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest

from tests.conftest import copy_index, start_server
from tests.test_writes_real import KEY, call, wait_for

pytestmark = pytest.mark.model


def workers_of(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(child) for child in f.read().split()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1][0] != "Z"


@pytest.fixture
def index(real_index, tmp_path):
    return copy_index(real_index, tmp_path / "copy")


def test_a_killed_worker_is_replaced_and_sigterm_lets_a_write_in_flight_answer(index):
    process, base = start_server(index, "--workers", "2", "--rate-limit", "off", env={"SEMSEARCH_API_KEYS": KEY})
    try:
        first = workers_of(process.pid)
        assert len(first) == 2
        victim = next(iter(first))
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(workers_of(process.pid) - first) == 1, 10.0)  # a new one is forked at once
        replacement = (workers_of(process.pid) - first).pop()
        # it serves once it has loaded the model; the survivor serves meanwhile
        wait_for(lambda: call(base, "/api/health")[0] == 200, 5.0)
        wait_for(lambda: replacement in {call(base, "/api/health")[1]["process"] for _ in range(8)}, 60.0)

        # a batch that takes a while to embed (~13 s here), acknowledged although SIGTERM comes meanwhile;
        # it must end well inside GRACEFUL_SECONDS on a busy machine: 150 such documents took 50 s and,
        # on a loaded CI run, outlasted the client's 60 s
        batch = [
            {"id": f"late-{n}", "title": "Tin", "text": f"Đoạn văn số {n} về công tác xây dựng Đảng ở cơ sở. " * 20}
            for n in range(40)
        ]
        answers: list[tuple[tuple[int, dict], float]] = []  # the answer, and when it came
        writer = threading.Thread(
            target=lambda: answers.append((call(base, "/api/documents", "POST", batch), time.monotonic()))
        )
        writer.start()
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        writer.join(timeout=120)
        assert answers, "the write got no answer"
        (status, body), answered = answers[0]
        assert status == 200, body
        assert answered > signalled, "the write answered before SIGTERM, so it was not in flight"
        assert body["documents"][-1] == "late-39"
        assert process.wait(timeout=90) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # the acknowledged write is there for the next server
    process, base = start_server(index, "--workers", "1", "--rate-limit", "off")
    try:
        assert len(call(base, "/api/documents/late-39")[1]["passages"]) > 0
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_workers_leave_with_a_killed_parent_and_the_port_is_free_again(index):
    process, base = start_server(index, "--workers", "2", "--rate-limit", "off")
    workers = workers_of(process.pid)
    port = int(base.rsplit(":", 1)[1])
    process.send_signal(signal.SIGKILL)
    process.wait()
    wait_for(lambda: not any(alive(pid) for pid in workers), 15.0)
    socket.create_server(("127.0.0.1", port)).close()  # a restart would get it
