"""Multi-vector records: the [multivector] table, per-vector data and exact ground truth, request building for the
Qdrant server and Weaviate adapters, and `bench run --workload ann-multivector` end to end on the engines here
that hold several named vectors (qdrant-edge, pgvector, milvus-lite, qdrant-local for the Qdrant adapter's
logic), with refusals on the others."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from backend_options import BACKEND_OPTIONS, server_options

from bench.analysis.compare import compare, render
from bench.backends.base import CollectionSpec, IndexSpec, SearchParams
from bench.datasets import DatasetSpec, multivector
from bench.datasets.exact import exact_topk
from bench.errors import UserError
from bench.workload_file import load_workload

FIELDS = [("text", 24, "cosine"), ("image", 12, "l2"), ("audio", 8, "ip")]
SPEC = DatasetSpec(n=600, queries=15, dim=24, metric="cosine", seed=11)
SMALL = ["--set", "dataset.n=2000", "--set", "dataset.queries=40", "--set", "run.min_operations=1", "--set", "dataset.dim=48",
         "--set", "multivector.vectors.text=48", "--set", "multivector.vectors.image.dim=24",
         "--set", "search.ef_search=[128]", "--set", "run.warmup_s=0.1", "--trials", "3"]


# -- spec ---------------------------------------------------------------------------------------------------

def test_shipped_workload_names_each_vector_with_its_dim_and_metric():
    spec = load_workload("ann-multivector")
    assert spec.feature("multivector").fields(spec.dataset) == [("text", 768, "cosine"), ("image", 256, "l2")]


def test_multivector_combines_with_a_filter():
    """Features combine: a [filter] table beside [multivector] gives one configuration per (vector, filter)."""
    spec = load_workload("ann-multivector", ["filter.selectivities=[0.5]"])
    assert list(spec.features) == ["multivector", "filter"]  # fold order: named vectors first, then filters


@pytest.mark.parametrize("bad, words", [
    (["multivector.vectors.text=64"], "dataset.dim = 768"),
    (["multivector.vectors.image.metric='hamming'"], "multivector.vectors.image"),
    (["multivector.vectors.Image=32"], "vector name 'Image'"),
    (["multivector.vectors.id=32"], "vector name 'id'"),
    (["multivector.vectors.image.dim=0"], "multivector.vectors.image"),
    (["multivector.vectors.image.size=8"], "unknown key"),
    (["kind='ycsb'", "ycsb.read_proportion=1.0"], "only read when kind = 'ann'"),
])
def test_bad_multivector_table_is_one_clear_user_error(bad, words):
    with pytest.raises(UserError) as e:
        load_workload("ann-multivector", bad)
    assert words in str(e.value)


def test_bad_multivector_table_exits_2_without_traceback(bench_cli):
    p = bench_cli("run", "--backend", "qdrant-edge", "--workload", "ann-multivector", *SMALL,
                  "--set", "multivector.vectors.text=47", "--quiet")
    assert p.returncode == 2 and "dataset.dim = 48" in p.stderr and "Traceback" not in p.stderr, p.stderr


# -- data ---------------------------------------------------------------------------------------------------

def test_named_vectors_are_seeded_streamed_and_distinct(tmp_path):
    a = multivector.load(SPEC, FIELDS, tmp_path / "a", progress=False)
    b = multivector.load(SPEC, FIELDS, tmp_path / "b", progress=False)
    assert a.names == ["text", "image", "audio"] and a.dims == {"text": 24, "image": 12, "audio": 8}
    assert a.metrics == {"text": "cosine", "image": "l2", "audio": "ip"}
    assert a.content_hash == b.content_hash
    for name in a.names:  # the same spec gives the same vectors and queries, from a fresh cache
        assert np.array_equal(a.sets[name].base, b.sets[name].base)
        assert np.array_equal(a.queries[name], b.queries[name])
    # each name is its own stream: an image vector is not a truncated text vector, queries are not base rows
    assert a.sets["image"].content_hash != a.sets["audio"].content_hash
    assert a.sets["image"].details is not None and a.sets["image"].base.shape == (600, 12)
    img_spec = multivector.vector_dataset_spec(SPEC, 12, "l2", 1)
    assert img_spec.seed == SPEC.seed + multivector.SEED_STRIDE and img_spec.source == "synthetic"
    other = multivector.load(SPEC.model_copy(update={"seed": 12}), FIELDS, tmp_path / "a", progress=False)
    assert not np.array_equal(other.sets["image"].base, a.sets["image"].base)
    # batches stream every name, aligned by id
    seen = 0
    for ids, vecs in a.batches(250):
        assert set(vecs) == set(a.names)
        for name, v in vecs.items():
            assert np.array_equal(v, a.sets[name].base[ids])
        seen += len(ids)
    assert seen == 600


def test_ground_truth_per_named_vector_matches_brute_force(tmp_path):
    mv = multivector.load(SPEC, FIELDS, tmp_path, progress=False)
    gts = mv.ground_truths(5, progress=False)
    for name, metric in mv.metrics.items():
        x, q = mv.sets[name].base.astype(np.float64), mv.queries[name].astype(np.float64)
        if metric == "cosine":
            x = x / np.linalg.norm(x, axis=1, keepdims=True)
            q = q / np.linalg.norm(q, axis=1, keepdims=True)
        if metric == "l2":
            score = -((q[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)
        else:
            score = q @ x.T
        want = np.argsort(-score, axis=1, kind="stable")[:, :5]
        assert np.array_equal(gts[name], want), name
    # vectors of other names would give other neighbours: the truth really is per name
    assert not np.array_equal(gts["image"], gts["audio"])
    assert np.array_equal(gts["image"], exact_topk(mv.sets["image"].base, mv.queries["image"], 5, "l2"))


# -- request building: Qdrant server adapter and Weaviate --------------------------------------------------------

MSPEC = CollectionSpec(name="mv", dim=16, metric="cosine", index=IndexSpec(m=12, ef_construction=80),
                       vectors={"text": 16, "image": 8}, vector_metrics={"image": "l2"})


def test_qdrant_requests_for_named_vectors():
    pytest.importorskip("qdrant_client")
    from qdrant_client.http import models

    from bench.backends.qdrant import collection_request, index_ready, named_points, search_request

    req = collection_request(MSPEC, indexing_threshold_kb=1, full_scan_threshold_kb=10)
    vc = req["vectors_config"]
    assert set(vc) == {"text", "image"}
    assert (vc["text"].size, vc["text"].distance) == (16, models.Distance.COSINE)
    assert (vc["image"].size, vc["image"].distance) == (8, models.Distance.EUCLID)
    s = search_request("mv", np.ones(8, dtype=np.float32), 5, SearchParams(ef_search=40, vector_name="image"))
    assert s["using"] == "image" and s["search_params"].hnsw_ef == 40
    assert "using" not in search_request("c", np.ones(4, dtype=np.float32), 5, SearchParams())
    pts = named_points(MSPEC, np.array([3, 4]), {"text": np.zeros((2, 16)), "image": np.ones((2, 8))})
    assert pts[1].id == 4 and set(pts[1].vector) == {"text", "image"} and len(pts[1].vector["image"]) == 8
    with pytest.raises(UserError, match="image"):
        named_points(MSPEC, np.array([1]), {"text": np.zeros((1, 16)), "image": np.ones((1, 7))})
    info = models.CollectionInfo.model_validate({
        "status": "green", "optimizer_status": "ok", "indexed_vectors_count": 3000, "points_count": 2000,
        "segments_count": 2, "config": {
            "params": {"vectors": {"text": {"size": 16, "distance": "Cosine"},
                                   "image": {"size": 8, "distance": "Euclid", "hnsw_config": {"m": 8}}}},
            "hnsw_config": {"m": 12, "ef_construct": 80, "full_scan_threshold": 10},
            "optimizer_config": {"deleted_threshold": 0.2, "vacuum_min_vector_number": 1000,
                                 "default_segment_number": 0, "indexing_threshold": 1, "flush_interval_sec": 5},
            "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0}}, "payload_schema": {}})
    ready, why = index_ready(info, "hnsw", vectors=2)  # 3,000 of 2,000 points x 2 vectors
    assert not ready and "3000 of 4000" in why
    assert index_ready(info, "hnsw")[0]  # a single-vector reading would call it ready
    from bench.backends.qdrant import built_index_from_info

    b = built_index_from_info(info, MSPEC)
    assert b.params["vectors"]["text"] == {"size": 16, "distance": "Cosine", "m": 12, "ef_construction": 80}
    assert b.params["vectors"]["image"]["m"] == 8 and (b.indexed_count, b.total_count) == (3000, 4000)
    assert any("vector 'image'" in s and "m=8" in s for s in b.substitutions)
    assert any("3000 of 4000" in s for s in b.substitutions)


def test_weaviate_requests_for_named_vectors():
    pytest.importorskip("weaviate")
    from weaviate.collections.classes.config import _CollectionConfigCreate
    from weaviate.collections.classes.config_methods import _collection_config_from_json

    from bench.backends.weaviate import (
        built_index_from_config,
        collection_request,
        data_object,
        ef_update,
        search_request,
    )

    req = collection_request(MSPEC)
    sent = _CollectionConfigCreate(name=req["name"], properties=req["properties"],
                                   vector_config=req["vector_config"])._to_dict()
    vc = sent["vectorConfig"]
    assert set(vc) == {"text", "image"}
    assert vc["text"]["vectorIndexConfig"] == {"distance": "cosine", "maxConnections": 12, "efConstruction": 80}
    assert vc["image"]["vectorIndexConfig"]["distance"] == "l2-squared" and vc["image"]["vectorizer"] == {"none": {}}
    obj = data_object(7, {"text": np.zeros(16, dtype=np.float32), "image": np.ones(8, dtype=np.float32)}, None)
    assert set(obj.vector) == {"text", "image"} and obj.vector["image"] == [1.0] * 8
    assert search_request(np.ones(8, dtype=np.float32), 5, None, "image")["target_vector"] == "image"
    assert ef_update(55, "image")["vector_config"].name == "image"
    hnsw = {"maxConnections": 12, "efConstruction": 80, "ef": 55, "dynamicEfMin": 100, "dynamicEfMax": 500,
            "dynamicEfFactor": 8, "flatSearchCutoff": 40000, "skip": False, "cleanupIntervalSeconds": 300,
            "vectorCacheMaxObjects": 10, "pq": {"enabled": False}, "bq": {"enabled": False}, "sq": {"enabled": False}}
    schema = {"class": "Mv", "properties": [], "vectorConfig": {
        "text": {"vectorIndexType": "hnsw", "vectorizer": {"none": {}}, "vectorIndexConfig": {**hnsw, "distance": "cosine"}},
        "image": {"vectorIndexType": "hnsw", "vectorizer": {"none": {}},
                  "vectorIndexConfig": {**hnsw, "maxConnections": 6, "distance": "l2-squared"}}},
        "invertedIndexConfig": {"bm25": {"b": 0.75, "k1": 1.2}, "cleanupIntervalSeconds": 60,
                                "stopwords": {"additions": None, "preset": "en", "removals": None}},
        "multiTenancyConfig": {"enabled": False}, "replicationConfig": {"factor": 1},
        "shardingConfig": {"virtualPerPhysical": 128, "desiredCount": 1, "actualCount": 1, "desiredVirtualCount": 128,
                           "actualVirtualCount": 128, "key": "_id", "strategy": "hash", "function": "murmur3"}}
    b = built_index_from_config(_collection_config_from_json(schema), MSPEC, total=100, queued=20)
    assert b.params["vectors"]["text"]["m"] == 12 and b.params["vectors"]["image"]["distance"] == "l2-squared"
    assert (b.indexed_count, b.total_count) == (180, 200)
    assert [s for s in b.substitutions if "vector 'image'" in s and "max_connections=6" in s]


# -- bench run end to end --------------------------------------------------------------------------------------

def _skip_unless(backend: str) -> None:
    if backend in BACKEND_OPTIONS:
        server_options(backend)


@pytest.mark.parametrize("backend", ["qdrant-edge", "pgvector", "milvus-lite", "qdrant-local"])
def test_run_multivector_rows_per_named_vector(bench_cli, tmp_path, backend):
    _skip_unless(backend)
    p = bench_cli("run", "--backend", backend, "--workload", "ann-multivector", *SMALL, "--json")
    assert p.returncode == 0, p.stderr
    run_dir = tmp_path / json.loads(p.stdout)["results"]
    trials = pq.read_table(run_dir / "trials.parquet").to_pylist()
    summary = pq.read_table(run_dir / "summary.parquet").to_pylist()
    assert sorted((r["vector_name"], r["trial"]) for r in trials) == sorted(
        (v, t) for v in ("text", "image") for t in range(3))
    by_vec = {r["vector_name"]: r for r in summary}
    assert set(by_vec) == {"text", "image"}
    assert (by_vec["text"]["dataset_dim"], by_vec["image"]["dataset_dim"]) == (48, 24)
    assert (by_vec["text"]["dataset_metric"], by_vec["image"]["dataset_metric"]) == ("cosine", "l2")
    for v, r in by_vec.items():
        assert r["n_trials"] == 3 and r["count"] == 3 * 40 and r["errors"] == 0
        # against the exact ground truth of that vector: searching the other vector would score near 0
        assert r["recall"] >= 0.9, (v, r["recall"])
    built = json.loads(summary[0]["index_built"])
    assert set(built["params"]["vectors"]) == {"text", "image"}
    if backend != "qdrant-local":  # local mode builds no graph, and says so
        assert built["kind"] == "hnsw" and built["indexed_count"] == 2 * 2000
        for v in ("text", "image"):
            assert built["params"]["vectors"][v]["m"] == 16
    run = json.loads((run_dir / "run.json").read_text())
    assert set(run["scenarios"]["multivector"]["vectors"]) == {"text", "image"} and run["status"] == "complete"
    # compare keeps the named vectors apart, in the table and in the numbers
    c = compare([run_dir])
    assert sorted(c.figures["vector_name"]) == ["image", "text"]
    text = render(c, "markdown")
    assert "| config |" in text.splitlines()[2] and "| vector=text |" in text and "| vector=image |" in text
    assert c.capabilities.loc[0, "multi_vector"] == "yes"
    if backend == "qdrant-edge":  # report draws one series per named vector
        out = tmp_path / "report"
        r = bench_cli("report", str(run_dir), "--out", str(out))
        assert r.returncode == 0, r.stderr
        page = (out / "index.html").read_text()
        assert "vector=text" in page or any("vector" in f.name for f in out.iterdir()), page[:2000]


@pytest.mark.parametrize("backend", ["chroma", "faiss"])
def test_engines_without_named_vectors_are_skipped_with_a_reason(bench_cli, backend):
    p = bench_cli("run", "--backend", backend, "--workload", "ann-multivector", *SMALL, "--quiet")
    assert p.returncode == 2, p.stderr
    assert backend in p.stderr and "named vectors" in p.stderr and "is skipped" in p.stderr
    assert "Traceback" not in p.stderr


def test_milvus_server_before_2_4_is_refused_naming_its_version(bench_cli, tmp_path):
    _skip_unless("milvus")
    from pymilvus import MilvusClient

    from bench.backends.milvus import MULTI_VECTOR_MIN_SERVER, server_version_tuple

    opts = server_options("milvus")
    version = MilvusClient(uri=opts["uri"]).get_server_version()
    if server_version_tuple(version)[:2] >= MULTI_VECTOR_MIN_SERVER:
        pytest.skip(f"the Milvus server here is {version}, which holds several vector fields")
    p = bench_cli("run", "--backend", "milvus", "--workload", "ann-multivector", *SMALL, "--quiet")
    assert p.returncode == 2, p.stderr
    assert version in p.stderr and ">= 2.4" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "results").exists()  # refused before anything of the run was written


def test_server_version_parsing():
    from bench.backends.milvus import server_version_tuple

    assert server_version_tuple("v2.3.5-lite") == (2, 3, 5)
    assert server_version_tuple("2.4") == (2, 4)
    assert server_version_tuple("unknown") is None
