"""What an index's files must be: their sizes and checksums, recorded when they are written and
checked when the index is opened, so a damaged file is refused instead of served.

xxh3-128 reads ~20 GB/s on one core (blake2b: ~1 GB/s), so every file can be checked at every
open: a million-passage index (~2.5 GB) costs a fraction of a second, mostly reading the pages
that serving would read anyway.
"""

from __future__ import annotations

import os
from pathlib import Path

import xxhash

CHUNK = 8 * 1024 * 1024


class DamagedFiles(ValueError):
    """One or more files differ from what the manifest recorded; the message lists them."""


def file_checksum(path: Path) -> str:
    digest = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def inventory(directory: Path, skip: tuple[str, ...] = (), skip_suffixes: tuple[str, ...] = (),
              known: dict[str, dict] | None = None) -> dict[str, dict]:
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


def check_files(directory: Path, recorded: dict[str, dict]) -> None:
    """Raise DamagedFiles naming every recorded file that is missing, of another size or of
    another checksum."""
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
        elif file_checksum(path) != expected["xxh3"]:
            problems.append(f"{name} does not match its checksum")
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
