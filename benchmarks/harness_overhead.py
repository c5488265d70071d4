"""Harness overhead benchmarks.

1. Ceiling: the null backend through the real worker loop, one thread: operations per second, and the loop's
   whole cost per operation (aims: >= 50,000 ops/s per worker, <= 20 us per op).
2. Every in-process engine (qdrant-edge, faiss, chroma embedded, milvus-lite) through bench against a bare loop
   calling the engine's own client directly, on the same index and queries, at one and two threads (aim: harness
   QPS / bare QPS >= 0.95 for each).

Each engine is built once through bench's own adapter, the way `bench run` builds it (options from configs/,
connect, create, insert in the adapter's load batches, wait_indexed). Then, per thread count, blocks of the same
searches alternate (bare, harness, harness, bare, ...: the order flips every repeat so a drift in the machine's
load favours neither):

- bare: the fastest loop the engine's documentation shows, requests built before the clock starts: qdrant-edge
  `EdgeShard.search(SearchRequest)`, faiss `index.search(row, k, params=SearchParametersHNSW)` on normalised
  rows, chroma `collection.query(query_embeddings=[row], n_results=k, include=[])`, milvus-lite
  `MilvusClient.search(...)`. One thread: the main thread; two: two plain Python threads, each a half of the
  queries.
- harness: bench's worker loop, the path `bench run` takes (bench.load.pool.ThreadPool and a search PhaseTask:
  each worker runs its own seeded order of every query), QPS as bench reports it (operations / first start to
  last end).

Both sides run every query the same number of times per block. Reported per engine and thread count: median QPS
each way with its range over the repeats, the median of the per-pair ratios harness / bare with its range, and
process CPU per search each way (less sensitive than QPS to other processes on the machine). Before timing, one
pass each way checks that both return the same ids for every query. After qdrant-edge's table rows, each piece
of its search is timed on its own (request building, list conversion, result parsing, the shard, the thread).

    .venv/bin/python benchmarks/harness_overhead.py [--n 20000] [--engines qdrant-edge faiss chroma milvus-lite]
        [--threads 1 2] [--repeats 7] [--passes 2] [--ef 128] [--skip-ceiling] [--skip-pieces]
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import _smoke
import numpy as np

from bench import datasets
from bench.backends import registry
from bench.backends.base import Backend, CollectionSpec, IndexSpec
from bench.datasets.spec import DatasetSpec
from bench.load.calibrate import calibrate
from bench.load.pool import ThreadPool
from bench.load.task import PhaseTask
from bench.load.worker import WorkerData
from bench.spec import load_backend_options

ENGINES = ("qdrant-edge", "faiss", "chroma", "milvus-lite")
K = 10
LOAD_BATCH = 1000  # run.batch_size's default; adapters with a documented bulk size raise it (load_batch_size)
OP_TIMEOUT_S = 30.0  # run.op_timeout_s's default, set on the adapter as `bench run` does


@dataclass
class Bare:
    """One engine's bare loop: `call(*args[i])` searches query i; `ids(result)` reads its ids (checks only);
    `thread_init` runs once in every thread before it searches."""

    call: Callable[..., Any]
    args: list[tuple[Any, ...]]
    ids: Callable[[Any], list[int]]
    thread_init: Callable[[], None] = lambda: None


# -- bare loops, one per engine: the engine's own client, requests prebuilt ------------------------------------

def bare_qdrant_edge(b: Any, queries: np.ndarray, ef: int) -> Bare:
    q = b.q
    params = q.SearchParams(hnsw_ef=ef)
    reqs = [q.SearchRequest(query=q.Query.Nearest(v.tolist()), limit=K, params=params) for v in queries]
    return Bare(b.shard.search, [(r,) for r in reqs], lambda res: [p.id for p in res])


def bare_faiss(b: Any, queries: np.ndarray, ef: int) -> Bare:
    import faiss

    x = np.array(queries, dtype=np.float32)
    faiss.normalize_L2(x)  # the index holds normalised vectors (cosine as inner product)
    params = faiss.SearchParametersHNSW(efSearch=ef)
    search = b.index.search

    def call(row: np.ndarray) -> Any:
        return search(row, K, params=params)

    return Bare(call, [(x[i:i + 1],) for i in range(len(x))], lambda res: res[1][0].tolist(),
                thread_init=lambda: faiss.omp_set_num_threads(1))


def bare_chroma(b: Any, queries: np.ndarray, ef: int) -> Bare:
    col = b.col  # the collection object bench's warm-up left open (with ef_search applied)
    query = col.query
    rows = np.asarray(queries, dtype=np.float32)

    def call(emb: list[np.ndarray]) -> Any:
        return query(query_embeddings=emb, n_results=K, include=[])

    return Bare(call, [([rows[i]],) for i in range(len(rows))], lambda res: [int(i) for i in res["ids"][0]])


def bare_milvus_lite(b: Any, queries: np.ndarray, ef: int) -> Bare:
    client, name = b.client, b.collection.name
    sp = {"metric_type": {"cosine": "COSINE", "ip": "IP", "l2": "L2"}[b.collection.metric], "params": {"ef": ef}}

    def call(data: list[list[float]]) -> Any:
        return client.search(name, data=data, limit=K, search_params=sp, anns_field="vector")

    return Bare(call, [([v.tolist()],) for v in queries], lambda res: [int(h["id"]) for h in res[0]])


BARE: dict[str, Callable[[Any, np.ndarray, int], Bare]] = {
    "qdrant-edge": bare_qdrant_edge, "faiss": bare_faiss, "chroma": bare_chroma, "milvus-lite": bare_milvus_lite}


# -- building, through bench's adapter ---------------------------------------------------------------------------

def build(name: str, ds: Any, workdir: str, m: int, ef_construction: int, ef: int) -> tuple[Backend, float]:
    """The engine as `bench run` builds it (RunContext._engine): options from configs/, connect, create, insert in
    the adapter's load batches, wait_indexed. Returns the adapter and the load + build seconds."""
    cls = registry.get(name)
    options, _ = load_backend_options(cls.Options, name, None, [])
    b = cls(options, workdir)
    b.connect()
    t0 = time.perf_counter()
    b.create(CollectionSpec("overhead", ds.dim, ds.metric, IndexSpec(m=m, ef_construction=ef_construction),
                            ef_search=ef))
    for ids, vecs in ds.batches(b.load_batch_size(LOAD_BATCH)):
        b.insert(ids, vecs)
    built = b.wait_indexed(3600)
    took = time.perf_counter() - t0
    print(f"  built {name}: {built.kind} {({k: v for k, v in built.params.items() if k in ('m', 'ef_construction', 'segments')})}"
          f" in {took:.0f} s", flush=True)
    b.set_op_timeout(OP_TIMEOUT_S)
    return b, took


# -- the two loops --------------------------------------------------------------------------------------------

@dataclass
class Block:
    qps: float
    cpu_us: float  # process CPU seconds per search, in us


def bare_block(bare: Bare, threads: int, passes: int) -> Block:
    """Every query passes * threads times in all: one thread (the main one) all queries, or each of `threads`
    plain threads its share of them. QPS over first start to last end."""
    n = len(bare.args)
    shares = [bare.args[t::threads] for t in range(threads)]
    spans: list[tuple[float, float]] = [(0.0, 0.0)] * threads
    barrier = threading.Barrier(threads)
    call = bare.call

    def run(t: int) -> None:
        bare.thread_init()
        share = shares[t] * (passes * threads)
        barrier.wait()
        s = time.perf_counter()
        for a in share:
            call(*a)
        spans[t] = (s, time.perf_counter())

    gc.collect()
    c0 = time.process_time()
    if threads == 1:
        run(0)
    else:
        ts = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    cpu = time.process_time() - c0
    total = n * passes * threads
    took = max(e for _, e in spans) - min(s for s, _ in spans)
    return Block(total / took, cpu / total * 1e6)


def harness_block(pool: ThreadPool, n_queries: int, threads: int, passes: int, ef: int, trial: int) -> Block:
    """bench's worker loop: a search phase, every worker `passes` times through its own order of every query."""
    task = PhaseTask(mode="search", trial=trial, seed=1, k=K, ef_search=ef, duration_s=None,
                     operations=n_queries * passes)
    # pool.run collects garbage before the clock starts (bench.load.worker.settled_heap), tens of ms of CPU that
    # no QPS includes: an empty phase just before measures that part, and it is taken off the CPU figure
    c0 = time.process_time()
    pool.run(replace(task, operations=0))
    c1 = time.process_time()
    res, _ = pool.run(task)
    cpu = (time.process_time() - c1) - (c1 - c0)
    total = sum(len(r.search_queries) for r in res)
    took = max(r.ended_wall for r in res) - min(r.started_wall for r in res)
    return Block(total / took, cpu / total * 1e6)


def same_ids(b: Backend, bare: Bare, pool: ThreadPool, n_queries: int, ef: int) -> float:
    """Share of queries whose ids are the same through bench (one harness pass) and the bare client."""
    task = PhaseTask(mode="search", trial=10_000, seed=1, k=K, ef_search=ef, duration_s=None, operations=n_queries)
    bare.thread_init()
    want = {int(qi): [int(i) for i in row if i >= 0] for r in pool.run(task)[0]
            for qi, row in zip(r.search_queries, r.search_ids, strict=True)}
    same = sum(want[qi] == [int(i) for i in bare.ids(bare.call(*bare.args[qi]))] for qi in want)
    return same / len(want)


# -- where a qdrant-edge search's time goes ---------------------------------------------------------------------

def qdrant_edge_pieces(b: Any, queries: np.ndarray, ef: int, reps: int = 7) -> None:
    """Each piece of a qdrant-edge search, per search over every query, median of `reps` rounds: the calling
    thread's CPU, the process' CPU (the shard searches its segments on its own search threads) and wall time."""
    from bench.backends.base import SearchParams

    q, shard = b.q, b.shard
    rows, lists = list(queries), b.prepare_queries(queries)
    sp, params = q.SearchParams(hnsw_ef=ef), SearchParams(ef_search=ef)
    nears = [q.Query.Nearest(v) for v in lists]
    reqs = [q.SearchRequest(n, K, None, None, sp) for n in nears]
    found = [shard.search(r) for r in reqs]

    def in_thread(f: Callable[[int], Any]) -> Callable[[], None]:
        def run() -> None:
            t = threading.Thread(target=lambda: [f(i) for i in range(len(rows))])
            t.start()
            t.join()
        return run

    pieces: list[tuple[str, Callable[[int], Any]]] = [
        ("numpy row -> list of floats (row.tolist())", lambda i: rows[i].tolist()),
        ("Query.Nearest(list)", lambda i: q.Query.Nearest(lists[i])),
        ("SearchRequest(query, k, params)", lambda i: q.SearchRequest(nears[i], K, None, None, sp)),
        ("result parsing ([p.id for p in points])", lambda i: [p.id for p in found[i]]),
        ("EdgeShard.search(prebuilt request): the bare call", lambda i: shard.search(reqs[i])),
        ("adapter.search(numpy row): tolist per search", lambda i: b.search(rows[i], K, params)),
        ("adapter.search(prepared list): what bench runs", lambda i: b.search(lists[i], K, params)),
    ]
    print("  qdrant-edge, per search (median of rounds, the pieces taking turns): calling-thread CPU / process CPU "
          "/ wall, in us")
    n = len(rows)
    got: dict[str, list[tuple[float, float, float]]] = {label: [] for label, _ in pieces}
    for _ in range(reps):
        for label, f in pieces:
            t0, c0, w0 = time.thread_time(), time.process_time(), time.perf_counter()
            for i in range(n):
                f(i)
            got[label].append(((time.thread_time() - t0) / n * 1e6, (time.process_time() - c0) / n * 1e6,
                               (time.perf_counter() - w0) / n * 1e6))
    for label, xs in got.items():
        print(f"    {label:52s} " + " ".join(f"{statistics.median(x[j] for x in xs):8.1f}" for j in range(3)))
    got = []
    for _ in range(reps):
        c0, w0 = time.process_time(), time.perf_counter()
        in_thread(lambda i: shard.search(reqs[i]))()
        got.append(((time.process_time() - c0) / n * 1e6, (time.perf_counter() - w0) / n * 1e6))
    print(f"    {'EdgeShard.search(prebuilt request) in another thread':52s} {'':8s} "
          f"{statistics.median(x[0] for x in got):8.1f} {statistics.median(x[1] for x in got):8.1f}")


# -- one engine -----------------------------------------------------------------------------------------------

@dataclass
class Row:
    engine: str
    threads: int
    bare: list[Block] = field(default_factory=list)
    harness: list[Block] = field(default_factory=list)
    same: float = 0.0


def measure(name: str, b: Backend, ds: Any, threads: int, a: argparse.Namespace) -> Row:
    nq = len(ds.queries)
    pool = ThreadPool(b, WorkerData(ds.queries, ds.base, ds.holdout), threads)
    harness_block(pool, nq, threads, 1, a.ef, trial=-1)  # warm-up (and, for chroma, applies ef_search)
    bare = BARE[name](b, ds.queries, a.ef)
    bare_block(bare, threads, 1)  # warm-up
    row = Row(name, threads, same=same_ids(b, bare, pool, nq, a.ef))
    for r in range(a.repeats):
        order = ("bare", "harness") if r % 2 == 0 else ("harness", "bare")
        for side in order:
            if side == "bare":
                row.bare.append(bare_block(bare, threads, a.passes))
            else:
                row.harness.append(harness_block(pool, nq, threads, a.passes, a.ef, trial=r))
    pool.close()
    return row


def _range(xs: Sequence[float], fmt: str) -> str:
    return f"{format(statistics.median(xs), fmt)} ({format(min(xs), fmt)}-{format(max(xs), fmt)})"


def table(rows: list[Row]) -> str:
    out = ["| engine | threads | bare QPS (range) | harness QPS (range) | ratio harness/bare (range of pairs) | "
           "CPU us/search bare / harness | same ids |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratios = [h.qps / b.qps for b, h in zip(r.bare, r.harness, strict=True)]
        cb = statistics.median(x.cpu_us for x in r.bare)
        ch = statistics.median(x.cpu_us for x in r.harness)
        out.append(f"| {r.engine} | {r.threads} | {_range([x.qps for x in r.bare], ',.0f')} | "
                   f"{_range([x.qps for x in r.harness], ',.0f')} | {_range(ratios, '.3f')} | {cb:,.0f} / {ch:,.0f} | "
                   f"{r.same:.0%} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--source", default="wordnet-mpnet-768")
    ap.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--repeats", type=int, default=7, help="pairs of blocks (bare, harness) per engine and threads")
    ap.add_argument("--passes", type=int, default=2, help="times every query runs per thread per block")
    ap.add_argument("--ef", type=int, default=128)
    ap.add_argument("--m", type=int, default=64)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--skip-ceiling", action="store_true")
    ap.add_argument("--skip-pieces", action="store_true", help="skip timing the pieces of a qdrant-edge search")
    _smoke.add(ap, n=1_000, queries=20, engines=["faiss"], threads=[1], repeats=1, passes=1, ef=16, m=8, ef_construction=32, skip_pieces=True)
    a = _smoke.parse(ap)

    if not a.skip_ceiling:
        print("== 1. harness ceiling (null backend, one thread) ==")
        for c in calibrate(300_000, 1000):
            print(f"{c.backend:10s} {c.mode:7s} {c.ops_per_s:12,.0f} ops/s  loop cost {c.per_op_us:8.2f} us/op  "
                  f"recorded P50 {c.p50_us} us")

    ds = datasets.load(DatasetSpec(source=a.source, n=a.n, queries=a.queries, dim=768, metric="cosine"),
                       datasets.default_cache_dir(), progress=False)
    print(f"\n== 2. in-process engines: bench's worker loop vs a bare loop ({a.source}, {ds.n} x {ds.dim}, "
          f"{len(ds.queries)} queries, M={a.m}, ef_construction={a.ef_construction}, ef_search={a.ef}, k={K}, "
          f"{a.repeats} pairs of blocks of {a.passes} passes per thread) ==", flush=True)
    rows: list[Row] = []
    for name in a.engines:
        workdir = tempfile.mkdtemp(prefix=f"overhead-{name}-")
        b = None
        try:
            b, _ = build(name, ds, workdir, a.m, a.ef_construction, a.ef)
            for t in a.threads:
                rows.append(measure(name, b, ds, t, a))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
            if name == "qdrant-edge" and not a.skip_pieces:
                qdrant_edge_pieces(b, ds.queries, a.ef)
        finally:
            if b is not None:
                b.close()
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
