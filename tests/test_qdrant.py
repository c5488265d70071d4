"""Qdrant adapters: request building and response parsing (qdrant-client's own models, responses in the shape of
Qdrant's REST answers), the adapter's logic against qdrant-client's LOCAL MODE (`qdrant-local`: a brute-force
stand-in, labelled as such), and a live server only when BENCH_QDRANT_URL is set.
"""

from __future__ import annotations

import copy
import socket

import numpy as np
import pytest
from backend_options import server_options

from bench.backends.base import CollectionSpec, IndexSpec, SearchParams
from bench.backends.qdrant import (
    LOCAL_CAVEAT,
    QdrantBackend,
    QdrantLocalBackend,
    QdrantOptions,
    built_index_from_info,
    collection_request,
    hit_ids,
    index_ready,
    payload_index_requests,
    quantization_search_params,
    query_filter,
    record_from_point,
    search_request,
)
from bench.backends.query import And, Eq
from bench.errors import ServerUnreachable, UserError

models = pytest.importorskip("qdrant_client.http.models")  # the REST models query_points returns

SPEC = CollectionSpec(name="c", dim=64, metric="cosine", index=IndexSpec(kind="hnsw", m=16, ef_construction=100),
                      payload_fields={"group": "int", "color": "keyword"})

# GET /collections/c of a Qdrant 1.x server, for a 2,000-point collection made by this adapter.
COLLECTION_INFO = {
    "status": "green",
    "optimizer_status": "ok",
    "indexed_vectors_count": 2000,
    "points_count": 2000,
    "segments_count": 2,
    "config": {
        "params": {"vectors": {"size": 64, "distance": "Cosine"}, "shard_number": 1, "replication_factor": 1,
                   "write_consistency_factor": 1, "on_disk_payload": True},
        "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10, "max_indexing_threads": 0,
                        "on_disk": False},
        "optimizer_config": {"deleted_threshold": 0.2, "vacuum_min_vector_number": 1000, "default_segment_number": 0,
                             "max_segment_size": None, "memmap_threshold": None, "indexing_threshold": 1,
                             "flush_interval_sec": 5, "max_optimization_threads": None},
        "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
        "quantization_config": None,
    },
    "payload_schema": {"group": {"data_type": "integer", "points": 2000}},
}


def info(**changes) -> models.CollectionInfo:
    raw = copy.deepcopy(COLLECTION_INFO)
    for path, value in changes.items():
        node = raw
        *parents, leaf = path.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return models.CollectionInfo.model_validate(raw)


# -- request building -----------------------------------------------------------------------------------------

def test_collection_request_maps_hnsw_and_thresholds() -> None:
    req = collection_request(SPEC, indexing_threshold_kb=1, full_scan_threshold_kb=10, shard_number=2)
    assert req["collection_name"] == "c"
    assert req["vectors_config"] == models.VectorParams(size=64, distance=models.Distance.COSINE)
    assert req["hnsw_config"] == models.HnswConfigDiff(m=16, ef_construct=100, full_scan_threshold=10)
    assert req["optimizers_config"].indexing_threshold == 1
    assert req["shard_number"] == 2


@pytest.mark.parametrize("metric,distance", [("cosine", "Cosine"), ("l2", "Euclid"), ("ip", "Dot")])
def test_collection_request_distances(metric: str, distance: str) -> None:
    spec = CollectionSpec(name="c", dim=8, metric=metric)
    assert collection_request(spec, indexing_threshold_kb=1, full_scan_threshold_kb=10)["vectors_config"].distance == distance


def test_flat_disables_indexing() -> None:
    spec = CollectionSpec(name="c", dim=8, metric="l2", index=IndexSpec(kind="flat"))
    assert collection_request(spec, indexing_threshold_kb=1, full_scan_threshold_kb=10)["optimizers_config"].indexing_threshold == 0


@pytest.mark.parametrize("index,metric", [(IndexSpec(kind="ivf"), "cosine"),
                                          (IndexSpec(kind="flat", quantization="int8"), "cosine"),
                                          (IndexSpec(), "hamming")])
def test_collection_request_rejects(index: IndexSpec, metric: str) -> None:
    with pytest.raises(UserError):
        collection_request(CollectionSpec(name="c", dim=8, metric=metric, index=index), indexing_threshold_kb=1,
                           full_scan_threshold_kb=10)


def test_payload_indexes_for_declared_fields() -> None:
    reqs = payload_index_requests(SPEC)
    assert [(r["field_name"], r["field_schema"]) for r in reqs] == [
        ("group", models.PayloadSchemaType.INTEGER), ("color", models.PayloadSchemaType.KEYWORD)]
    with pytest.raises(UserError, match="unknown type"):
        payload_index_requests(CollectionSpec(name="c", dim=8, metric="l2", payload_fields={"x": "float"}))


def test_query_filter() -> None:
    assert query_filter(None) is None
    f = query_filter(And((Eq("group", np.int64(2)), Eq("color", "red"))))
    assert f == models.Filter(must=[models.FieldCondition(key="group", match=models.MatchValue(value=2)),
                                    models.FieldCondition(key="color", match=models.MatchValue(value="red"))])
    with pytest.raises(ValueError, match="group"):
        Eq("group", 0.5)  # a float equality is refused where the filter is made


def test_search_request_sends_hnsw_ef_per_query() -> None:
    v = np.arange(4, dtype=np.float32)
    req = search_request("c", v, 10, SearchParams(ef_search=48, filter=Eq("group", 1)))
    assert req["query"] == [0.0, 1.0, 2.0, 3.0] and req["limit"] == 10
    assert req["search_params"] == models.SearchParams(hnsw_ef=48)
    assert req["query_filter"].must[0].key == "group"
    assert req["with_payload"] is False and req["with_vectors"] is False
    assert search_request("c", v, 5, SearchParams())["search_params"] is None


def _qspec(q: str | None, rescore: bool = True) -> CollectionSpec:
    return CollectionSpec(name="c", dim=64, metric="cosine",
                          index=IndexSpec(m=16, ef_construction=100, quantization=q, rescore=rescore))


def _create(q: str | None, rescore: bool = True) -> dict:
    return collection_request(_qspec(q, rescore), indexing_threshold_kb=1, full_scan_threshold_kb=10)


def test_collection_request_sends_the_quantization_config() -> None:
    assert _create(None)["quantization_config"] is None
    assert _create("int8")["quantization_config"] == models.ScalarQuantization(
        scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99, always_ram=True))
    assert _create("pq")["quantization_config"] == models.ProductQuantization(
        product=models.ProductQuantizationConfig(compression=models.CompressionRatio.X16, always_ram=True))
    assert _create("binary")["quantization_config"] == models.BinaryQuantization(
        binary=models.BinaryQuantizationConfig(always_ram=True))
    fp16 = _create("fp16")
    assert fp16["quantization_config"] is None and fp16["vectors_config"].datatype == models.Datatype.FLOAT16
    assert _create("int8")["vectors_config"].datatype is None


def test_collection_request_serialises_as_qdrant_expects() -> None:
    """The JSON body qdrant-client's REST transport sends for the create call."""
    body = models.CreateCollection(vectors=_create("int8")["vectors_config"],
                                   quantization_config=_create("int8")["quantization_config"])
    sent = body.model_dump(mode="json", exclude_none=True)
    assert sent["quantization_config"] == {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": True}}
    half = models.CreateCollection(vectors=_create("fp16")["vectors_config"]).model_dump(mode="json", exclude_none=True)
    assert half["vectors"] == {"size": 64, "distance": "Cosine", "datatype": "float16"}


def test_search_request_carries_the_quantization_search_params() -> None:
    v = np.zeros(4, dtype=np.float32)
    on = quantization_search_params("pq", True)
    assert on == models.QuantizationSearchParams(rescore=True, oversampling=2.0)
    off = quantization_search_params("binary", False)
    assert off == models.QuantizationSearchParams(rescore=False, oversampling=None)
    assert quantization_search_params("fp16", True) is None and quantization_search_params(None, True) is None
    req = search_request("c", v, 10, SearchParams(ef_search=64), on)
    assert req["search_params"] == models.SearchParams(hnsw_ef=64, quantization=on)
    assert search_request("c", v, 10, SearchParams(), off)["search_params"] == models.SearchParams(quantization=off)


@pytest.mark.parametrize("q,config,vectors,expect", [
    ("int8", {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": True}}, None, "int8"),
    ("pq", {"product": {"compression": "x16", "always_ram": True}}, None, "pq"),
    ("binary", {"binary": {"always_ram": True}}, None, "binary"),
    ("fp16", None, {"size": 64, "distance": "Cosine", "datatype": "float16"}, "fp16"),
])
def test_built_index_reads_the_quantization_back(q, config, vectors, expect) -> None:
    changes = {"config__quantization_config": config}
    if vectors:
        changes["config__params__vectors"] = vectors
    b = built_index_from_info(info(**changes), _qspec(q))
    assert b.params["quantization"] == expect and b.substitutions == [], b
    assert b.params["rescore"] is (None if q == "fp16" else True)
    if config:
        assert b.params["quantization_config"] == next(iter(config.values()))


def test_built_index_vector_level_quantization_wins_and_mismatch_is_noted() -> None:
    vec = {"size": 64, "distance": "Cosine", "quantization_config": {"binary": {"always_ram": True}}}
    b = built_index_from_info(info(config__params__vectors=vec), _qspec("binary", False))
    assert b.params["quantization"] == "binary" and b.params["rescore"] is False and not b.substitutions
    missing = built_index_from_info(info(), _qspec("pq"))
    assert any("asked for quantization pq; Qdrant reports none" in s for s in missing.substitutions)


def test_local_mode_says_it_ignores_quantization() -> None:
    b = built_index_from_info(info(), _qspec("int8"), local=True)
    assert b.substitutions[0] == LOCAL_CAVEAT and "local mode ignores quantization: asked for int8" in b.substitutions[1]


# -- response parsing -----------------------------------------------------------------------------------------

def test_hit_ids_keep_the_engine_order() -> None:
    resp = models.QueryResponse(points=[models.ScoredPoint(id=9, version=1, score=0.9),
                                        models.ScoredPoint(id=4, version=1, score=0.7)])
    assert hit_ids(resp) == [9, 4]
    assert hit_ids(resp.points) == [9, 4]


def test_record_from_point_plain_and_named_vector() -> None:
    r = record_from_point(models.Record(id=3, payload={"group": 1}, vector=[0.5, 1.0]))
    assert r.id == 3 and r.payload == {"group": 1} and r.vector.dtype == np.float32
    r = record_from_point(models.Record(id=4, payload={}, vector={"": [1.0]}))
    assert r.payload is None and r.vector.tolist() == [1.0]


def test_index_ready_states() -> None:
    assert index_ready(info(), "hnsw") == (True, "")
    ready, why = index_ready(info(status="yellow"), "hnsw")
    assert not ready and "yellow" in why
    ready, why = index_ready(info(indexed_vectors_count=1200), "hnsw")
    assert not ready and "1200 of 2000" in why
    assert index_ready(info(indexed_vectors_count=0), "flat") == (True, "")
    with pytest.raises(UserError, match="disk full"):
        index_ready(info(status="red", optimizer_status={"error": "disk full"}), "hnsw")


def test_built_index_read_back() -> None:
    b = built_index_from_info(info(), SPEC)
    assert b.kind == "hnsw" and b.substitutions == []
    assert b.params["m"] == 16 and b.params["ef_construction"] == 100
    assert b.params["indexing_threshold_kb"] == 1 and b.params["full_scan_threshold_kb"] == 10
    assert (b.indexed_count, b.total_count) == (2000, 2000)


def test_built_index_notes_what_differs() -> None:
    plain = built_index_from_info(info(indexed_vectors_count=0, config__optimizer_config__indexing_threshold=20000), SPEC)
    assert plain.kind == "flat" and "no HNSW graph" in plain.substitutions[0] and "20000" in plain.substitutions[0]
    partial = built_index_from_info(info(indexed_vectors_count=1500), SPEC)
    assert any("1500 of 2000" in s for s in partial.substitutions)
    capped = built_index_from_info(info(config__hnsw_config__m=8), SPEC)
    assert any("m=8" in s for s in capped.substitutions)


def test_built_index_prefers_the_vector_level_hnsw_override() -> None:
    raw = info(config__params__vectors={"size": 64, "distance": "Cosine", "hnsw_config": {"m": 32}})
    assert built_index_from_info(raw, SPEC).params["m"] == 32


def test_local_mode_is_always_labelled() -> None:
    b = built_index_from_info(info(), SPEC, local=True)
    assert b.kind == "flat" and b.substitutions == [LOCAL_CAVEAT] and "never report" in LOCAL_CAVEAT


# -- options, errors ------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_url_env_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_QDRANT_URL", "http://10.0.0.9:7333")
    assert QdrantOptions().url == "http://10.0.0.9:7333"
    assert QdrantBackend(QdrantOptions(), "/tmp").address == ("10.0.0.9", 7333)
    assert QdrantBackend(QdrantOptions(prefer_grpc=True), "/tmp").address == ("10.0.0.9", 6334)


def test_local_urls_belong_to_qdrant_local() -> None:
    with pytest.raises(UserError, match="qdrant-local"):
        QdrantBackend(QdrantOptions(url=":memory:"), "/tmp").connect()
    assert "qdrant-local" in QdrantBackend.check_available(QdrantOptions(url="/tmp/q"))


@pytest.mark.parametrize("grpc", [False, True])
def test_unreachable_server_is_a_user_error_with_the_fix(grpc: bool) -> None:
    port = _free_port()
    opts = QdrantOptions(url=f"http://127.0.0.1:{port}", prefer_grpc=grpc, grpc_port=port)
    assert f"127.0.0.1:{port}" in QdrantBackend.check_available(opts)
    with pytest.raises(ServerUnreachable) as e:
        QdrantBackend(opts, "/tmp").connect()
    assert f"127.0.0.1:{port}" in str(e.value) and "docker compose up -d qdrant" in str(e.value)


# -- the adapter's logic against qdrant-client's local mode (NOT the Qdrant engine) ---------------------------

@pytest.mark.parametrize("path", ["", "on-disk"])
def test_local_mode_round_trip(tmp_path, path: str) -> None:
    opts = QdrantLocalBackend.Options(path=str(tmp_path / path) if path else "")
    b = QdrantLocalBackend(opts, str(tmp_path))
    b.connect()
    spec = CollectionSpec(name="local", dim=8, metric="l2", index=IndexSpec(m=8, ef_construction=40),
                          payload_fields={"group": "int"})
    b.create(spec)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 8)).astype(np.float32)
    ids = np.arange(300, dtype=np.int64) * 7
    b.insert(ids, x, [{"group": int(i % 3)} for i in ids])
    built = b.wait_indexed(10)
    assert built.kind == "flat" and built.substitutions == [LOCAL_CAVEAT] and built.total_count == 300
    exact = ids[np.argsort(((x - x[5]) ** 2).sum(1))[:10]].tolist()
    assert list(b.search(x[5], 10, SearchParams(ef_search=32))) == exact  # local mode is exact
    assert all(int(i) % 3 == 1 for i in b.search(x[5], 10, SearchParams(filter=Eq("group", 1))))
    assert b.info().extra["caveat"] == LOCAL_CAVEAT
    b.drop()
    b.close()


@pytest.mark.parametrize("q", ["int8", "fp16", "pq", "binary"])
def test_local_mode_runs_the_quantized_logic_and_says_it_ignores_it(tmp_path, q: str) -> None:
    """The adapter's quantized path (create with quantization_config, read back, searches) against local mode,
    which stores float32 and searches exactly: the substitution says so, and its figures are never Qdrant's."""
    b = QdrantLocalBackend(QdrantLocalBackend.Options(), str(tmp_path))
    b.connect()
    b.create(CollectionSpec(name="lq", dim=8, metric="cosine", index=IndexSpec(quantization=q, rescore=False)))
    x = np.random.default_rng(4).standard_normal((200, 8)).astype(np.float32)
    b.insert(np.arange(200), x)
    built = b.wait_indexed(10)
    assert built.substitutions[0] == LOCAL_CAVEAT
    assert f"local mode ignores quantization: asked for {q}" in built.substitutions[1]
    assert built.params["quantization"] is None and built.params["datatype"] == "float32"
    assert b.search(x[11], 5, SearchParams(ef_search=32))[0] == 11
    assert QdrantLocalBackend.capabilities.quantization == ()  # `bench run` refuses it: nothing is quantized
    b.drop()
    b.close()


def test_local_in_memory_cannot_be_attached(tmp_path) -> None:
    b = QdrantLocalBackend(QdrantLocalBackend.Options(), str(tmp_path))
    with pytest.raises(UserError, match="attached"):
        b.attach(SPEC)


# -- a live Qdrant server, only when BENCH_QDRANT_URL names one ------------------------------------------------

@pytest.fixture
def server(tmp_path):
    url = server_options("qdrant")["url"]
    b = QdrantBackend(QdrantOptions(url=url), str(tmp_path))
    b.connect()
    yield b
    b.drop()
    b.close()


@pytest.mark.parametrize("q,rescore", [("int8", True), ("pq", True), ("binary", False), ("fp16", True)])
def test_server_builds_and_reports_the_quantization(server, q: str, rescore: bool) -> None:
    spec = CollectionSpec(name=f"bench_q_{q}", dim=32, metric="cosine",
                          index=IndexSpec(m=16, ef_construction=64, quantization=q, rescore=rescore))
    server.create(spec)
    x = np.random.default_rng(5).standard_normal((2000, 32)).astype(np.float32)
    server.insert(np.arange(2000), x)
    built = server.wait_indexed(120)
    assert built.kind == "hnsw" and built.params["quantization"] == q and not built.substitutions, built
    assert server.search(x[9], 10, SearchParams(ef_search=64))[0] == 9


def test_server_indexes_a_small_collection_with_the_lowered_threshold(server) -> None:
    spec = CollectionSpec(name="bench_small", dim=32, metric="cosine", index=IndexSpec(m=12, ef_construction=64))
    server.create(spec)
    rng = np.random.default_rng(1)
    server.insert(np.arange(1000), rng.standard_normal((1000, 32)).astype(np.float32))
    built = server.wait_indexed(120)
    assert built.kind == "hnsw" and built.indexed_count >= built.total_count == 1000
    assert (built.params["m"], built.params["ef_construction"]) == (12, 64) and built.substitutions == []
    assert server.info().server_version
