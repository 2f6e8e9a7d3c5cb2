"""Vector index at 10k, 100k and 1M passages: build time, bytes of RAM per passage, load time,
search latency and recall@10 against exact search, for each index the size policy can choose.

Above what this machine can embed the vectors are synthetic: real e5 passage vectors (from the
ViQuAD evaluation index, when `make eval` has built it) each copied with a little noise, so the
data keeps the clustered shape of real embeddings; random unit vectors otherwise.

--real-queries asks ViQuAD's questions, embedded by the model, instead of noisy copies of the
passages (a question is farther from its passages than a copy is); --nprobes 16,32,64 measures
the default IVF index of each size at each of those nprobes, one build per size (with
--factories "IVF4096,Flat;IVF4096,SQ8": each of those instead). Each search asks for
--candidates results (100, as the service's dense leg) and keeps the 10 of best exact cosine, as
the service rescores its candidates from the stored float32 vectors.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from figures import latency_passes, resident_bytes, spread

from index.store.embedded.publish import open_index
from index.store.embedded.vectors import FaissBackend, IndexPlan

ROOT = Path(__file__).resolve().parent.parent

DIM = 384


def base_vectors() -> np.ndarray:
    source = ROOT / "var" / "eval" / "viquad"
    if source.exists():
        index = open_index(source)
        try:
            return np.concatenate([rows.vectors for rows in index.passages.all_rows(index.dim)])
        finally:
            index.close()
    rng = np.random.default_rng(0)
    return rng.normal(size=(5000, DIM)).astype(np.float32)


def synthetic(base: np.ndarray, n: int, seed: int, noise: float = 0.02) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        chunk = base[rng.integers(0, len(base), stop - start)] + noise * rng.standard_normal(
            (stop - start, base.shape[1]), dtype=np.float32
        )
        out[start:stop] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return out


def real_queries(count: int) -> np.ndarray:
    import json

    from index.encode.embed import load_encoder

    lines = (ROOT.parent / "shared" / "eval" / "viquad" / "queries_dev.jsonl").read_text(encoding="utf-8").splitlines()
    return load_encoder().encode_queries([json.loads(line)["text"] for line in lines[:count]])


def searched(
    backend: FaissBackend,
    queries: np.ndarray,
    exact_ids: np.ndarray,
    repeats: int,
    candidates: int,
    vectors: np.ndarray,
) -> tuple[list, list, float]:
    """p50s and p99s (ms) of each pass over `queries`, and recall@10 against `exact_ids`: of
    `candidates` results, the 10 of best exact cosine (from `vectors`)."""

    def top10(query: np.ndarray) -> np.ndarray:
        ids = backend.search(query, candidates, None)[1]
        return ids[np.argsort(-(vectors[ids] @ query))[:10]]

    p50s, p99s, found = latency_passes(top10, queries, repeats)
    recall = float(np.mean([len(set(f.tolist()) & set(e.tolist())) / 10 for f, e in zip(found, exact_ids)]))
    return p50s, p99s, recall


def sweep(
    n: int,
    vectors: np.ndarray,
    queries: np.ndarray,
    exact_ids: np.ndarray,
    factory: str | None,
    nprobes: list[int],
    repeats: int,
    candidates: int,
) -> None:
    chosen = IndexPlan.for_size(max(n, 50_000))
    plan = IndexPlan(factory, chosen.nprobe) if factory else chosen
    started = time.perf_counter()
    built = FaissBackend.build(lambda: [(np.arange(n, dtype=np.int64), vectors)], n, vectors.shape[1], plan)
    print(f"({plan.factory}: built in {time.perf_counter() - started:.0f} s)", flush=True)
    with tempfile.TemporaryDirectory() as work:
        built.save(Path(work))
        del built
        served = FaissBackend.load(Path(work), vectors.shape[1], plan)  # memory-mapped, as a server loads it
    for nprobe in nprobes:
        p50s, p99s, recall = searched(
            FaissBackend(served.index, IndexPlan(plan.factory, nprobe)),
            queries,
            exact_ids,
            repeats,
            candidates,
            vectors,
        )
        mark = " (default)" if IndexPlan(plan.factory, nprobe) == chosen else ""
        print(
            f"| {n:,} | {plan.factory} nprobe {nprobe}{mark} | {spread(p50s, digits=2)} | "
            f"{statistics.median(p99s):.2f} | {recall:.3f} |",
            flush=True,
        )


def measure(
    n: int,
    vectors: np.ndarray,
    queries: np.ndarray,
    exact_ids: np.ndarray,
    plan: IndexPlan,
    work: Path,
    repeats: int,
    candidates: int,
) -> dict:
    ids = np.arange(n, dtype=np.int64)
    started = time.perf_counter()
    backend = FaissBackend.build(lambda: [(ids, vectors)], n, vectors.shape[1], plan)
    build_s = time.perf_counter() - started
    backend.save(work)
    file_bytes = (work / FaissBackend.FILE).stat().st_size
    del backend

    load_mmap_s = []
    for _ in range(repeats):
        started = time.perf_counter()
        mapped = FaissBackend.load(work, DIM, plan, mmap=True)
        load_mmap_s.append(time.perf_counter() - started)
    before = resident_bytes()
    started = time.perf_counter()
    loaded = FaissBackend.load(work, DIM, plan, mmap=False)
    load_s = time.perf_counter() - started
    ram = resident_bytes() - before

    p50s, p99s, recall = searched(mapped, queries, exact_ids, repeats, candidates, vectors)
    del loaded, mapped
    return {
        "build_s": build_s,
        "bytes_per_passage_file": file_bytes / n,
        "bytes_per_passage_ram": ram / n,
        "load_s": load_s,
        "load_mmap_s": statistics.median(load_mmap_s),
        "p50_ms": spread(p50s, digits=2),
        "p99_ms": statistics.median(p99s),
        "recall10": recall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3, help="passes over the queries (and mmap loads)")
    parser.add_argument("--real-queries", action="store_true", help="ViQuAD's questions embedded, not noisy copies")
    parser.add_argument("--nprobes", help="comma-separated nprobes to measure the default IVF index at")
    parser.add_argument(
        "--candidates",
        type=int,
        default=100,
        help="results asked of FAISS, the best 10 of them by exact cosine, as the service's dense leg does",
    )
    parser.add_argument(
        "--factories", help="with --nprobes: FAISS factories (semicolon-separated) to measure instead of the default"
    )
    args = parser.parse_args()

    base = base_vectors()
    asked = real_queries(args.queries) if args.real_queries else None
    print(f"base vectors: {len(base)} {'real e5 (ViQuAD)' if len(base) != 5000 else 'random'}")
    print(f"queries: {'ViQuAD questions' if asked is not None else 'noisy copies of the base vectors'}")
    print(f"one search thread; search p50 min / median / max over {args.repeats} passes, p99 median; mmap load median")
    if args.nprobes:
        print("| passages | index | search ms p50 | p99 | recall@10 |")
        print("|---|---|---|---|---|")
    else:
        print(
            "| passages | index | build s | bytes/passage (file / RAM) "
            "| load s (read / mmap) | search ms p50 | p99 | recall@10 |"
        )
        print("|---|---|---|---|---|---|---|---|")
    for n in map(int, args.sizes.split(",")):
        vectors = synthetic(base, n, seed=n)
        queries = asked if asked is not None else synthetic(base, args.queries, seed=n + 1, noise=0.03)
        exact = np.argpartition(-(queries @ vectors.T), 10, axis=1)[:, :10]
        if args.nprobes:
            for factory in args.factories.split(";") if args.factories else [None]:
                sweep(
                    n,
                    vectors,
                    queries,
                    exact,
                    factory,
                    [int(p) for p in args.nprobes.split(",")],
                    args.repeats,
                    args.candidates,
                )
            continue
        plans = {"exact": IndexPlan("Flat")}
        for memory_saving in (False, True):
            plan = IndexPlan.for_size(max(n, 50_000), memory_saving)
            plans[f"{'memory-saving ' if memory_saving else ''}{plan.factory} nprobe {plan.nprobe}"] = plan
        chosen = IndexPlan.for_size(n)
        for label, plan in plans.items():
            with tempfile.TemporaryDirectory() as work:
                m = measure(n, vectors, queries, exact, plan, Path(work), args.repeats, args.candidates)
            mark = " (default)" if plan == chosen else ""
            print(
                f"| {n:,} | {label}{mark} | {m['build_s']:.1f} | "
                f"{m['bytes_per_passage_file']:.0f} / {m['bytes_per_passage_ram']:.0f} "
                f"| {m['load_s']:.2f} / {m['load_mmap_s']:.3f} | "
                f"{m['p50_ms']} | {m['p99_ms']:.2f} | {m['recall10']:.3f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
