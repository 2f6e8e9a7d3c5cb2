"""The vector backend: index choice by corpus size, and approximate search checked against exact search."""

import numpy as np
import pytest

from index.store.embedded.vectors import EXACT_BELOW, FaissBackend, IndexPlan, VectorDelta, merge_top


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
    assert IndexPlan.for_size(1_000_000) == IndexPlan("IVF4096,SQ8", nprobe=48)
    assert IndexPlan.for_size(1_000_000, memory_saving=True).factory == "IVF4096,SQ4"
    assert IndexPlan.for_size(100_000) == IndexPlan("IVF1024,SQ8", nprobe=96)
    assert IndexPlan.for_size(4_000_000).nprobe == 96  # 8,192 lists probed in the share 4,096 are


def search_all(backend, queries, k, allowed=None):
    return np.array([backend.search(q, k, allowed)[1] for q in queries])


def in_one_batch(ids, vectors, plan):
    return FaissBackend.build(lambda: [(ids, vectors)], len(ids), vectors.shape[1], plan)


@pytest.mark.parametrize("factory", ["Flat", "IVF64,Flat", "IVF64,SQ8"])
def test_a_build_read_in_batches_equals_one_from_a_single_array(factory):
    vectors = clustered(20_000)
    ids = np.arange(20_000, dtype=np.int64) * 5 + 2
    plan = IndexPlan(factory, nprobe=8 if "IVF" in factory else 0)
    reads = []

    def batches():
        reads.append(1)
        return ((ids[i : i + 3_000], vectors[i : i + 3_000]) for i in range(0, len(ids), 3_000))

    streamed = FaissBackend.build(batches, len(ids), 64, plan)
    whole = in_one_batch(ids, vectors, plan)
    assert len(reads) == (2 if "IVF" in factory else 1)  # the training sample takes a pass of its own
    queries = vectors[:50]
    assert np.array_equal(search_all(streamed, queries, 10), search_all(whole, queries, 10))
    with pytest.raises(ValueError, match="expected 20001 vectors"):
        FaissBackend.build(batches, len(ids) + 1, 64, IndexPlan("IVF64,Flat", nprobe=8))


@pytest.mark.parametrize("factory, floor", [("Flat", 1.0), ("IVF64,Flat", 0.95), ("IVF64,SQ8", 0.93)])
def test_search_against_brute_force(tmp_path, factory, floor):
    vectors = clustered(20_000)
    ids = np.arange(20_000, dtype=np.int64) * 7 + 3  # passages keep their own ids
    rng = np.random.default_rng(1)
    queries = vectors[rng.integers(0, len(vectors), 100)] + 0.05 * rng.normal(size=(100, 64)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    backend = in_one_batch(ids, vectors, IndexPlan(factory, nprobe=16 if "IVF" in factory else 0))
    expected = ids[exact_top(vectors, queries, 10)]
    found = search_all(backend, queries, 10)
    recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found.tolist(), expected.tolist())])
    assert recall >= floor
    backend.save(tmp_path)
    loaded = FaissBackend.load(tmp_path, 64, backend.plan)
    assert np.array_equal(search_all(loaded, queries, 10), found)


def test_a_loaded_ivf_index_keeps_its_lists_in_place_in_the_mapped_file(tmp_path):
    """Not FAISS's on-disk lists (what IO_FLAG_MMAP makes of them): those search 3.4x slower."""
    import faiss

    vectors = clustered(5_000)
    backend = in_one_batch(np.arange(5_000, dtype=np.int64), vectors, IndexPlan("IVF64,SQ8", nprobe=8))
    backend.save(tmp_path)
    loaded = FaissBackend.load(tmp_path, 64, backend.plan)
    lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(loaded.index).invlists)
    assert isinstance(lists, faiss.ArrayInvertedLists)
    assert np.array_equal(search_all(loaded, vectors[:20], 10), search_all(backend, vectors[:20], 10))


@pytest.mark.parametrize("factory", ["Flat", "IVF64,Flat"])
def test_a_filter_keeping_one_percent_still_yields_k_and_only_allowed_ids(factory):
    vectors = clustered(20_000)
    ids = np.arange(20_000, dtype=np.int64) * 3 + 1
    backend = in_one_batch(ids, vectors, IndexPlan(factory, nprobe=4 if "IVF" in factory else 0))
    rng = np.random.default_rng(2)
    allowed = np.zeros(ids.max() + 1, bool)
    allowed[rng.choice(ids, 200, replace=False)] = True
    query = vectors[7]
    scores, found = backend.search(query, 10, allowed)
    assert len(found) == 10 and allowed[found].all()
    # the oracle: every allowed vector scored exactly (IVF, approximate, finds most of them)
    keep = allowed[ids]
    exact = ids[keep][np.argsort(-(vectors[keep] @ query))[:10]]
    assert len(set(found.tolist()) & set(exact.tolist())) >= (10 if factory == "Flat" else 5)


def test_the_delta_is_exact_append_only_and_filtered():
    vectors = clustered(300)
    delta = VectorDelta(64).appended(np.arange(100, 200), vectors[:100])
    bigger = delta.appended(np.arange(200, 400), vectors[100:])
    allowed = np.ones(400, bool)
    allowed[100] = False
    query = vectors[0]
    assert 100 not in bigger.search(query, 5, allowed)[1]
    assert delta.count == 100 and set(delta.search(query, 500, np.ones(400, bool))[1]) == set(range(100, 200))
    scores, found = bigger.search(query, 5, allowed)
    exact = np.argsort(-(vectors[1:] @ query))[:5] + 101
    assert found[np.argsort(-scores)].tolist() == exact.tolist()
    merged = merge_top(3, (np.array([0.9, 0.1]), np.array([1, 2])), (np.array([0.5]), np.array([3])))
    assert merged[1].tolist() == [1, 3, 2]
