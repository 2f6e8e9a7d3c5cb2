"""Vectors -> nearest neighbours among the passages a search may return.

A FAISS checkpoint (exact, or IVF past EXACT_BELOW passages) holds the vectors as of the last
compaction; vectors added since sit in a small exact delta beside it, searched by brute force.
Deleted and filtered-out passages are excluded inside FAISS by an ID selector over a bitmap, so
the top k is taken among allowed passages only. Stored vectors live in the passage database;
both parts are rebuilt from it."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

Batch = tuple[np.ndarray, np.ndarray]  # (int ids, vectors)

# Exact search below this many passages; an inverted-file (IVF) index above.
EXACT_BELOW = 50_000
# Training sample for the IVF coarse quantiser: FAISS wants 30-256 points per list.
TRAIN_POINTS_PER_LIST = 64
_ID_WRAPPER = "IDMap,"
# Probes by number of lists, the fewest reaching the recall IndexPlan.for_size asks for (measured
# at 100k, 300k and 1M passages).
MEASURED_PROBES = {1024: 96, 2048: 96, 4096: 48}


def probes_for(lists: int) -> int:
    """The share of its lists the nearest measured size step probes."""
    step = min(MEASURED_PROBES, key=lambda measured: abs(math.log2(measured / lists)))
    return max(1, round(lists * MEASURED_PROBES[step] / step))


@dataclass(frozen=True)
class IndexPlan:
    """Which FAISS index a corpus of a given size gets, and how it is searched."""

    factory: str  # inner index, wrapped in IDMap so passages keep their own ids
    nprobe: int = 0

    @classmethod
    def for_size(cls, n: int, memory_saving: bool = False) -> IndexPlan:
        """Flat (exact) for small corpora. Above EXACT_BELOW, IVF with about 4·sqrt(n) lists
        holding 8-bit scalars (a quarter of float32's memory), or 4-bit ones when memory saving
        is asked for: the lists only find candidates, which the search scores again from the
        stored float32 vectors, so the codes' rounding never orders results, and the fewer bytes
        a probe reads, the faster it is (a million passages: 2.7 ms against 5.5 for float32 at
        the same recall). nprobe: the fewest probes whose 100 candidates hold .97 of exact
        search's top 10 for real questions at each size step (bench/ann.py --real-queries)."""
        if n < EXACT_BELOW:
            return cls("Flat")
        lists = 2 ** round(math.log2(4 * math.sqrt(n)))
        return cls(f"IVF{lists},{'SQ4' if memory_saving else 'SQ8'}", nprobe=probes_for(lists))

    @classmethod
    def from_description(cls, description: dict) -> IndexPlan:
        """The plan a `describe()` entry records."""
        return cls(description["factory"].removeprefix(_ID_WRAPPER), description.get("nprobe", 0))


class FaissBackend:
    """Inner-product search (cosine on unit vectors) with the passages' own ids: a checkpoint."""

    FILE = "vectors.faiss"

    def __init__(self, index, plan: IndexPlan):
        self.index = index
        self.plan = plan

    @classmethod
    def build(
        cls,
        batches: Callable[[], Iterable[Batch]],
        count: int,
        dim: int,
        plan: IndexPlan,
        trained: FaissBackend | None = None,
        threads: int | None = None,
    ) -> FaissBackend:
        """Index the `count` (ids, vectors) rows `batches()` yields, on `threads` cores (all when
        None). Only the index and one batch are in memory at a time: an untrained IVF plan reads
        the batches twice, once for its training sample and once to add them. An IVF plan reuses
        `trained`'s coarse quantiser when it has the same plan (the lists of a corpus that grew
        by less than a size step still fit it)."""
        import faiss

        faiss.omp_set_num_threads(threads or os.cpu_count() or 1)
        if trained is not None and trained.plan == plan and plan.nprobe:
            inner = _trained_copy(trained)
        else:
            inner = faiss.index_factory(dim, plan.factory, faiss.METRIC_INNER_PRODUCT)
        if not inner.is_trained:
            lists = faiss.extract_index_ivf(inner).nlist
            inner.train(training_sample(batches(), count, dim, lists * TRAIN_POINTS_PER_LIST))
        index = faiss.IndexIDMap(inner)
        for ids, vectors in batches():
            index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64)
            )
        faiss.omp_set_num_threads(1)
        return cls(index, plan)

    @classmethod
    def load(cls, directory: Path, dim: int, plan: IndexPlan, mmap: bool = True) -> FaissBackend:
        """Memory-mapped, so start-up does not read the whole file and the server's workers share
        one copy. FAISS maps in place (IO_FLAG_MMAP_IFC): its older IO_FLAG_MMAP turns the IVF
        lists into on-disk lists that search 3.4x slower than the same lists in memory (100k
        passages: 5.3 against 1.6 ms), where these search as fast."""
        import faiss

        index = faiss.read_index(
            str(Path(directory) / cls.FILE), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mmap else 0
        )
        if index.d != dim:
            raise ValueError(f"vector file has dimension {index.d}, the index says {dim}")
        return cls(index, plan)

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the k best among ids where `allowed` (a bool per id) is set; all
        stored ids when it is None. An IVF index that finds fewer than k in its probed lists
        searches every list: a filter keeping 1% of the passages still yields k of them."""
        import faiss

        # A loaded index answers one query per call, many calls at once in a server: OpenMP threads
        # within a search only spin against the other searches and the encoder (at a million
        # passages: the same latency on one thread, a third less CPU per search). OpenMP's thread
        # count is per calling thread, so it is set here, on the thread that searches: set once
        # at load, a server's request threads each ran a team of one thread per core, whose
        # idle member spun through half of every search.
        faiss.omp_set_num_threads(1)
        k = min(k, max(len(self), 1))
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        bits = np.packbits(allowed, bitorder="little") if allowed is not None else None
        selector = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits)) if bits is not None else None
        for nprobe in dict.fromkeys((self.plan.nprobe, self._lists())) if self.plan.nprobe else (0,):
            params = (
                faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
                if nprobe
                else faiss.SearchParameters(sel=selector)
            )
            scores, ids = self.index.search(query, k, params=params)
            keep = ids[0] >= 0
            if keep.sum() >= k:
                break
        return scores[0][keep], ids[0][keep]

    def _lists(self) -> int:
        import faiss

        return faiss.extract_index_ivf(self.index).nlist

    def ids(self) -> np.ndarray:
        import faiss

        return faiss.vector_to_array(self.index.id_map)

    def save(self, directory: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(Path(directory) / self.FILE))

    def describe(self) -> dict:
        return {
            "engine": "faiss",
            "factory": _ID_WRAPPER + self.plan.factory,
            "nprobe": self.plan.nprobe,
            "metric": "inner_product",
        }

    def __len__(self) -> int:
        return int(self.index.ntotal)


def training_sample(batches: Iterable[Batch], count: int, dim: int, size: int) -> np.ndarray:
    """`size` rows drawn at random (fixed seed) from the `count` rows of `batches`, in the order
    drawn: the same sample as drawing from all the rows held in one array."""
    positions = np.random.default_rng(0).choice(count, min(count, size), replace=False)
    slot_of = np.full(count, -1, dtype=np.int64)
    slot_of[positions] = np.arange(len(positions))
    sample = np.empty((len(positions), dim), np.float32)
    start = 0
    for _, vectors in batches:
        slots = slot_of[start : start + len(vectors)]
        taken = slots >= 0
        sample[slots[taken]] = vectors[taken]
        start += len(vectors)
    if start != count:
        raise ValueError(f"expected {count} vectors, read {start}")
    return sample


def _trained_copy(backend: FaissBackend):
    """An empty index with `backend`'s training (coarse quantiser, scalar quantiser). Its lists
    are swapped for empty in-memory ones first: FAISS cannot clone memory-mapped lists, and their
    contents are not wanted. `backend` is spent afterwards."""
    import faiss

    inner = faiss.downcast_index(backend.index.index)
    ivf = faiss.extract_index_ivf(inner)
    lists = faiss.ArrayInvertedLists(ivf.nlist, ivf.code_size)
    ivf.replace_invlists(lists, True)
    lists.this.disown()  # the index owns its lists now
    inner.ntotal = ivf.ntotal = 0
    return faiss.clone_index(inner)


class VectorDelta:
    """Vectors added since the checkpoint, searched exactly. Append-only storage shared by
    successive deltas: one only reads its first `count` rows, so appending never disturbs a
    search holding an older one."""

    def __init__(self, dim: int, ids: np.ndarray | None = None, vectors: np.ndarray | None = None, count: int = 0):
        self.dim = dim
        self._ids = ids if ids is not None else np.zeros(0, np.int64)
        self._vectors = vectors if vectors is not None else np.zeros((0, dim), np.float32)
        self.count = count

    def appended(self, ids: np.ndarray, vectors: np.ndarray) -> VectorDelta:
        if not len(ids):
            return self
        end = self.count + len(ids)
        store_ids, store_vectors = self._ids, self._vectors
        if end > len(store_ids):
            capacity = max(end, 2 * len(store_ids), 1024)
            store_ids = np.zeros(capacity, np.int64)
            store_vectors = np.zeros((capacity, self.dim), np.float32)
            store_ids[: self.count] = self._ids[: self.count]
            store_vectors[: self.count] = self._vectors[: self.count]
        store_ids[self.count : end] = ids
        store_vectors[self.count : end] = vectors
        return VectorDelta(self.dim, store_ids, store_vectors, end)

    def after(self, last_id: int) -> VectorDelta:
        """A new delta of the vectors with ids above `last_id` (those a new checkpoint lacks)."""
        keep = self._ids[: self.count] > last_id
        return VectorDelta(self.dim).appended(self._ids[: self.count][keep], self._vectors[: self.count][keep])

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = self._ids[: self.count]
        keep = allowed[ids]
        ids = ids[keep]
        if not len(ids):
            return np.zeros(0, np.float32), ids
        scores = self._vectors[: self.count][keep] @ query.reshape(-1)
        top = np.argpartition(-scores, k - 1)[:k] if len(scores) > k else np.arange(len(scores))
        return scores[top], ids[top]


def merge_top(k: int, *parts: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The k best (scores, ids) of several result lists, best first."""
    scores = np.concatenate([p[0] for p in parts]).astype(np.float32)
    ids = np.concatenate([p[1] for p in parts]).astype(np.int64)
    order = np.argsort(-scores, kind="stable")[:k]
    return scores[order], ids[order]
