"""Harness overhead benchmarks (issues 2 and 3).

1. Ceiling: the null backend through the real worker loop, one thread: operations per second, and the loop's
   whole cost per operation (aims: >= 50,000 ops/s per worker, <= 20 us per op).
2. faiss through the harness vs a bare loop calling faiss directly on the same index and queries, one thread,
   at several ef_search values: QPS ratio (aim: >= 0.9).

    .venv/bin/python benchmarks/harness_overhead.py [--n 20000] [--queries 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np

from bench import datasets
from bench.backends.base import CollectionSpec, IndexSpec, SearchParams
from bench.backends.faiss_hnsw import FaissBackend, FaissOptions
from bench.datasets.spec import DatasetSpec
from bench.load.calibrate import calibrate
from bench.load.pool import ThreadPool
from bench.load.task import PhaseTask
from bench.load.worker import WorkerData


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--source", default="wordnet-mpnet-768")
    a = ap.parse_args()

    print("== 1. harness ceiling (null backend, one thread) ==")
    for c in calibrate(300_000, 1000):
        print(f"{c.backend:10s} {c.mode:7s} {c.ops_per_s:12,.0f} ops/s  loop cost {c.per_op_us:8.2f} us/op  "
              f"recorded P50 {c.p50_us} us")

    print("\n== 2. faiss through the harness vs a bare loop (one thread) ==")
    ds = datasets.load(DatasetSpec(source=a.source, n=a.n, queries=a.queries, dim=768, metric="cosine"),
                       datasets.default_cache_dir(), progress=False)
    b = FaissBackend(FaissOptions(search_threads=1), tempfile.mkdtemp())
    b.create(CollectionSpec("bench", ds.dim, "cosine", IndexSpec(m=64, ef_construction=200)))
    for ids, vecs in ds.batches(5000):
        b.insert(ids, vecs)
    b.wait_indexed(600)
    import faiss

    faiss.omp_set_num_threads(1)
    index = b.index
    q = np.ascontiguousarray(ds.queries, dtype=np.float32).copy()
    faiss.normalize_L2(q)
    pool = ThreadPool(b, WorkerData(ds.queries, ds.base, ds.holdout), 1)
    print(f"{'ef':>5} {'bare QPS':>10} {'harness QPS':>12} {'ratio':>7}")
    for ef in (32, 64, 128, 256):
        params = faiss.SearchParametersHNSW(efSearch=ef)
        bare, harness = [], []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            for i in range(len(q)):
                index.search(q[i:i + 1], 10, params=params)
            bare.append(len(q) / (time.perf_counter() - t0))
            task = PhaseTask(mode="search", trial=0, seed=1, k=10, ef_search=ef, duration_s=None,
                             operations=len(q))
            res, _ = pool.run(task)
            r = res[0]
            harness.append(len(q) / (r.ended_wall - r.started_wall))
        mb, mh = statistics.median(bare), statistics.median(harness)
        print(f"{ef:>5} {mb:>10,.0f} {mh:>12,.0f} {mh / mb:>7.3f}")
    sp = SearchParams(ef_search=64)
    assert len(b.search(ds.queries[0], 10, sp)) == 10


if __name__ == "__main__":
    main()
