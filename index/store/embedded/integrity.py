"""What an index's files must be: their sizes and checksums, recorded when they are written and
checked when the index is opened, so a damaged file is refused instead of served.

A check reads every byte, which at a million passages (~6 GB with the database) takes seconds
from the page cache and minutes from a cold disk. So what passed is remembered (`CheckedFiles`)
by each file's size, times and inode, and a file unchanged since is not read again: a process
opening an index that an earlier one checked starts in a fraction of a second.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import xxhash

from index.store.base import DiskFull

CHUNK = 8 * 1024 * 1024
CHECKED = "checked.json"
# File times come from a coarse clock (ticks of milliseconds, of seconds on some file systems): a
# file written this shortly before a check began could be written again within the same tick,
# leaving its times as they were, so that check is not remembered.
SETTLED_SECONDS = 2.0


def disk_full(error: BaseException) -> bool:
    """Whether `error` is a full disk (or quota), as the OS, SQLite or tantivy word it."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(error, sqlite3.Error) and getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return True
    return "No space left on device" in str(error) or "database or disk is full" in str(error)


# Free space below which a failed write is taken for a full disk whatever the error says (tantivy
# words it "an index writer was killed").
NO_ROOM_BYTES = 1024 * 1024


@contextmanager
def refused_when_disk_full(what: str, where: Path) -> Iterator[None]:
    """Turn a full disk met inside the block (writing under `where`) into DiskFull, saying what
    could not be done."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as exc:
        if disk_full(exc) or _no_room(where):
            raise DiskFull(
                errno.ENOSPC, f"{what}: the disk is full; nothing was changed. Free some space and try again"
            ) from exc
        raise


def _no_room(where: Path) -> bool:
    try:
        return shutil.disk_usage(where).free < NO_ROOM_BYTES
    except OSError:
        return False


class DamagedFiles(ValueError):
    """One or more files differ from what the manifest recorded; the message lists them."""


def file_checksum(path: Path) -> str:
    digest = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def inventory(
    directory: Path,
    skip: tuple[str, ...] = (),
    skip_suffixes: tuple[str, ...] = (),
    known: dict[str, dict] | None = None,
) -> dict[str, dict]:
    """{relative path: {"size", "xxh3"}} for every file under `directory` except `skip` and names
    ending in `skip_suffixes`. Checksums in `known` are reused for files of the same name and
    size, except JSON files: engines rewrite those in place, while their data files never change."""
    directory = Path(directory)
    known = known or {}
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        name = path.relative_to(directory).as_posix()
        if name in skip or name.endswith(skip_suffixes):
            continue
        size = path.stat().st_size
        if name in known and known[name]["size"] == size and not name.endswith(".json"):
            files[name] = known[name]
        else:
            files[name] = {"size": size, "xxh3": file_checksum(path)}
    return files


class CheckedFiles:
    """The files of one index directory that passed a check, each with what it was checked
    against and its size, times, inode and device when it passed. Anything that writes a file
    through the file system moves its ctime (which no user can set back), so an unchanged entry
    means unchanged bytes; damage beneath the file system is what `semsearch verify`, which
    always reads, is for. Kept in CHECKED, written by whoever opened the index."""

    def __init__(self, directory: Path, remember: bool = True):
        self.directory = Path(directory)
        self._began = time.time_ns()
        self._remembered: dict[str, list] = {}
        if remember:
            try:
                self._remembered = json.loads((self.directory / CHECKED).read_text())
            except (OSError, ValueError):
                pass
        self._now: dict[str, list] = {}

    def _entry(self, path: Path, against: str) -> list:
        status = path.stat()
        return [against, status.st_size, status.st_mtime_ns, status.st_ctime_ns, status.st_ino, status.st_dev]

    def unchanged(self, path: Path, against: str) -> bool:
        """Whether `path` passed a check against `against` and has not changed since."""
        name = path.relative_to(self.directory).as_posix()
        entry = self._remembered.get(name)
        if entry is None or entry != self._entry(path, against):
            return False
        self._now[name] = entry
        return True

    def passed(self, path: Path, against: str) -> None:
        entry = self._entry(path, against)
        settled = self._began - int(SETTLED_SECONDS * 1e9)
        if entry[2] < settled and entry[3] < settled:
            self._now[path.relative_to(self.directory).as_posix()] = entry

    def save(self) -> None:
        """Remember what passed in this open (files no longer checked are forgotten). A
        directory this process cannot write only costs the next open its reads."""
        if self._now == self._remembered:
            return
        try:
            handle, temporary = tempfile.mkstemp(prefix=f".{CHECKED}.", dir=self.directory)
        except OSError:
            return
        try:
            with os.fdopen(handle, "w") as f:
                json.dump(self._now, f)
            os.replace(temporary, self.directory / CHECKED)
        except OSError:
            Path(temporary).unlink(missing_ok=True)


def check_files(directory: Path, recorded: dict[str, dict], checked: CheckedFiles | None = None) -> None:
    """Raise DamagedFiles naming every recorded file that is missing, of another size or of
    another checksum; files `checked` knows unchanged since they matched are not read."""
    checked = checked or CheckedFiles(directory, remember=False)
    problems = []
    for name, expected in recorded.items():
        path = Path(directory) / name
        try:
            size = path.stat().st_size
        except OSError:
            problems.append(f"{name} is missing")
            continue
        if size != expected["size"]:
            problems.append(f"{name} is {size} bytes, the manifest says {expected['size']}")
        elif not checked.unchanged(path, expected["xxh3"]):
            if file_checksum(path) != expected["xxh3"]:
                problems.append(f"{name} does not match its checksum")
            else:
                checked.passed(path, expected["xxh3"])
    if problems:
        raise DamagedFiles("; ".join(problems))


def fsync_tree(directory: Path) -> None:
    """Every file and every directory under `directory` (itself included) to stable storage."""
    for root, _, names in os.walk(directory):
        for name in names:
            with open(Path(root) / name, "rb") as f:
                os.fsync(f.fileno())
        fsync_directory(Path(root))


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
