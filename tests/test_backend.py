"""The vector backend: index choice by corpus size, and approximate search checked against exact search."""

import numpy as np
import pytest

from index.backend import EXACT_BELOW, FaissBackend, IndexPlan


def clustered(n: int, dim: int = 64, clusters: int = 200, seed: int = 0) -> np.ndarray:
    """Unit vectors around random centres: closer to real embeddings than uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    vectors = centres[rng.integers(0, clusters, n)] + 0.35 * rng.normal(size=(n, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(queries @ vectors.T), axis=1)[:, :k]


def test_plan_by_size():
    assert IndexPlan.for_size(EXACT_BELOW - 1) == IndexPlan("Flat")
    assert IndexPlan.for_size(1_000_000) == IndexPlan("IVF4096,Flat", nprobe=128)
    assert IndexPlan.for_size(1_000_000, memory_saving=True).factory == "IVF4096,SQ8"
    assert IndexPlan.for_size(100_000).factory == "IVF1024,Flat"


@pytest.mark.parametrize("factory, floor", [("Flat", 1.0), ("IVF64,Flat", 0.95), ("IVF64,SQ8", 0.93)])
def test_search_against_brute_force(tmp_path, factory, floor):
    vectors = clustered(20_000)
    ids = np.arange(20_000, dtype=np.int64) * 7 + 3  # passages keep their own ids
    rng = np.random.default_rng(1)
    queries = vectors[rng.integers(0, len(vectors), 100)] + 0.05 * rng.normal(size=(100, 64)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    backend = FaissBackend.build(ids, vectors, IndexPlan(factory, nprobe=16 if "IVF" in factory else 0))
    expected = ids[exact_top(vectors, queries, 10)]
    _, found = backend.search(queries, 10)
    recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found.tolist(), expected.tolist())])
    assert recall >= floor
    # stored vectors read back by passage id, also after a memory-mapped load
    np.testing.assert_allclose(backend.vector(int(ids[5])), vectors[5], atol=0.02)
    backend.save(tmp_path)
    loaded = FaissBackend.load(tmp_path, 64, backend.plan)
    assert np.array_equal(loaded.search(queries, 10)[1], found)
    with pytest.raises(KeyError):
        loaded.vector(4)
