"""How each adapter loads and builds: the statements and requests it builds, checked without a server,
and the recipe it records, checked live on pgvector and a Milvus server (skipped with the reason when none
answers). What the adapters follow is in each module's docstring and `index_built.params.load_recipe`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from backend_options import server_options

from bench.backends import _pgvector_build as pgb
from bench.backends.base import CollectionSpec, EngineInfo, IndexSpec
from bench.backends.milvus import TIME_TICK_US, choose_consistency
from bench.metrics.timers import on_timer, sits_on

MB = 1024 * 1024


# -- pgvector: storage, COPY, maintenance settings ------------------------------------------------------------

def test_graph_estimate_matches_what_pgvector_needed() -> None:
    # measured on this pgvector 0.8.5: 6,000 x 768, M=64 spilled at maintenance_work_mem = 30MB after 5,906 rows
    # and fitted at 33MB, so the graph takes about 30.5 MB
    assert 29 * MB <= pgb.hnsw_graph_bytes(6000, 768, 64) <= 32 * MB
    assert pgb.hnsw_graph_bytes(1000, 768, 16, "fp16") < pgb.hnsw_graph_bytes(1000, 768, 16)
    assert pgb.hnsw_graph_bytes(1000, 768, 16, "binary") < pgb.hnsw_graph_bytes(1000, 768, 16, "fp16")


@pytest.mark.parametrize("dims,choice,storage", [([768], "auto", "plain"), ([768, 768], "auto", "plain"),
                                                 ([1536], "auto", "plain"), ([1800], "auto", "main"),
                                                 ([768], "extended", "extended")])
def test_vectors_are_kept_inline_when_they_fit_a_page(dims: list[int], choice: str, storage: str) -> None:
    assert pgb.vector_storage(dims, choice) == storage


def test_build_plan_sizes_memory_to_the_graph_and_workers_to_the_cores() -> None:
    here = pgb.Host(cores=8, available_bytes=64 << 30, shm_free_bytes=32 << 30, max_parallel_workers=8)
    plan = pgb.plan_build(100_000, 768, 64, None, here, mem=None, mem_max="2GB", workers=None)
    want = pgb.hnsw_graph_bytes(100_000, 768, 64)
    assert want < pgb.mem_bytes(plan.maintenance_work_mem) <= want * 1.2 + 20 * MB
    assert plan.workers == 7  # pgvector README: max_parallel_maintenance_workers = 7 -- plus leader, on 8 cores
    assert plan.settings() == [("maintenance_work_mem", plan.maintenance_work_mem),
                               ("max_parallel_maintenance_workers", "7"), ("client_min_messages", "debug1")]
    assert plan.recipe["maintenance_work_mem_from"].startswith("auto") and "capped" not in plan.recipe[
        "maintenance_work_mem_from"]


def test_build_plan_caps_and_explicit_settings() -> None:
    small = pgb.Host(cores=2, available_bytes=600 * MB, shm_free_bytes=None, max_parallel_workers=8)
    plan = pgb.plan_build(1_000_000, 768, 16, None, small, mem=None, mem_max="4GB", workers=None)
    assert plan.maintenance_work_mem == "300MB" and "half the available memory" in plan.recipe[
        "maintenance_work_mem_from"]
    assert plan.recipe["graph_fits_maintenance_work_mem"] is False and plan.workers == 1
    capped = pgb.plan_build(1_000_000, 768, 16, None, pgb.Host(), mem=None, mem_max="960MB", workers=None)
    assert capped.maintenance_work_mem == "960MB" and capped.workers is None  # a remote server: its own setting
    assert ("max_parallel_maintenance_workers", "7") not in capped.settings()
    mine = pgb.plan_build(10, 768, 16, None, small, mem="2GB", mem_max="960MB", workers=3)
    assert (mine.maintenance_work_mem, mine.workers) == ("2GB", 3)
    assert mine.recipe["maintenance_work_mem_from"] == "backend.maintenance_work_mem"
    limited = pgb.plan_build(10, 768, 16, None, pgb.Host(cores=16, max_parallel_workers=4), mem=None,
                             mem_max="1GB", workers=None)
    assert limited.workers == 4 and limited.maintenance_work_mem == "64MB"


def test_build_debug_messages_say_how_many_workers_pgvector_launched() -> None:
    got = pgb.read_build_debug(['building index "t_hnsw" on table "t" serially', "using 1 parallel workers",
                                "leader processed 3312 tuples", "worker processed 2688 tuples"])
    assert got == {"parallel_workers_launched": 1, "tuples_per_participant": [3312, 2688]}
    assert pgb.read_build_debug([]) == {"parallel_workers_launched": 0, "tuples_per_participant": None}


def test_storage_statements_alter_every_vector_column() -> None:
    pytest.importorskip("psycopg")
    from bench.backends.pgvector import PgvectorBackend, PgvectorOptions

    b = PgvectorBackend(PgvectorOptions(), "")
    one = [s.as_string(None) for s in b._storage_statements(CollectionSpec("t1", 768, "cosine"))]
    assert one == ['ALTER TABLE "t1" ALTER COLUMN "embedding" SET STORAGE PLAIN']
    named = CollectionSpec("t2", 0, "cosine", vectors={"text": 1024, "image": 1024})
    assert [s.as_string(None) for s in b._storage_statements(named)] == [
        'ALTER TABLE "t2" ALTER COLUMN "v_text" SET STORAGE MAIN', 'ALTER TABLE "t2" ALTER COLUMN "v_image" SET STORAGE MAIN']


# -- Milvus: consistency per workload -------------------------------------------------------------------------

def test_milvus_consistency_is_the_weakest_the_workload_needs() -> None:
    assert choose_consistency(None, False)[0] == "Bounded"
    assert choose_consistency(None, True)[0] == "Session"
    level, why, warnings = choose_consistency(None, False)
    assert why.startswith("auto") and warnings == []


def test_a_configured_level_wins_with_a_warning_when_it_distorts() -> None:
    level, why, warnings = choose_consistency("Strong", False)
    assert (level, why) == ("Strong", "backend.consistency_level")
    assert len(warnings) == 1 and "search-only" in warnings[0] and "200 ms" in warnings[0]
    assert choose_consistency("Strong", True)[2] == []  # Strong serves a workload reading its own writes
    assert "miss" in choose_consistency("Bounded", True)[2][0]
    assert choose_consistency("Eventually", False) == ("Eventually", "backend.consistency_level", [])


@pytest.mark.parametrize("workload,reads", [("ann-smoke", False), ("ycsb-a", True), ("ycsb-c", False)])
def test_the_kind_scenario_says_whether_the_workload_reads_its_own_writes(workload: str, reads: bool) -> None:
    from bench.scenarios.plan import Plan
    from bench.workload_file import load_workload

    plan = Plan.of(load_workload(workload, []))
    assert plan.collection(CollectionSpec("c", 8, "cosine")).reads_own_writes is reads


# -- the timer warning -----------------------------------------------------------------------------------------

def test_a_p50_on_the_time_tick_is_named() -> None:
    timers = {"tick": TIME_TICK_US}
    assert sits_on(199_807, TIME_TICK_US) == 1 and sits_on(395_263, TIME_TICK_US) == 2
    assert sits_on(5_600, TIME_TICK_US) is None and sits_on(250_000, TIME_TICK_US) is None
    rows = [{"op": "search", "status": "ok", "p50_us": 199_807.0}, {"op": "read", "status": "ok", "p50_us": 900.0},
            {"op": "update", "status": "failed", "p50_us": 200_000.0}]
    out = on_timer(rows, timers, "ef=32")
    assert len(out) == 1 and out[0].startswith("search at ef=32") and "tick" in out[0] and "200 ms" in out[0]
    assert on_timer(rows, {}, "ef=32") == []


def test_the_run_warns_under_its_table_when_latency_sits_on_a_timer(monkeypatch, tmp_path, cache_dir) -> None:
    from bench.backends.fake_slow import FakeSlowBackend
    from bench.runner import RunRequest, run

    def info(self) -> EngineInfo:
        return EngineInfo(engine="fake-slow", latency_timers={"a 20 ms test timer": 20_000})

    monkeypatch.setattr(FakeSlowBackend, "info", info)
    req = RunRequest(backend="fake-slow", workload="ann-smoke", results_dir=tmp_path, cache_dir=cache_dir, quiet=True,
                     overrides=["dataset.n=500", "dataset.queries=20", "search.ef_search=[16]", "run.trials=1",
                                "run.warmup_s=0", "run.operations=20", "run.min_operations=20",
                                "backend.latency_us=20000"])
    out = run(req)
    assert any("sits within 10% of an engine timer (a 20 ms test timer" in w for w in out.warnings), out.warnings


# -- Qdrant: indexing off during the upload, then on --------------------------------------------------------------

class _FakeQdrant:
    """Records the calls the adapter makes; answers get_collection like a collection that finished indexing."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.indexing = 0
        self.points = 0

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            if name == "create_collection":
                self.indexing = kwargs["optimizers_config"].indexing_threshold
                self.config = kwargs
            if name == "update_collection":
                self.indexing = kwargs["optimizers_config"].indexing_threshold
            if name == "upsert":
                self.points += len(kwargs["points"])
            if name == "collection_exists":
                return False
            if name == "get_collection":
                return self._info()
            return None
        return call

    def _info(self) -> Any:
        from qdrant_client import models

        c = self.config
        return models.CollectionInfo(
            status="green", optimizer_status="ok", points_count=self.points, segments_count=1,
            indexed_vectors_count=self.points if self.indexing else 0, payload_schema={},
            config=models.CollectionConfig(
                params=models.CollectionParams(vectors=c["vectors_config"]),
                hnsw_config=models.HnswConfig(m=c["hnsw_config"].m, ef_construct=c["hnsw_config"].ef_construct,
                                              full_scan_threshold=c["hnsw_config"].full_scan_threshold),
                optimizer_config=models.OptimizersConfig(
                    deleted_threshold=0.2, vacuum_min_vector_number=1000, default_segment_number=0,
                    flush_interval_sec=5, indexing_threshold=self.indexing),
                wal_config=models.WalConfig(wal_capacity_mb=32, wal_segments_ahead=0)))


def test_qdrant_uploads_with_indexing_off_then_turns_it_on_and_waits() -> None:
    pytest.importorskip("qdrant_client")
    from bench.backends.qdrant import QdrantBackend, QdrantOptions

    b = QdrantBackend(QdrantOptions(url="http://127.0.0.1:6333", indexing_threshold_kb=5), "")
    b.client = fake = _FakeQdrant()
    b.server_version = "test"
    spec = CollectionSpec("q", 8, "cosine", IndexSpec(m=16, ef_construction=100))
    b.create(spec)
    b.insert(np.arange(1000), np.ones((1000, 8), np.float32))
    assert fake.indexing == 0 and fake.points == 1000
    upserts = [kw for name, kw in fake.calls if name == "upsert"]
    assert [len(kw["points"]) for kw in upserts] == [256, 256, 256, 232] and all(kw["wait"] for kw in upserts)
    built = b.wait_indexed(10)
    names = [name for name, _ in fake.calls]
    assert names.index("update_collection") < names.index("get_collection")
    assert fake.indexing == 5 and built.kind == "hnsw" and built.params["indexing_threshold_kb"] == 5
    recipe = built.params["load_recipe"]
    assert recipe["points_per_request"] == 256 and recipe["parallel_requests"] == 2
    assert recipe["indexing_during_upload"].startswith("off")


def test_qdrant_flat_and_index_during_upload_keep_their_threshold() -> None:
    pytest.importorskip("qdrant_client")
    from bench.backends.qdrant import collection_request, reindex_request

    spec = CollectionSpec("q", 8, "cosine")
    assert collection_request(spec, indexing_threshold_kb=3, full_scan_threshold_kb=10,
                              indexing_off=True)["optimizers_config"].indexing_threshold == 0
    assert collection_request(spec, indexing_threshold_kb=3, full_scan_threshold_kb=10)[
        "optimizers_config"].indexing_threshold == 3
    assert reindex_request("q", 3)["optimizers_config"].indexing_threshold == 3


def test_qdrant_local_logic_runs_the_same_recipe_without_a_server(tmp_path) -> None:
    """Local mode (not the Qdrant engine) builds nothing, so it uploads with indexing on and never re-enables."""
    pytest.importorskip("qdrant_client")
    from bench.backends.qdrant import QdrantLocalBackend, QdrantLocalOptions

    b = QdrantLocalBackend(QdrantLocalOptions(), str(tmp_path))
    b.connect()
    b.create(CollectionSpec("ql", 8, "cosine"))
    b.insert(np.arange(600), np.random.default_rng(0).standard_normal((600, 8)).astype(np.float32))
    built = b.wait_indexed(10)
    assert built.total_count == 600 and built.params["load_recipe"]["indexing_during_upload"] == "on"
    b.drop()
    b.close()


# -- Chroma and Weaviate ---------------------------------------------------------------------------------------

def test_chroma_loads_in_batches_of_its_max_batch_size(tmp_path) -> None:
    pytest.importorskip("chromadb")
    from bench.backends.chroma import ChromaBackend, ChromaOptions

    b = ChromaBackend(ChromaOptions(), str(tmp_path))
    b.connect()
    b.create(CollectionSpec("chroma_batch", 8, "cosine"))
    biggest = int(b.client.get_max_batch_size())
    assert b.load_batch_size(1000) == max(1000, biggest)
    n = biggest + 10
    b.insert(np.arange(n), np.random.default_rng(1).standard_normal((n, 8)).astype(np.float32))
    recipe = b.wait_indexed(60).params["load_recipe"]
    assert recipe["max_batch_size"] == biggest and recipe["rows_per_add"] == biggest
    b.drop()
    b.close()


def test_weaviate_batch_config() -> None:
    pytest.importorskip("weaviate")
    from bench.backends.weaviate import batch_context

    assert batch_context("fixed_size", 200, 2) == ("fixed_size", {"batch_size": 200, "concurrent_requests": 2})
    assert batch_context("dynamic") == ("dynamic", {})
    assert batch_context("stream", concurrent_requests=4) == ("stream", {"concurrency": 4})
    with pytest.raises(ValueError):
        batch_context("turbo")


def test_weaviate_loads_through_the_batch_context() -> None:
    pytest.importorskip("weaviate")
    from bench.backends.weaviate import WeaviateBackend, WeaviateOptions

    class Batch:
        added: list[dict[str, Any]] = []

        def __enter__(self) -> Batch:
            return self

        def __exit__(self, *exc: Any) -> None:
            pass

        def add_object(self, **kw: Any) -> None:
            self.added.append(kw)

    class Batches:
        failed_objects: list[Any] = []
        opened: list[tuple[str, dict[str, Any]]] = []

        def fixed_size(self, **kw: Any) -> Batch:
            self.opened.append(("fixed_size", kw))
            return Batch()

    class Handle:
        batch = Batches()

    b = WeaviateBackend(WeaviateOptions(url="http://127.0.0.1:8080", batch_size=50, batch_concurrent_requests=3), "")
    b.handle, b.collection = Handle(), CollectionSpec("w", 4, "cosine")
    b.insert(np.arange(7), np.ones((7, 4), np.float32), [{"group": i} for i in range(7)])
    assert Batches.opened == [("fixed_size", {"batch_size": 50, "concurrent_requests": 3})]
    assert len(Batch.added) == 7 and Batch.added[3]["properties"] == {"group": 3, "bench_id": 3}
    assert set(Batch.added[0]["vector"]) == {"default"}


# -- live: pgvector ----------------------------------------------------------------------------------------------

@pytest.fixture
def pg(tmp_path):
    pytest.importorskip("psycopg")
    from bench.backends.pgvector import PgvectorBackend, PgvectorOptions

    opts = server_options("pgvector")
    made = []

    def make(**kw: Any) -> Any:
        b = PgvectorBackend(PgvectorOptions(**opts, **kw), str(tmp_path))
        b.connect()
        made.append(b)
        return b

    yield make
    for b in made:
        b.drop()
        b.close()


def _pg_load(b: Any, name: str, n: int = 3000) -> Any:
    x = np.random.default_rng(2).standard_normal((n, 768)).astype(np.float32)
    b.create(CollectionSpec(name, 768, "cosine", IndexSpec(m=8, ef_construction=32)))
    for s in range(0, n, 1000):
        b.insert(np.arange(s, s + 1000), x[s:s + 1000])
    return b.wait_indexed(300)


def test_pgvector_recipe_is_recorded_and_the_build_is_parallel(pg) -> None:
    import os

    built = _pg_load(pg(), "recipe_plain")
    r = built.params["load_recipe"]
    assert r["vector_storage"] == "plain" and r["toast_bytes"] == 0 and r["heap_bytes"] > 8 * MB
    assert r["rows_per_copy"] == 1000 and r["analyze"] is True and r["maintenance_work_mem"].endswith("MB")
    if (os.cpu_count() or 1) > 1:  # the heap passes min_parallel_table_scan_size: pgvector builds in parallel
        assert r["max_parallel_maintenance_workers"] == os.cpu_count() - 1
        assert r["parallel_workers_launched"] >= 1 and len(r["tuples_per_participant"]) >= 2
    assert sum(r["tuples_per_participant"] or [3000]) == 3000 and built.warnings == []


def test_pgvector_toasted_vectors_get_no_parallel_build(pg) -> None:
    """The issue's cause, read back: at default (EXTENDED) storage the vectors go to TOAST, the main heap is a
    few hundred kB and PostgreSQL plans no worker."""
    r = _pg_load(pg(vector_storage="extended"), "recipe_toast").params["load_recipe"]
    assert r["vector_storage"] == "extended" and r["toast_bytes"] > r["heap_bytes"]
    assert r["parallel_workers_launched"] == 0


# -- live: a Milvus server -----------------------------------------------------------------------------------------

def _milvus_opts() -> dict:
    opts = server_options("milvus")
    return {"uri": opts["uri"]}  # without the conformance suite's Strong: the adapter chooses


def test_milvus_search_only_collection_is_bounded_and_says_so(tmp_path) -> None:
    pytest.importorskip("pymilvus")
    from bench.backends.milvus import MilvusBackend, MilvusOptions

    b = MilvusBackend(MilvusOptions(**_milvus_opts()), str(tmp_path))
    b.connect()
    try:
        spec = CollectionSpec("recipe_bounded", 16, "cosine", IndexSpec(m=8, ef_construction=32))
        b.create(spec)
        b.insert(np.arange(1500), np.random.default_rng(3).standard_normal((1500, 16)).astype(np.float32))
        built = b.wait_indexed(120)
        assert int(b.client.describe_collection(spec.name)["consistency_level"]) == 2  # Bounded
        r = built.params["load_recipe"]
        assert built.params["consistency_level"] == r["consistency_level"] == "Bounded" and built.warnings == []
        assert r["rows_per_insert_request"] == 1500 and r["flush"].startswith("once")
        assert b.info().latency_timers == {}
    finally:
        b.drop()
        b.close()


@pytest.mark.serial  # asserts a QPS and a P50: timings
def test_milvus_tiny_ann_run_is_not_on_the_time_tick(bench_cli, tmp_path: Path) -> None:
    pytest.importorskip("pymilvus")
    _milvus_opts()
    p = bench_cli("run", "--backend", "milvus", "--workload", "ann-smoke", "--set", "dataset.n=2000",
                  "--set", "dataset.queries=100", "--set", "search.ef_search=[32]", "--set", "run.warmup_s=0.2",
                  "--set", "run.min_operations=300", "--trials", "2", "--json", "--quiet",
                  "--results-dir", str(tmp_path / "r"))
    assert p.returncode in (0, 1), p.stderr
    out = json.loads(p.stdout)
    row = out["summary"][0]
    assert row["index_built"]["params"]["consistency_level"] == "Bounded"
    assert row["index_built"]["params"]["load_recipe"]["consistency_level_from"].startswith("auto")
    assert row["qps"] > 20 and row["p50_us"] < 100_000, row  # Strong answered 5 QPS at a 200 ms P50
    assert not any("engine timer" in w for w in out["warnings"])
