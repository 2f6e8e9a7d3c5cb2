"""Backups of an embedded index while it serves, and their restore.

A backup is a directory holding one generation as it stood at one moment: the database copied
with SQLite's online backup API (a consistent snapshot whatever writes are under way), and the
immutable files that snapshot names (the vector checkpoint, tantivy's segments) linked or
copied while the files lock keeps writers from swapping them. Readers and the SQLite commits of
writers go on meanwhile; a writer's tantivy update waits for the copy, which is a few hard links
when the backup is on the same file system. Every backup and every restore is verified (the
checks of `semsearch verify`) before it is reported done.

A restore publishes a copy of the backup as a new generation at the index's location, as a
build does: a server switches to it without a restart, and the index it replaces stays beside
it as the previous generation.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

from index.store.base import IndexProblem
from index.store.embedded.integrity import CHECKED, fsync_tree, refused_when_disk_full
from index.store.embedded.lexical import DIRECTORY as LEXICAL
from index.store.embedded.live import MANIFEST, files_lock, read_manifest
from index.store.embedded.passages import FILE as PASSAGES_FILE
from index.store.embedded.publish import staging_directory, verify_index


class BackupRefused(IndexProblem):
    """The destination of a backup is not an empty or new directory."""


def backup_index(out: Path, destination: Path) -> list[str]:
    """Copy the index published at `out` into `destination` (new, or an empty directory);
    returns what the verification of the copy checked."""
    source = Path(out).resolve()
    read_manifest(source)  # an index, of this format
    destination = Path(destination)
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise BackupRefused(f"{destination} is not an empty directory; a backup goes into a new one")
    destination.mkdir(parents=True, exist_ok=True)
    with refused_when_disk_full("the backup", destination):
        try:
            with files_lock(source, exclusive=False):
                _copy_database(source / PASSAGES_FILE, destination / PASSAGES_FILE)
                state = _state_of(destination / PASSAGES_FILE)
                for name in (LEXICAL, state["checkpoint"]["name"]):
                    _link_or_copy_tree(source / name, destination / name)
            shutil.copy2(source / MANIFEST, destination / MANIFEST)
            fsync_tree(destination)
        except BaseException:
            shutil.rmtree(destination, ignore_errors=True)
            raise
    return verify_index(destination)


def restore_index(backup: Path, out: Path) -> list[str]:
    """Publish a copy of `backup` at `out` as a new generation, once the backup is verified."""
    backup = Path(backup)
    verify_index(backup)
    with refused_when_disk_full("the restore", Path(out).parent), staging_directory(out) as staging:
        for path in backup.iterdir():
            if path.name == CHECKED or path.name.endswith((".lock", "-wal", "-shm")):
                continue
            target = staging / path.name
            if path.is_dir():
                _link_or_copy_tree(path, target, link=False)  # the backup stays as it is
            elif path.name == PASSAGES_FILE:
                _copy_database(path, target)
            else:
                shutil.copy2(path, target)
    return verify_index(out)


def _copy_database(source: Path, target: Path) -> None:
    reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    writer = sqlite3.connect(target)
    try:
        reader.backup(writer)
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the copy stands alone in its one file
    finally:
        writer.close()
        reader.close()


def _state_of(database: Path) -> dict:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return {key: json.loads(value) for key, value in connection.execute("SELECT key, value FROM state")}
    finally:
        connection.close()


def _link_or_copy_tree(source: Path, target: Path, link: bool = True) -> None:
    """`source`'s files at `target`: hard links where allowed (its files are never rewritten in
    place: tantivy and the checkpoints write new files and replace them), else copies."""

    def link_or_copy(from_path: str, to_path: str) -> None:
        if link:
            try:
                os.link(from_path, to_path)
                return
            except OSError:
                pass
        shutil.copy2(from_path, to_path)

    shutil.copytree(source, target, copy_function=link_or_copy, ignore=shutil.ignore_patterns("*.lock"))
