"""Vectors -> nearest neighbours. A small backend interface with FAISS behind it, so another engine
can be swapped in without touching indexing or search."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np


class VectorBackend(Protocol):
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Store unit vectors under int64 ids."""

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the k best matches by inner product for each query row; id -1 pads."""

    def vector(self, id_: int) -> np.ndarray:
        """The stored vector of `id_`; KeyError if there is none."""

    def save(self, directory: Path) -> None: ...

    def describe(self) -> dict:
        """What the manifest records about this backend."""

    def __len__(self) -> int: ...


class FaissBackend:
    """Exact inner-product search (cosine on unit vectors) with the passages' own ids."""

    FILE = "vectors.faiss"
    FACTORY = "IDMap2,Flat"

    def __init__(self, dim: int, index=None):
        import faiss

        self.dim = dim
        self.index = index if index is not None else faiss.index_factory(dim, self.FACTORY, faiss.METRIC_INNER_PRODUCT)

    @classmethod
    def load(cls, directory: Path, dim: int) -> FaissBackend:
        import faiss

        index = faiss.read_index(str(Path(directory) / cls.FILE))
        if index.d != dim:
            raise ValueError(f"vector file has dimension {index.d}, manifest says {dim}")
        return cls(dim, index)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (n, {self.dim}), got {vectors.shape}")
        self.index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        return self.index.search(queries, min(k, max(len(self), 1)))

    def vector(self, id_: int) -> np.ndarray:
        try:
            return self.index.reconstruct(int(id_))
        except RuntimeError as exc:
            raise KeyError(id_) from exc

    def save(self, directory: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(Path(directory) / self.FILE))

    def describe(self) -> dict:
        return {"engine": "faiss", "factory": self.FACTORY, "metric": "inner_product"}

    def __len__(self) -> int:
        return int(self.index.ntotal)
