"""Which passages a search may return: the live ones, narrowed by source, document, file path and date.
Both backends read the same `Filters`: the embedded one through its catalog (embedded/catalog.py),
Milvus as a boolean expression."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import numpy as np

_EPOCH = datetime.date(1970, 1, 1)
NO_DAY = np.iinfo(np.int32).min


def day_number(date: str | None) -> int | None:
    """Days since 1970-01-01 of an ISO date (its first ten characters), None for anything else."""
    try:
        return (datetime.date.fromisoformat((date or "")[:10]) - _EPOCH).days
    except ValueError:
        return None


@dataclass(frozen=True)
class Filters:
    """Passages must be from one of `sources`, one of `doc_ids` and a file whose path starts with
    one of `paths` (when given) and dated within [date_from, date_to] (when given; undated
    passages then never match)."""

    sources: tuple[str, ...] = ()
    doc_ids: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    date_from: datetime.date | None = None
    date_to: datetime.date | None = None

    def __bool__(self) -> bool:
        return bool(self.sources or self.doc_ids or self.paths or self.date_from or self.date_to)

    def day_range(self) -> tuple[int, int] | None:
        if self.date_from is None and self.date_to is None:
            return None
        low = day_number(self.date_from.isoformat()) if self.date_from else NO_DAY + 1
        high = day_number(self.date_to.isoformat()) if self.date_to else np.iinfo(np.int32).max
        return low, high

    def describe(self) -> dict:
        return {
            "source": list(self.sources),
            "doc_id": list(self.doc_ids),
            "path": list(self.paths),
            "date_from": self.date_from.isoformat() if self.date_from else None,
            "date_to": self.date_to.isoformat() if self.date_to else None,
        }


NO_FILTERS = Filters()
