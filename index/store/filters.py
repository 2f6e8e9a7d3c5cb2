"""Which passages a search may return: the live ones, narrowed by source, document and date.

A `Catalog` holds, per internal passage id, whether it is live and its document, source and day,
as numpy arrays, so a filter over a million passages is a few vector operations. It is updated
by returning a new Catalog: the per-id arrays only grow (an id's metadata never changes), and the
liveness array is copied, so a search holding the old one is never disturbed."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from index.store.passages import CatalogRow, day_number

_NO_DAY = np.iinfo(np.int32).min
_NONE = -1


@dataclass(frozen=True)
class Filters:
    """Passages must be from one of `sources` and one of `doc_ids` (when given) and dated within
    [date_from, date_to] (when given; undated passages then never match)."""

    sources: tuple[str, ...] = ()
    doc_ids: tuple[str, ...] = ()
    date_from: datetime.date | None = None
    date_to: datetime.date | None = None

    def __bool__(self) -> bool:
        return bool(self.sources or self.doc_ids or self.date_from or self.date_to)

    def day_range(self) -> tuple[int, int] | None:
        if self.date_from is None and self.date_to is None:
            return None
        low = day_number(self.date_from.isoformat()) if self.date_from else _NO_DAY + 1
        high = day_number(self.date_to.isoformat()) if self.date_to else np.iinfo(np.int32).max
        return low, high

    def describe(self) -> dict:
        return {"source": list(self.sources), "doc_id": list(self.doc_ids),
                "date_from": self.date_from.isoformat() if self.date_from else None,
                "date_to": self.date_to.isoformat() if self.date_to else None}


NO_FILTERS = Filters()


@dataclass(frozen=True)
class _Columns:
    """Per-id arrays shared by successive catalogs; positions past a catalog's size are not its own."""

    doc: np.ndarray
    source: np.ndarray
    day: np.ndarray
    doc_codes: dict[str, int] = field(default_factory=dict)
    source_codes: dict[str, int] = field(default_factory=dict)

    @classmethod
    def empty(cls, capacity: int) -> _Columns:
        return cls(np.full(capacity, _NONE, np.int32), np.full(capacity, _NONE, np.int32), np.full(capacity, _NO_DAY, np.int32))

    def grown(self, capacity: int) -> _Columns:
        if capacity <= len(self.doc):
            return self
        grown = _Columns.empty(max(capacity, 2 * len(self.doc)))
        for new, old in ((grown.doc, self.doc), (grown.source, self.source), (grown.day, self.day)):
            new[: len(old)] = old
        return _Columns(grown.doc, grown.source, grown.day, self.doc_codes, self.source_codes)


class Catalog:
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
            columns.doc[row.int_id] = columns.doc_codes.setdefault(row.doc_id, len(columns.doc_codes))
            if row.source is not None:
                columns.source[row.int_id] = columns.source_codes.setdefault(row.source, len(columns.source_codes))
            if row.day is not None:
                columns.day[row.int_id] = row.day
        live = np.zeros(size, bool)
        live[: self.size] = self.live
        live[[row.int_id for row in added]] = True
        live[list(removed)] = False
        return Catalog(columns, live)

    def is_live(self, int_id: int) -> bool:
        return 0 <= int_id < self.size and bool(self.live[int_id])

    def allowed(self, filters: Filters) -> np.ndarray:
        """Bool per id: live and passing `filters`."""
        if not filters:
            return self.live
        columns, mask = self._columns, self.live.copy()
        if filters.sources:
            codes = [columns.source_codes[s] for s in filters.sources if s in columns.source_codes]
            mask &= np.isin(columns.source[: self.size], codes)
        if filters.doc_ids:
            codes = [columns.doc_codes[d] for d in filters.doc_ids if d in columns.doc_codes]
            mask &= np.isin(columns.doc[: self.size], codes)
        if (days := filters.day_range()) is not None:
            day = columns.day[: self.size]
            mask &= (day >= days[0]) & (day <= days[1])
        return mask
