"""What a search may return, per internal passage id: whether the passage is live, and its source
and day, as numpy arrays, so a filter over a million passages is a few vector operations. It is updated by
returning a new Catalog: the per-id arrays only grow (an id's metadata never changes), and the
liveness array is copied, so a search holding the old one is never disturbed. Each checkpoint
keeps the catalogue of its version (a few bytes per passage), so opening an index reads it and
the changes since instead of a row per passage. Documents are not in it: a filter names at most
a few dozen, whose passages the database finds by its index on documents."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index.store.embedded.passages import CatalogRow
from index.store.filters import NO_DAY, Filters

_NONE = -1


@dataclass(frozen=True)
class _Columns:
    """Per-id arrays shared by successive catalogs; positions past a catalog's size are not its own."""

    source: np.ndarray
    day: np.ndarray
    source_codes: dict[str, int] = field(default_factory=dict)

    @classmethod
    def empty(cls, capacity: int) -> _Columns:
        return cls(np.full(capacity, _NONE, np.int32), np.full(capacity, NO_DAY, np.int32))

    def grown(self, capacity: int) -> _Columns:
        if capacity <= len(self.source):
            return self
        grown = _Columns.empty(max(capacity, 2 * len(self.source)))
        for new, old in ((grown.source, self.source), (grown.day, self.day)):
            new[: len(old)] = old
        return _Columns(grown.source, grown.day, self.source_codes)


class Catalog:
    FILE = "catalog.npz"

    def __init__(self, columns: _Columns, live: np.ndarray):
        self._columns = columns
        self.live = live  # bool per id; never written after construction
        self.size = len(live)

    @classmethod
    def of(cls, rows: Sequence[CatalogRow]) -> Catalog:
        return cls(_Columns.empty(16), np.zeros(0, bool)).changed(rows, ())

    def changed(self, added: Sequence[CatalogRow], removed: Iterable[int]) -> Catalog:
        size = max([self.size - 1, *(row.int_id for row in added)]) + 1
        columns = self._columns.grown(size)
        for row in added:
            if row.source is not None:
                columns.source[row.int_id] = columns.source_codes.setdefault(row.source, len(columns.source_codes))
            if row.day is not None:
                columns.day[row.int_id] = row.day
        live = np.zeros(size, bool)
        live[: self.size] = self.live
        live[[row.int_id for row in added]] = True
        live[[i for i in removed if i < size]] = False  # an id added and removed since, never seen here
        return Catalog(columns, live)

    def save(self, directory: Path) -> None:
        with open(Path(directory) / self.FILE, "wb") as f:
            np.savez(
                f,
                live=self.live,
                source=self._columns.source[: self.size],
                day=self._columns.day[: self.size],
                source_names=np.array(list(self._columns.source_codes), dtype=str),
            )

    @classmethod
    def load(cls, directory: Path) -> Catalog | None:
        """The catalogue saved in `directory`; None for a checkpoint written before they were."""
        path = Path(directory) / cls.FILE
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as saved:
            names = [str(name) for name in saved["source_names"]]
            columns = _Columns(saved["source"], saved["day"], {name: code for code, name in enumerate(names)})
            return cls(columns, saved["live"])

    def is_live(self, int_id: int) -> bool:
        return 0 <= int_id < self.size and bool(self.live[int_id])

    def allowed(self, filters: Filters, document_passages: Sequence[int] = ()) -> np.ndarray:
        """Bool per id: live and passing `filters`; the passages of the documents it names are
        `document_passages`."""
        if not filters:
            return self.live
        columns, mask = self._columns, self.live.copy()
        if filters.sources:
            codes = [columns.source_codes[s] for s in filters.sources if s in columns.source_codes]
            mask &= np.isin(columns.source[: self.size], codes)
        if filters.doc_ids:
            ids = np.asarray(document_passages, np.int64)
            in_documents = np.zeros(self.size, bool)
            in_documents[ids[ids < self.size]] = True
            mask &= in_documents
        if (days := filters.day_range()) is not None:
            day = columns.day[: self.size]
            mask &= (day >= days[0]) & (day <= days[1])
        return mask
