"""What one service process holds: the index it serves, followed as writes and builds change it,
the searcher over it, and what health reports. Routes reach them through these calls alone."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flask import Flask, current_app

from index.retrieve.search import Searcher
from index.store.base import IndexProblem, IndexReader, IndexWriter, StoredPassage
from index.store.location import FollowedIndex, free_bytes, writing_at

log = logging.getLogger("semsearch")

# Below this much free space at the index, writes are bound to fail: health says so before one does.
DISK_HEADROOM_BYTES = 16 * 1024 * 1024


@dataclass
class ServiceState:
    searcher: Searcher
    disk_full: str | None = None  # why the last write was refused for a full disk, until one succeeds

    @property
    def followed(self) -> FollowedIndex:
        return self.searcher.followed


def install(app: Flask, searcher: Searcher) -> ServiceState:
    state = ServiceState(searcher)
    app.extensions["semsearch"] = state
    return state


def of(app: Flask) -> ServiceState:
    return app.extensions["semsearch"]


def current() -> ServiceState:
    return of(current_app)


def searcher() -> Searcher:
    return current().searcher


def default_k(k: int | None) -> int:
    """A request's k, already checked by its model; absent, the configured default."""
    return current_app.config["DEFAULT_K"] if k is None else k


@contextmanager
def writing(wait_seconds: float) -> Iterator[IndexWriter]:
    """The served index's writer (waiting up to `wait_seconds` for another to finish)."""
    followed = current().followed
    with writing_at(followed.location, followed.model, wait_seconds=wait_seconds) as writer:
        yield writer


def reload_if_changed(state: ServiceState) -> bool:
    """Catch up with writes, or switch to a newly published index; on a failure the current index
    is served on, and health says why (`followed.problem`)."""
    from .observability import RELOADS, record_index

    serving, known = state.followed.reader, state.followed.problem
    try:
        changed = state.followed.reload_if_changed()
    except IndexProblem as exc:
        RELOADS.labels("failed").inc()
        if str(exc) != str(known):  # an unreachable Milvus is retried each interval, said once
            log.error("kept serving %s: %s", serving.name, exc)
        return False
    if changed:
        record_index(state.followed.reader)
        if state.followed.reader is not serving:
            gc.collect()  # the old index's files are unmapped once nothing refers to them
            RELOADS.labels("ok").inc()
            log.warning("now serving %s (version %d)", state.followed.reader.name, state.followed.reader.view.version)
    return changed


def follow(app: Flask, interval: float) -> None:
    """A thread per process: follow writes to the index and newly published builds. Searches under
    way finish on the state they started with."""
    state = of(app)
    stop = threading.Event()
    app.extensions["stop_following"] = stop

    def run() -> None:
        while not stop.wait(interval):
            reload_if_changed(state)

    threading.Thread(target=run, name="semsearch-index-follower", daemon=True).start()


def health(index: IndexReader) -> dict[str, str]:
    """Reads from every part a search depends on: {part: "ok" or what failed}."""
    sample: list[StoredPassage] = []

    def passages() -> None:
        index.probe()
        first = index.passages.first_int_id()
        sample.extend(index.passages.by_int_ids([first] if first is not None else []).values())

    def vectors() -> None:
        for passage in sample:
            index.dense(index.vector(passage.int_id), 1)

    def lexical() -> None:
        for passage in sample:
            index.lexical_search(passage.text[:200], 1)

    checks: dict[str, str] = {}
    for part, read in (
        ("passages", passages),
        ("vectors", vectors),
        ("lexical", lexical),
        ("encoder", lambda: searcher().encoder.encode_queries(["kiểm tra"])),
    ):
        try:
            read()
            checks[part] = "ok"
        except Exception as exc:  # whatever a damaged part raises is the answer here
            checks[part] = f"{type(exc).__name__}: {exc}"
    return checks


def disk(state: ServiceState) -> str:
    """Whether writes have room where the index is."""
    free = free_bytes(state.followed.location)
    if free is None:
        return "ok"
    if free < DISK_HEADROOM_BYTES:
        return f"full: {free // 1024} KiB free at {state.followed.location}; writes are refused until there is room"
    if state.disk_full:
        return f"low: the last write found the disk full ({free // 1024} KiB free now); the next one may succeed"
    return "ok"
