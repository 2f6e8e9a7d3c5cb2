"""Vectors -> nearest neighbours. A small backend interface with FAISS behind it, so another engine
can be swapped in without touching indexing or search."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


class VectorBackend(Protocol):
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the k best matches by inner product for each query row; id -1 pads."""

    def vector(self, id_: int) -> np.ndarray:
        """The stored vector of `id_`; KeyError if there is none."""

    def ids(self) -> np.ndarray:
        """Every stored id."""

    def save(self, directory: Path) -> None: ...

    def describe(self) -> dict:
        """What the manifest records about this backend."""

    def __len__(self) -> int: ...


# Exact search below this many passages; an inverted-file (IVF) index above.
EXACT_BELOW = 50_000
# Training sample for the IVF coarse quantiser: FAISS wants 30-256 points per list.
TRAIN_POINTS_PER_LIST = 64
_ID_WRAPPER = "IDMap2,"


@dataclass(frozen=True)
class IndexPlan:
    """Which FAISS index a corpus of a given size gets, and how it is searched."""

    factory: str  # inner index, wrapped in IDMap2 so passages keep their own ids
    nprobe: int = 0

    @classmethod
    def for_size(cls, n: int, memory_saving: bool = False) -> IndexPlan:
        """Flat (exact) for small corpora. Above EXACT_BELOW, IVF with about 4·sqrt(n) lists,
        storing vectors as float32, or as 8-bit scalars (a quarter of the memory) when memory
        saving is asked for; nprobe keeps recall@10 against exact search at or above 0.95
        (bench/ann.py measures it)."""
        if n < EXACT_BELOW:
            return cls("Flat")
        lists = 2 ** round(math.log2(4 * math.sqrt(n)))
        return cls(f"IVF{lists},{'SQ8' if memory_saving else 'Flat'}", nprobe=max(16, lists // 32))

    @classmethod
    def from_description(cls, description: dict) -> IndexPlan:
        """The plan a manifest's `backend` entry (written by FaissBackend.describe) records."""
        return cls(description["factory"].removeprefix(_ID_WRAPPER), description.get("nprobe", 0))


class FaissBackend:
    """Inner-product search (cosine on unit vectors) with the passages' own ids."""

    FILE = "vectors.faiss"

    def __init__(self, index, plan: IndexPlan):
        self.index = index
        self.plan = plan
        self._apply_search_parameters()

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, plan: IndexPlan) -> FaissBackend:
        import faiss

        faiss.omp_set_num_threads(os.cpu_count() or 1)  # training and adding use every core
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        inner = faiss.index_factory(vectors.shape[1], plan.factory, faiss.METRIC_INNER_PRODUCT)
        if not inner.is_trained:
            lists = faiss.extract_index_ivf(inner).nlist
            rng = np.random.default_rng(0)
            sample = vectors[rng.choice(len(vectors), min(len(vectors), lists * TRAIN_POINTS_PER_LIST), replace=False)]
            inner.train(sample)
        index = faiss.IndexIDMap2(inner)
        index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
        if plan.nprobe:
            faiss.extract_index_ivf(inner).make_direct_map()  # so a stored vector can be read back
        return cls(index, plan)

    @classmethod
    def load(cls, directory: Path, dim: int, plan: IndexPlan, mmap: bool = True) -> FaissBackend:
        """Memory-mapped where FAISS allows it, so start-up does not read the whole file."""
        import faiss

        path = str(Path(directory) / cls.FILE)
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        index = faiss.read_index(path, flags)
        # A loaded index answers one query per call, many calls at once in a server: OpenMP threads
        # within a search only spin against the other searches and the encoder (at a million
        # passages: the same latency on one thread, a third less CPU per search).
        faiss.omp_set_num_threads(1)
        if index.d != dim:
            raise ValueError(f"vector file has dimension {index.d}, manifest says {dim}")
        return cls(index, plan)

    def _apply_search_parameters(self) -> None:
        import faiss

        if self.plan.nprobe:
            faiss.extract_index_ivf(self.index).nprobe = self.plan.nprobe

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        return self.index.search(queries, min(k, max(len(self), 1)))

    def vector(self, id_: int) -> np.ndarray:
        try:
            return self.index.reconstruct(int(id_))
        except RuntimeError as exc:
            raise KeyError(id_) from exc

    def ids(self) -> np.ndarray:
        import faiss

        return faiss.vector_to_array(self.index.id_map)

    def save(self, directory: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(Path(directory) / self.FILE))

    def describe(self) -> dict:
        return {"engine": "faiss", "factory": _ID_WRAPPER + self.plan.factory, "nprobe": self.plan.nprobe,
                "metric": "inner_product"}

    def __len__(self) -> int:
        return int(self.index.ntotal)
