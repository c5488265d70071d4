#!/usr/bin/env python3
"""Does bench load and build each engine as fast as the engine's own documented recipe?

For every engine that runs here it loads the same vectors twice per round, alternating which goes first, after an
untimed warm-up load of 1,000 rows on each side (the first load in a process pays the client's set-up):
- `bench`: the adapter, driven as `bench run` drives it (create; insert in batches of the adapter's
  `load_batch_size(run.batch_size)`, each timed; `wait_indexed`, timed), with the options of configs/<engine>.toml;
- `recipe`: a hand-written load straight from the engine's docs (each `_recipe_*` function names what it follows),
  timed the same way: load = the inserts, build = from the last insert until searchable.
`--baseline` adds a third side for pgvector: the adapter with the settings main had before issue 15 (default
EXTENDED storage, maintenance_work_mem 512MB, the server's workers). For Milvus it also times 200 searches on each
side (search QPS at ef 64, one client), so the consistency level shows.

Data: the real wordnet-mpnet-768 embeddings (20,000 x 768) when readable, else synthetic; `--n 100000` switches to
the synthetic generator at that size. Results: a markdown table on stdout and JSON in --out.

    python benchmarks/build_recipes.py                                  # every engine here, 20,000 x 768, M=64
    python benchmarks/build_recipes.py --engines pgvector milvus --rounds 2 --baseline
    python benchmarks/build_recipes.py --n 100000 --m 16 --efc 100 --engines pgvector milvus
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import _smoke
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ENGINES = ["pgvector", "milvus", "milvus-lite", "chroma", "chroma-server", "qdrant-edge", "faiss"]
BATCH = 1000  # the shipped workloads' run.batch_size


@dataclass
class Case:
    x: np.ndarray  # (n, dim) float32, L2-normalised (cosine)
    q: np.ndarray  # queries
    m: int
    efc: int
    data: str
    workdir: Path

    @property
    def ids(self) -> np.ndarray:
        return np.arange(len(self.x), dtype=np.int64)


@dataclass
class Timing:
    load_s: float
    build_s: float
    extra: dict[str, Any] = field(default_factory=dict)


def _data(n: int, cache: Path) -> tuple[np.ndarray, np.ndarray, str]:
    from bench import datasets
    from bench.datasets.spec import DatasetSpec
    from bench.errors import UserError

    spec = DatasetSpec(source="synthetic", n=n, queries=200, dim=768, metric="cosine")
    if n <= 20_000:
        try:
            ds = datasets.load(DatasetSpec(source="wordnet-mpnet-768", n=n, queries=200), cache, progress=False)
            return _unit(ds.base), _unit(ds.queries), f"wordnet-mpnet-768 (real), {n:,} x 768"
        except UserError as e:
            print(f"wordnet-mpnet-768 not readable ({e}); using synthetic vectors", file=sys.stderr)
    ds = datasets.load(spec, cache, progress=False)
    return _unit(ds.base), _unit(ds.queries), f"synthetic (clustered generator), {n:,} x 768"


def _unit(a: Any) -> np.ndarray:
    x = np.ascontiguousarray(np.asarray(a, dtype=np.float32))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# -- bench's side ---------------------------------------------------------------------------------------------------

def bench_side(engine: str, case: Case, sets: list[str] | None = None) -> Timing:
    """The adapter, driven as RunContext drives it: inserts timed one by one, then wait_indexed timed."""
    from bench.backends import registry
    from bench.backends.base import CollectionSpec, IndexSpec
    from bench.spec import load_backend_options

    cls = registry.get(engine)
    options, _ = load_backend_options(cls.Options, engine, None, sets or [])
    b = cls(options, tempfile.mkdtemp(dir=case.workdir))
    b.connect()
    spec = CollectionSpec(name=f"recipes_bench_{engine.replace('-', '_')}", dim=case.x.shape[1], metric="cosine",
                          index=IndexSpec(m=case.m, ef_construction=case.efc), ef_search=64)
    try:
        b.create(spec)
        step = b.load_batch_size(BATCH)
        load_s = 0.0
        for s in range(0, len(case.x), step):
            t0 = time.perf_counter()
            b.insert(case.ids[s:s + step], case.x[s:s + step])
            load_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        built = b.wait_indexed(7200)
        build_s = time.perf_counter() - t0
        extra = {"kind": built.kind, "m": built.params.get("m"), "indexed": built.indexed_count,
                 "recipe": built.params.get("load_recipe")}
        if engine == "milvus":
            from bench.backends.base import SearchParams

            extra["qps"] = _qps(lambda v: b.search(v, 10, SearchParams(ef_search=64)), case.q)
        return Timing(load_s, build_s, extra)
    finally:
        b.drop()
        b.close()


def _qps(search: Callable[[np.ndarray], Any], queries: np.ndarray) -> float:
    t0 = time.perf_counter()
    for v in queries:
        search(v)
    return len(queries) / (time.perf_counter() - t0)


def _timed(load: Callable[[], None], build: Callable[[], Any], after: Callable[[], Any] | None = None) -> Timing:
    """Times `load`, then `build`; `after` (untimed) adds figures of the built collection."""
    t0 = time.perf_counter()
    load()
    t1 = time.perf_counter()
    extra = build() or {}
    t2 = time.perf_counter()
    extra.update((after() if after is not None else None) or {})
    return Timing(t1 - t0, t2 - t1, extra)


# -- the engines' own recipes --------------------------------------------------------------------------------------

def _recipe_pgvector(case: Case) -> Timing:
    """pgvector README (Bulk loading; Index Build Time) and pgvector-python's loading example: COPY ... FORMAT
    BINARY, vectors not toasted (issue #353: SET STORAGE PLAIN), index after the load with a maintenance_work_mem
    that holds the graph and max_parallel_maintenance_workers = cores - 1 (plus the leader), then ANALYZE."""
    import psycopg
    from pgvector.psycopg import register_vector

    conn = psycopg.connect(os.environ.get("BENCH_PGVECTOR_DSN", "postgresql://bench@127.0.0.1:5432/bench"),
                           autocommit=True)
    register_vector(conn)
    conn.execute("DROP TABLE IF EXISTS recipes_items")
    conn.execute(f"CREATE TABLE recipes_items (id bigint PRIMARY KEY, embedding vector({case.x.shape[1]}))")
    conn.execute("ALTER TABLE recipes_items ALTER COLUMN embedding SET STORAGE PLAIN")

    def load() -> None:
        with conn.cursor() as cur, cur.copy("COPY recipes_items (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as cp:
            cp.set_types(["int8", "vector"])
            for i, v in zip(case.ids, case.x, strict=True):
                cp.write_row((int(i), v))

    def build() -> dict[str, Any]:
        workers = max(0, (os.cpu_count() or 1) - 1)
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute(f"SET max_parallel_maintenance_workers = {workers}")
        conn.execute(f"CREATE INDEX ON recipes_items USING hnsw (embedding vector_cosine_ops) "
                     f"WITH (m = {case.m}, ef_construction = {case.efc})")
        conn.execute("ANALYZE recipes_items")
        return {"maintenance_work_mem": "1GB", "max_parallel_maintenance_workers": workers}

    try:
        return _timed(load, build)
    finally:
        conn.execute("DROP TABLE IF EXISTS recipes_items")
        conn.close()


def _milvus_recipe(case: Case, uri: str, lite: bool) -> Timing:
    """Milvus docs: create the collection with its schema and index params (consistency left at Milvus's default,
    Bounded), insert row batches with MilvusClient.insert, flush once (pymilvus docs: not after every insert),
    wait until the index has no pending rows, load the collection. milvus-lite: release and load again, which is
    what builds its segments' indexes before returning (else they are built in a background thread after load
    returns, and the time would not be a build time)."""
    from pymilvus import DataType, MilvusClient

    c = MilvusClient(uri=uri)
    name = "recipes_milvus"
    if c.has_collection(name):
        c.drop_collection(name)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)  # as the docs' customized setup
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=case.x.shape[1])
    ip = c.prepare_index_params()
    build = {"M": case.m, "efConstruction": case.efc}
    ip.add_index(field_name="vector", index_type="HNSW", metric_type="COSINE",
                 params={"params": build} if lite else build)  # milvus-lite reads them nested only
    c.create_collection(name, schema=schema)
    c.create_index(name, ip)

    def load() -> None:
        for s in range(0, len(case.x), BATCH):
            c.insert(name, [{"id": int(i), "vector": v.tolist()} for i, v in
                            zip(case.ids[s:s + BATCH], case.x[s:s + BATCH], strict=True)])

    def built() -> None:
        c.flush(name)
        while not lite and int((c.describe_index(name, "vector") or {}).get("pending_index_rows", 0) or 0):
            time.sleep(0.2)
        c.load_collection(name)
        if lite:
            c.release_collection(name)
            c.load_collection(name)

    def after() -> dict[str, Any]:
        if lite:
            return {}
        segs = c.list_loaded_segments(name)  # what the load really holds: an index per segment, or brute force
        return {"indexed_rows_at_load": sum(int(g.num_rows) for g in segs if g.index_name),
                "rows_at_load": sum(int(g.num_rows) for g in segs),
                "qps": _qps(lambda v: c.search(name, data=[v.tolist()], limit=10,
                                               search_params={"params": {"ef": 64}}), case.q)}

    try:
        return _timed(load, built, after)
    finally:
        c.drop_collection(name)
        c.close()


def _recipe_milvus(case: Case) -> Timing:
    return _milvus_recipe(case, os.environ.get("BENCH_MILVUS_URI", "http://127.0.0.1:19530"), lite=False)


def _recipe_milvus_lite(case: Case) -> Timing:
    return _milvus_recipe(case, str(Path(tempfile.mkdtemp(dir=case.workdir)) / "recipe.db"), lite=True)


def _chroma_recipe(case: Case, client: Any) -> Timing:
    """Chroma cookbook (Batching): add in batches of client.get_max_batch_size(); the HNSW index is updated by
    each add, so the collection is searchable when the last add returns."""
    name = "recipes-chroma"
    try:
        client.delete_collection(name)
    except Exception:  # noqa: BLE001 - absent
        pass
    col = client.create_collection(name, configuration={"hnsw": {"space": "cosine", "max_neighbors": case.m,
                                                                 "ef_construction": case.efc}}, embedding_function=None)
    step = int(client.get_max_batch_size())

    def load() -> None:
        for s in range(0, len(case.x), step):
            col.add(ids=[str(int(i)) for i in case.ids[s:s + step]], embeddings=case.x[s:s + step])

    try:
        return _timed(load, lambda: {"count": col.count()})
    finally:
        client.delete_collection(name)


def _recipe_chroma(case: Case) -> Timing:
    import chromadb
    from chromadb.config import Settings

    return _chroma_recipe(case, chromadb.PersistentClient(path=tempfile.mkdtemp(dir=case.workdir),
                                                          settings=Settings(anonymized_telemetry=False)))


def _recipe_chroma_server(case: Case) -> Timing:
    import chromadb
    from chromadb.config import Settings

    return _chroma_recipe(case, chromadb.HttpClient(host="127.0.0.1", port=8000,
                                                    settings=Settings(anonymized_telemetry=False)))


def _recipe_qdrant_edge(case: Case) -> Timing:
    """qdrant-edge (EdgeShard): upsert the points, then optimize() builds the HNSW graph (the bulk-upload advice:
    index after the upload), then flush."""
    import qdrant_edge as q

    path = tempfile.mkdtemp(dir=case.workdir)
    shard = q.EdgeShard.create(path, q.EdgeConfig(
        vectors={"": q.EdgeVectorParams(size=case.x.shape[1], distance=q.Distance.Cosine)},
        hnsw_config=q.HnswIndexConfig(m=case.m, ef_construct=case.efc, full_scan_threshold=10),
        optimizers=q.EdgeOptimizersConfig(indexing_threshold=1)))

    def load() -> None:
        for s in range(0, len(case.x), BATCH):
            shard.update(q.UpdateOperation.upsert_points(
                [q.Point(int(i), v.tolist(), None) for i, v in zip(case.ids[s:s + BATCH], case.x[s:s + BATCH],
                                                                   strict=True)]))

    def build() -> dict[str, Any]:
        shard.optimize()
        shard.flush()
        return {"indexed": int(shard.info().indexed_vectors_count)}

    try:
        return _timed(load, build)
    finally:
        shard.close()


def _recipe_faiss(case: Case) -> Timing:
    """faiss wiki (IndexHNSW): one add of every vector, parallelised with OpenMP; inner product on unit vectors."""
    import faiss

    index = faiss.IndexHNSWFlat(case.x.shape[1], case.m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = case.efc
    idx = faiss.IndexIDMap2(index)
    return _timed(lambda: idx.add_with_ids(case.x, case.ids), lambda: {"ntotal": int(idx.ntotal)})


RECIPES: dict[str, Callable[[Case], Timing]] = {
    "pgvector": _recipe_pgvector, "milvus": _recipe_milvus, "milvus-lite": _recipe_milvus_lite,
    "chroma": _recipe_chroma, "chroma-server": _recipe_chroma_server, "qdrant-edge": _recipe_qdrant_edge,
    "faiss": _recipe_faiss}
# what main did before issue 15, as settings of today's adapter (pgvector: toasted vectors, 512MB, server workers)
BASELINE = {"pgvector": ["backend.vector_storage=\"extended\"", "backend.maintenance_work_mem=\"512MB\"",
                         "backend.max_parallel_maintenance_workers=2"]}


# -- driving it ------------------------------------------------------------------------------------------------------

def _available(engine: str) -> str | None:
    from bench.backends import registry
    from bench.spec import load_backend_options

    try:
        cls = registry.get(engine)
        options, _ = load_backend_options(cls.Options, engine, None, [])
        return cls.check_available(options)
    except Exception as e:  # noqa: BLE001 - any failure means the engine cannot run here
        return f"{type(e).__name__}: {e}"


def _sides(engine: str, baseline: bool) -> dict[str, Callable[[Case], Timing]]:
    sides: dict[str, Callable[[Case], Timing]] = {"bench": lambda c: bench_side(engine, c),
                                                  "recipe": RECIPES[engine]}
    if baseline and engine in BASELINE:
        sides["main's settings"] = lambda c: bench_side(engine, c, BASELINE[engine])
    return sides


def run_engine(engine: str, case: Case, rounds: int, baseline: bool) -> dict[str, list[Timing]]:
    sides = _sides(engine, baseline)
    out: dict[str, list[Timing]] = {name: [] for name in sides}
    # Untimed warm-up of every side on 1,000 rows: the first load in this process pays the client's imports and
    # first-time set-up, and round 1 would charge them to whichever side goes first (Chroma embedded: 38 s against
    # 26-29 s on the later rounds at 20,000 x 768).
    small = replace(case, x=case.x[:1000])
    for name in sides:
        sides[name](small)
    for r in range(rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))  # alternate, so drift falls on both
        for name in order:
            t = sides[name](case)
            out[name].append(t)
            qps = f", {t.extra['qps']:.0f} QPS" if "qps" in t.extra else ""
            print(f"round {r + 1} {engine:13} {name:15} load {t.load_s:7.1f} s  build {t.build_s:7.1f} s{qps}",
                  flush=True)
    return out


def _med(ts: list[Timing], attr: str) -> float:
    return statistics.median(getattr(t, attr) for t in ts)


def table(results: dict[str, dict[str, list[Timing]]]) -> str:
    lines = ["| engine | side | load s | build s | load + build s | vs recipe | runs |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for engine, sides in results.items():
        ref = _med(sides["recipe"], "load_s") + _med(sides["recipe"], "build_s")
        for name, ts in sides.items():
            load, build = _med(ts, "load_s"), _med(ts, "build_s")
            qps = [t.extra["qps"] for t in ts if "qps" in t.extra]
            extra = f" ({statistics.median(qps):.0f} QPS)" if qps else ""
            lines.append(f"| {engine} | {name}{extra} | {load:.1f} | {build:.1f} | {load + build:.1f} | "
                         f"{(load + build) / ref:.2f}x | {len(ts)} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", nargs="+", default=ENGINES, choices=ENGINES)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--m", type=int, default=64)
    ap.add_argument("--efc", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--baseline", action="store_true", help="add pgvector with main's settings before issue 15")
    ap.add_argument("--out", type=Path, default=REPO / "results" / "build-recipes")
    _smoke.add(ap, engines=["faiss", "qdrant-edge"], n=1_000, m=8, efc=32, rounds=1, out=_smoke.temp_dir)
    args = _smoke.parse(ap)
    cache = Path(os.environ.get("BENCH_CACHE_DIR", Path.home() / ".cache" / "bench"))
    x, q, data = _data(args.n, cache)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, list[Timing]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-recipes-") as tmp:
        case = Case(x, q, args.m, args.efc, data, Path(tmp))
        for engine in args.engines:
            why = _available(engine)
            if why:
                print(f"{engine}: skipped ({why})", flush=True)
                continue
            results[engine] = run_engine(engine, case, args.rounds, args.baseline)
    text = (f"{data}, HNSW M={args.m}, ef_construction={args.efc}, cosine; median of {args.rounds} alternating "
            f"rounds; {os.cpu_count()} cores\n\n" + table(results))
    print("\n" + text)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (args.out / f"build_recipes-{stamp}.json").write_text(json.dumps(
        {"data": data, "m": args.m, "efc": args.efc, "rounds": args.rounds, "table": text,
         "runs": {e: {s: [t.__dict__ for t in ts] for s, ts in sides.items()} for e, sides in results.items()}},
        indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
