"""Building into --out never touches what a build did not create, two builds cannot interleave,
and a damaged index is refused (issue 10, findings 1, 2 and 5)."""

from __future__ import annotations

import collections
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from index.build import build_index
from index.retrieve.search import Searcher
from index.store.base import IndexBusy, IndexCorrupt, NotAnIndex
from index.store.embedded import integrity
from index.store.embedded.passages import PassageStore
from index.store.embedded.publish import index_lock, open_index, verify_index
from service.cli import main
from tests.conftest import CORPUS, ROOT, FakeEncoder
from tests.test_store_and_search import documents

ONE_FILE = CORPUS / "000_3c2f5f3f6056e9aa.txt"


def tree(directory):
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_out_that_is_a_users_folder_is_refused_and_left_alone(tmp_path, fake_encoder):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "chapter1.md").write_text("Chương 1")
    (thesis / "data").mkdir()
    (thesis / "data" / "results.csv").write_text("a,b\n1,2\n")
    before = tree(tmp_path)
    with pytest.raises(NotAnIndex, match="is a directory that semsearch did not publish"):
        build_index([CORPUS], thesis, fake_encoder, progress=False)
    assert tree(tmp_path) == before
    # twice: the old code deleted the renamed folder on the second build
    with pytest.raises(NotAnIndex):
        build_index([CORPUS], thesis, fake_encoder, progress=False)
    after = {k: v for k, v in tree(tmp_path).items() if not k.startswith(".thesis.")}
    assert after == before
    assert not [p for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith(".thesis.")]


def test_out_that_is_a_file_is_refused_through_the_cli(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    assert main(["index", str(CORPUS), "--out", str(target), "--quiet", "--precision", "fp32"]) == 2
    assert "is a file that semsearch did not publish" in capsys.readouterr().err
    assert target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".notes.txt.l")) == ["notes.txt"]


def test_an_index_directory_that_is_not_a_link_is_refused_not_moved(tmp_path, fake_index, fake_encoder):
    copy = tmp_path / "copied-index"
    import shutil

    shutil.copytree(fake_index, copy)  # a user's copy of an index: has a manifest, is not our link
    with pytest.raises(NotAnIndex):
        build_index([CORPUS], copy, fake_encoder, progress=False)
    assert (copy / "manifest.json").is_file() and not copy.is_symlink()


def test_siblings_with_the_index_name_survive_a_publish(tmp_path, fake_index, fake_encoder):
    backup = tmp_path / ".index.backup"
    backup.mkdir()
    (backup / "manifest.json").write_text("{}")
    old_style = tmp_path / ".index.20250101-000000-1-abcdef"
    old_style.mkdir()
    for _ in range(3):
        build_index([ONE_FILE], fake_index, fake_encoder, progress=False)
    assert (backup / "manifest.json").read_text() == "{}"
    assert old_style.is_dir()
    assert len(list(tmp_path.glob(".index.gen-*"))) == 2


def test_concurrent_build_fails_clearly_and_the_index_stays_valid(tmp_path, fake_index, fake_encoder):
    """The second build reaches the lock while the first holds it (the interleaving that used to
    leave --out linked to a deleted directory): it fails with exit 2, the first completes."""
    holding = threading.Event()
    release = threading.Event()

    class SlowEncoder(FakeEncoder):
        def encode_passages(self, texts, batch_size=32):
            holding.set()
            release.wait(30)
            return super().encode_passages(texts, batch_size)

    errors = []
    first = threading.Thread(target=lambda: build_index([CORPUS], fake_index, SlowEncoder(), progress=False))
    first.start()
    assert holding.wait(30)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "service.cli",
            "index",
            str(ONE_FILE),
            "--out",
            str(fake_index),
            "--quiet",
            "--precision",
            "fp32",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    release.set()
    first.join(60)
    assert not errors
    assert done.returncode == 2 and "is writing" in done.stderr
    assert documents(fake_index) == 5
    assert verify_index(fake_index)
    assert Searcher.open(fake_index, encoder=fake_encoder).search("đảng viên", 3)


def test_lock_is_exclusive(tmp_path):
    out = tmp_path / "index"
    with index_lock(out):
        with pytest.raises(IndexBusy, match=f"pid {os.getpid()}"):
            with index_lock(out):
                pass
    with index_lock(out):  # released
        pass


def test_versions_count_up(tmp_path, fake_encoder):
    out = tmp_path / "index"
    build_index([ONE_FILE], out, fake_encoder, progress=False)
    build_index([ONE_FILE], out, fake_encoder, progress=False)
    assert open_index(out).view.version == 2


def test_every_immutable_file_is_recorded_with_size_and_checksum(fake_index):
    state = open_index(fake_index).passages.state()
    assert set(state["checkpoint"]["files"]) == {"vectors.faiss", "catalog.npz"}
    lexical = state["lexical_files"]
    # tantivy's of each analysis, of passages and of documents, and their postings
    assert {"vi/meta.json", "vi/documents/meta.json"} <= set(lexical)
    assert any(name.endswith(".idx") for name in lexical)
    assert all(set(entry) == {"size", "xxh3"} for entry in [*lexical.values(), *state["checkpoint"]["files"].values()])


def _garble(path, at=None, length=64):
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if at is None else at
    data[at : at + length] = bytes((b ^ 0x5A) for b in data[at : at + length])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["garble-sqlite", "truncate-sqlite"])
def test_a_damaged_database_is_refused_at_open(fake_index, damage):
    """(Damaged derived files are rebuilt instead: test_crash_safety.py.)"""
    path = fake_index.resolve() / "passages.sqlite"
    if damage == "garble-sqlite":  # a b-tree page; bytes inside a row's payload are SQLite's to miss
        _garble(path, at=4096 + 8)
    else:
        path.write_bytes(path.read_bytes()[:4096])
    with pytest.raises(IndexCorrupt, match="is damaged"):
        open_index(fake_index)


def _count_reads(monkeypatch) -> collections.Counter:
    """How many files are checksummed and how many SQLite checks run, from now on."""
    reads: collections.Counter = collections.Counter()
    checksum, sqlite_check = integrity.file_checksum, PassageStore.integrity_check

    def counted_checksum(path):
        reads["checksums"] += 1
        return checksum(path)

    def counted_check(self, quick=False):
        reads["sqlite checks"] += 1
        return sqlite_check(self, quick)

    monkeypatch.setattr(integrity, "file_checksum", counted_checksum)
    monkeypatch.setattr(PassageStore, "integrity_check", counted_check)
    return reads


def test_files_checked_before_are_not_read_again_until_one_changes(fake_index, monkeypatch):
    monkeypatch.setattr(integrity, "SETTLED_SECONDS", 0.01)
    time.sleep(0.05)  # the build's files are older than a check now beginning, by more than that
    reads = _count_reads(monkeypatch)
    index = open_index(fake_index)
    files = len(index.passages.state()["lexical_files"]) + 2  # and the checkpoint's vectors and catalogue
    index.close()
    assert reads == {"checksums": files, "sqlite checks": 1}
    reads.clear()
    open_index(fake_index).close()
    assert reads == {}
    # a file written since is read again; the others are still not read
    time.sleep(0.05)
    postings = next((fake_index.resolve() / "lexical" / "vi").glob("*.idx"))
    postings.write_bytes(postings.read_bytes())
    open_index(fake_index).close()
    assert reads == {"checksums": 1}
    # verify reads everything, whatever an open remembered
    reads.clear()
    verify_index(fake_index)
    assert reads["checksums"] == files


def test_a_check_of_files_written_just_before_it_is_not_remembered(fake_index, monkeypatch):
    """File times tick coarsely: a file written in the same tick as the check began could be
    written again without its times moving, so the next open must read it."""
    monkeypatch.setattr(integrity, "SETTLED_SECONDS", 600.0)  # the build wrote every file within it
    reads = _count_reads(monkeypatch)
    open_index(fake_index).close()
    reads.clear()
    open_index(fake_index).close()
    assert reads["checksums"] > 0 and reads["sqlite checks"] == 1


def test_verify_reports_a_sound_index_and_catches_what_checksums_cannot(fake_index, capsys):
    assert main(["verify", "--index", str(fake_index)]) == 0
    assert "passes SQLite's integrity check" in capsys.readouterr().out
    # a row deleted behind the log's back: only the full check sees the parts disagree
    directory = fake_index.resolve()
    with sqlite3.connect(directory / "passages.sqlite") as db:
        db.execute("DELETE FROM passages WHERE int_id = (SELECT MIN(int_id) FROM passages)")
    assert main(["verify", "--index", str(fake_index)]) == 2
    assert "hold different passage ids" in capsys.readouterr().err


def test_index_option_naming_a_file_is_a_clear_error(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["search", "đảng", "--index", str(target)]) == 2
    assert "is a file, not an index directory" in capsys.readouterr().err


def test_search_of_a_damaged_index_is_a_clear_error_not_a_traceback(fake_index, capsys):
    _garble(fake_index.resolve() / "passages.sqlite", at=4096 + 8)
    assert main(["search", "đảng", "--index", str(fake_index)]) == 2
    assert "is damaged" in capsys.readouterr().err


def test_publish_fsyncs_every_file_every_directory_and_the_parent(tmp_path, fake_encoder, monkeypatch):
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    out = tmp_path / "index"
    build_index([ONE_FILE], out, fake_encoder, progress=False)
    generation = out.resolve()
    staged = [path.replace("staging", "gen") for path in synced]  # fsynced before the rename
    for path in generation.rglob("*"):
        assert str(path) in staged, f"{path.relative_to(generation)} was not fsynced"
    assert str(generation) in staged and str(generation / "lexical") in staged
    # the parent, after the link is replaced (the last thing a publish syncs)
    assert synced[-1] == str(tmp_path) or synced[-2] == str(tmp_path)
