"""Sentence vectors kept small, and read back as the evidence a search rescores candidates with.

Each sentence vector is stored as 8-bit integers with its own scale (a quarter of float32's
size; cosines move by under .003), a passage's sentences packed into one value."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from index.encode.int8_encoder import quantize_rows


def _record(dim: int) -> np.dtype:
    """One stored sentence vector: its scale, then its codes (the vector is codes · scale)."""
    return np.dtype([("scale", "<f4"), ("codes", "i1", (dim,))])


def pack_vectors(vectors: np.ndarray) -> bytes:
    """Rows of `vectors` as 8-bit records, one after another."""
    vectors = np.asarray(vectors, np.float32)
    records = np.empty(len(vectors), _record(vectors.shape[1]))
    records["codes"], records["scale"] = quantize_rows(vectors)
    return records.tobytes()


def _unpacked(packed: Sequence[bytes], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows of every value in `packed`, stacked, and how many each value held."""
    size = _record(dim).itemsize
    counts = np.array([len(value) for value in packed], np.int64)
    if (counts % size).any() or not counts.all():
        raise ValueError(
            f"{counts[(counts % size > 0) | (counts == 0)][0]} bytes are not packed {dim}-dimensional vectors"
        )
    records = np.frombuffer(b"".join(packed), _record(dim))
    return records["codes"].astype(np.float32) * records["scale"][:, None], counts // size


@dataclass(frozen=True)
class Evidence:
    """Candidates' vectors: each passage's, and all their sentences' in one matrix, in order."""

    ids: np.ndarray
    passages: np.ndarray
    sentences: np.ndarray
    counts: np.ndarray  # sentences of each passage

    @classmethod
    def of(cls, rows: Sequence[tuple[int, np.ndarray, bytes]], dim: int) -> Evidence:
        """From (int id, passage vector, packed sentence vectors) rows; unpacked in one go, as
        a search reads a few hundred candidates' sentences."""
        if not rows:
            return cls(
                np.zeros(0, np.int64),
                np.zeros((0, dim), np.float32),
                np.zeros((0, dim), np.float32),
                np.zeros(0, np.int64),
            )
        sentences, counts = _unpacked([packed for _, _, packed in rows], dim)
        return cls(
            np.array([int_id for int_id, _, _ in rows], np.int64),
            np.stack([np.asarray(vector, np.float32) for _, vector, _ in rows]),
            sentences,
            counts,
        )

    def __len__(self) -> int:
        return len(self.ids)
