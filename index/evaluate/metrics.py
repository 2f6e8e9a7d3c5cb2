"""Pure retrieval metrics over one ranked list, with binary relevance."""

from __future__ import annotations

import math
from collections.abc import Sequence


def first_relevant_rank(ranked: Sequence[str], relevant: set[str]) -> int | None:
    return next((rank for rank, item in enumerate(ranked, 1) if item in relevant), None)


def recall_at(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    return len(relevant.intersection(ranked[:k])) / len(relevant) if relevant else 0.0


def reciprocal_rank_at(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    rank = first_relevant_rank(ranked[:k], relevant)
    return 1.0 / rank if rank else 0.0


def ndcg_at(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    gain = sum(1.0 / math.log2(rank + 1) for rank, item in enumerate(ranked[:k], 1) if item in relevant)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(relevant), k) + 1))
    return gain / ideal if ideal else 0.0


def unique_in_order(items: Sequence[str]) -> list[str]:
    """Documents ranked at their best passage."""
    return list(dict.fromkeys(items))
