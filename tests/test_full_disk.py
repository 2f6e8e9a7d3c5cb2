"""A full disk (a small tmpfs, filled): writes are refused with 507 and nothing half-applied,
health says so, searches go on, writes succeed again by themselves once there is room; the CLI
says so in one line (exit 2) and leaves no staging, checkpoint or ledger entry behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest

from index.build import build_index
from index.retrieve.search import Searcher
from index.store.base import DiskFull
from index.store.embedded.publish import open_index, verify_index
from service.cli import main
from tests.conftest import CORPUS, FakeEncoder
from tests.test_crash_safety import leftovers
from tests.test_living_index import new_document, write

KEY = "disk-key"
BIG = "\n\n".join(f"Đoạn văn số {n} về công tác xây dựng Đảng, chi bộ và đảng viên ở cơ sở. " * 12 for n in range(150))


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MB tmpfs of this test's own (the test runs as root, as CI does)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk, leave: int = 64 * 1024) -> None:
    """Fill `disk` up to `leave` bytes free."""
    free = shutil.disk_usage(disk).free - leave
    with open(disk / f"filler-{uuid.uuid4().hex}", "wb") as f:
        while free > 0:
            try:
                f.write(b"\0" * min(free, 1 << 20))
            except OSError:
                break
            free -= 1 << 20


def make_room(disk) -> None:
    for filler in disk.glob("filler-*"):
        filler.unlink()


def test_a_full_disk_refuses_writes_cleanly_and_they_recover_by_themselves(small_disk):
    from service import create_app

    out = small_disk / "index"
    build_index([CORPUS], out, FakeEncoder(), progress=False)
    searcher = Searcher.open(out, encoder=FakeEncoder())
    client = create_app(
        {"TESTING": True, "SEARCHER": searcher, "RATE_LIMIT": "off", "RELOAD_SECONDS": 0, "API_KEYS": KEY}
    ).test_client()
    auth = {"Authorization": f"Bearer {KEY}"}
    version = client.get("/api/health").get_json()["index_version"]

    fill(small_disk)
    assert client.get("/api/health").get_json()["disk"].startswith("full")
    answer = client.put("/api/documents/big-1", json={"text": BIG, "title": "Lớn"}, headers=auth)
    assert answer.status_code == 507 and answer.get_json()["error"]["code"] == "disk_full", answer.get_json()
    assert answer.headers["Retry-After"]
    health = client.get("/api/health").get_json()
    assert health["index_version"] == version and health["status"] == "ok"  # nothing half-applied; reads go on
    assert client.get("/api/search", query_string={"q": "đảng viên"}).status_code == 200
    assert client.get("/api/documents/big-1").status_code == 404
    with pytest.raises(DiskFull, match="the write: the disk is full"):
        write(out, [new_document("big-2", BIG)])

    make_room(small_disk)
    assert client.get("/api/health").get_json()["disk"].startswith("low")  # until a write succeeds
    assert client.put("/api/documents/big-1", json={"text": BIG, "title": "Lớn"}, headers=auth).status_code == 200
    assert client.get("/api/health").get_json()["disk"] == "ok"
    assert client.get("/api/documents/big-1").get_json()["passages"]
    searcher.index.close()
    assert verify_index(out)
    assert leftovers(out) == []


def test_a_write_durable_in_the_database_is_acknowledged_when_tantivy_finds_the_disk_full(small_disk, monkeypatch):
    import index.store.embedded.lexical as lexical

    out = small_disk / "index"
    build_index([CORPUS], out, FakeEncoder(), progress=False)
    apply = lexical.LexicalIndex.apply.__func__

    def disk_fills_first(cls, *args, **kwargs):
        fill(small_disk, leave=0)
        return apply(cls, *args, **kwargs)

    monkeypatch.setattr(lexical.LexicalIndex, "apply", classmethod(disk_fills_first))
    result = write(out, [new_document("late-1")])  # no exception: the commit is durable
    monkeypatch.undo()
    with pytest.raises(DiskFull):
        write(out, [new_document("late-2")])  # the next write finds the disk full too, and says so
    make_room(small_disk)
    searcher = Searcher.open(out, encoder=FakeEncoder())  # the open replays what tantivy missed
    assert searcher.index.view.lexical_version == result.commit.version
    assert "late-1" in {r.doc_id for r in searcher.search("Zyxwv hội thao", 5, mode="lexical")}
    searcher.index.close()
    assert verify_index(out)


def test_the_cli_says_a_full_disk_in_one_line_and_leaves_nothing_behind(small_disk, capsys, monkeypatch):
    out = small_disk / "index"
    build_index([CORPUS], out, FakeEncoder(), progress=False)
    write(out, [new_document("kept-1")], encoder=FakeEncoder())
    monkeypatch.setattr("service.cli._writer_encoder", lambda location: FakeEncoder())
    monkeypatch.setattr("index.encode.embed.load_encoder", lambda *a, **k: FakeEncoder())
    fill(small_disk, leave=16 * 1024)
    capsys.readouterr()

    assert main(["compact", "--index", str(out), "--quiet"]) == 2
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and "the disk is full" in said[0], said
    assert main(["index", str(CORPUS), "--out", str(out), "--model", FakeEncoder.model_id, "--quiet"]) == 2
    said = capsys.readouterr().err.strip().splitlines()
    assert said[-1].startswith("semsearch: the build: the disk is full"), said
    assert not any("Traceback" in line for line in said)
    make_room(small_disk)
    assert leftovers(out) == []
    assert verify_index(out)
    assert open_index(out).passages.document("kept-1") is not None
    os.sync()
