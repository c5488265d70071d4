"""Weaviate adapter: request building (weaviate-client's own config objects and the JSON it would send), response
parsing (the client's own parsers fed with answers in the shape of Weaviate's REST and its result objects), and
a live server only when BENCH_WEAVIATE_URL is set. No Weaviate server installs on this machine.
"""

from __future__ import annotations

import copy
import socket
import uuid

import numpy as np
import pytest
from backend_options import server_options

from bench.backends.base import CollectionSpec, IndexSpec, SearchParams
from bench.backends.query import And, Eq
from bench.backends.weaviate import (
    ID_PROPERTY,
    WeaviateBackend,
    WeaviateOptions,
    built_index_from_config,
    collection_name,
    collection_request,
    data_object,
    ef_update,
    hit_ids,
    object_uuid,
    query_filter,
    record_from_object,
    search_request,
    shards_compressed,
    shards_ready,
)
from bench.errors import ServerUnreachable, UserError

pytest.importorskip("weaviate")
from weaviate.collections.classes.cluster import _ConvertFromREST
from weaviate.collections.classes.config import _CollectionConfigCreate
from weaviate.collections.classes.config_methods import _collection_config_from_json
from weaviate.collections.classes.internal import MetadataReturn, Object, QueryReturn

SPEC = CollectionSpec(name="bench-conf", dim=64, metric="cosine", index=IndexSpec(kind="hnsw", m=16, ef_construction=100),
                      payload_fields={"group": "int", "color": "keyword"})


def _sent_json(spec: CollectionSpec, ef: int | None = None) -> dict:
    """The class definition weaviate-client sends for the adapter's create request."""
    req = collection_request(spec, ef)
    return _CollectionConfigCreate(name=req["name"], properties=req["properties"],
                                   vector_config=req["vector_config"])._to_dict()


# GET /v1/schema/BenchConformance of a Weaviate 1.2x server, for a collection made by this adapter.
SCHEMA = {
    "class": "Bench_conf",
    "invertedIndexConfig": {"bm25": {"b": 0.75, "k1": 1.2}, "cleanupIntervalSeconds": 60,
                            "stopwords": {"additions": None, "preset": "en", "removals": None}},
    "multiTenancyConfig": {"autoTenantActivation": False, "autoTenantCreation": False, "enabled": False},
    "properties": [
        {"dataType": ["int"], "indexFilterable": True, "indexRangeFilters": False, "indexSearchable": False,
         "name": ID_PROPERTY},
        {"dataType": ["int"], "indexFilterable": True, "indexRangeFilters": False, "indexSearchable": False,
         "name": "group"},
        {"dataType": ["text"], "indexFilterable": True, "indexRangeFilters": False, "indexSearchable": False,
         "name": "color", "tokenization": "field"},
    ],
    "replicationConfig": {"asyncEnabled": False, "factor": 1},
    "shardingConfig": {"virtualPerPhysical": 128, "desiredCount": 1, "actualCount": 1, "desiredVirtualCount": 128,
                       "actualVirtualCount": 128, "key": "_id", "strategy": "hash", "function": "murmur3"},
    "vectorConfig": {
        "default": {
            "vectorIndexType": "hnsw",
            "vectorizer": {"none": {}},
            "vectorIndexConfig": {
                "skip": False, "cleanupIntervalSeconds": 300, "maxConnections": 16, "efConstruction": 100, "ef": 64,
                "dynamicEfMin": 100, "dynamicEfMax": 500, "dynamicEfFactor": 8, "vectorCacheMaxObjects": 1000000000000,
                "flatSearchCutoff": 40000, "distance": "cosine",
                "pq": {"enabled": False, "bitCompression": False, "segments": 0, "centroids": 256, "trainingLimit": 100000,
                       "encoder": {"type": "kmeans", "distribution": "log-normal"}},
                "bq": {"enabled": False},
                "sq": {"enabled": False, "trainingLimit": 100000, "rescoreLimit": 20},
            },
        }
    },
}

# GET /v1/nodes/Bench_conf?output=verbose
NODES = [{"name": "node1", "status": "HEALTHY", "version": "1.28.2", "gitHash": "0a1b2c3",
          "stats": {"objectCount": 2000, "shardCount": 1},
          "shards": [{"name": "Xk2pQ", "class": "Bench_conf", "objectCount": 2000, "vectorIndexingStatus": "READY",
                      "vectorQueueLength": 0, "compressed": False, "loaded": True},
                     {"name": "Other", "class": "SomethingElse", "objectCount": 5, "vectorIndexingStatus": "INDEXING",
                      "vectorQueueLength": 5, "compressed": False, "loaded": True}]}]


def _schema(**vic) -> dict:
    s = copy.deepcopy(SCHEMA)
    s["vectorConfig"]["default"]["vectorIndexConfig"].update(vic)
    return s


# -- request building -----------------------------------------------------------------------------------------

def test_collection_name_is_a_valid_class_name() -> None:
    assert collection_name("bench-conf") == "Bench_conf"
    assert collection_name("BenchConformance") == "BenchConformance"
    assert collection_name("9lives") == "C9lives"


def test_create_request_maps_hnsw_distance_and_properties() -> None:
    sent = _sent_json(SPEC)
    assert sent["class"] == "Bench_conf"
    vec = sent["vectorConfig"]["default"]
    assert vec["vectorIndexType"] == "hnsw" and vec["vectorizer"] == {"none": {}}
    assert vec["vectorIndexConfig"] == {"distance": "cosine", "maxConnections": 16, "efConstruction": 100}
    props = {p["name"]: p for p in sent["properties"]}
    assert props[ID_PROPERTY]["dataType"] == ["int"] and props[ID_PROPERTY]["indexFilterable"] is True
    assert props["group"]["dataType"] == ["int"]
    assert props["color"]["dataType"] == ["text"] and props["color"]["tokenization"] == "field"


@pytest.mark.parametrize("metric,distance", [("cosine", "cosine"), ("l2", "l2-squared"), ("ip", "dot")])
def test_create_request_distances(metric: str, distance: str) -> None:
    spec = CollectionSpec(name="x", dim=8, metric=metric)
    assert _sent_json(spec)["vectorConfig"]["default"]["vectorIndexConfig"]["distance"] == distance


def test_create_request_flat_and_initial_ef() -> None:
    flat = _sent_json(CollectionSpec(name="x", dim=8, metric="l2", index=IndexSpec(kind="flat")))
    assert flat["vectorConfig"]["default"]["vectorIndexType"] == "flat"
    assert _sent_json(SPEC, ef=48)["vectorConfig"]["default"]["vectorIndexConfig"]["ef"] == 48


@pytest.mark.parametrize("spec", [
    CollectionSpec(name="x", dim=8, metric="hamming"),
    CollectionSpec(name="x", dim=8, metric="l2", index=IndexSpec(kind="ivf")),
    CollectionSpec(name="x", dim=8, metric="l2", index=IndexSpec(quantization="fp16")),
    CollectionSpec(name="x", dim=8, metric="l2", payload_fields={"id": "int"}),
    CollectionSpec(name="x", dim=8, metric="l2", payload_fields={"x": "float"}),
])
def test_create_request_rejects(spec: CollectionSpec) -> None:
    with pytest.raises(UserError):
        collection_request(spec)


def test_ef_update_targets_the_named_vector() -> None:
    upd = ef_update(77)["vector_config"]
    assert upd.name == "default" and upd.vectorIndexConfig.ef == 77


def test_ids_map_to_deterministic_uuids() -> None:
    assert object_uuid(5) == object_uuid(np.int64(5)) != object_uuid(6)
    uuid.UUID(object_uuid(5))
    obj = data_object(np.int64(5), np.ones(3, dtype=np.float32), {"group": np.int64(1)})
    assert obj.uuid == object_uuid(5)
    assert obj.properties == {"group": 1, ID_PROPERTY: 5} and type(obj.properties["group"]) is int
    assert obj.vector == {"default": [1.0, 1.0, 1.0]}


def test_query_filter() -> None:
    assert query_filter(None) is None
    one = query_filter(Eq("group", np.int64(2)))
    assert (one.target, one.value) == ("group", 2)
    both = query_filter(And((Eq("group", 2), Eq("color", "red"))))
    assert [f.target for f in both.filters] == ["group", "color"]


def test_search_request_returns_only_the_int_id() -> None:
    req = search_request(np.arange(3, dtype=np.float32), 10, Eq("group", 1))
    assert req["near_vector"] == [0.0, 1.0, 2.0] and req["limit"] == 10
    assert req["return_properties"] == [ID_PROPERTY] and req["target_vector"] == "default"
    assert req["filters"].target == "group" and req["include_vector"] is False


# -- response parsing -----------------------------------------------------------------------------------------

def _obj(id: int, vector: list[float] | None = None, **props) -> Object:
    return Object(uuid=uuid.UUID(object_uuid(id)), metadata=MetadataReturn(), properties={ID_PROPERTY: id, **props},
                  references=None, vector={"default": vector} if vector is not None else {}, collection="Bench_conf")


def test_hit_ids_keep_the_engine_order() -> None:
    assert hit_ids(QueryReturn(objects=[_obj(9), _obj(3), _obj(12)])) == [9, 3, 12]
    assert hit_ids(QueryReturn(objects=[])) == []


def test_record_from_object() -> None:
    r = record_from_object(_obj(4, [0.5, 0.25], group=1, color=None))
    assert r.id == 4 and r.vector.dtype == np.float32 and r.vector.tolist() == [0.5, 0.25] and r.payload == {"group": 1}
    assert record_from_object(_obj(5)).vector is None


def test_shards_ready_looks_only_at_this_collection() -> None:
    nodes = _ConvertFromREST.nodes_verbose(NODES)
    assert shards_ready(nodes, "Bench_conf") == (True, 2000, 0, "")
    busy = copy.deepcopy(NODES)
    busy[0]["shards"][0].update(vectorIndexingStatus="INDEXING", vectorQueueLength=300)
    ready, objects, queued, why = shards_ready(_ConvertFromREST.nodes_verbose(busy), "Bench_conf")
    assert not ready and queued == 300 and "INDEXING" in why
    queue = copy.deepcopy(NODES)
    queue[0]["shards"][0]["vectorQueueLength"] = 7
    assert shards_ready(_ConvertFromREST.nodes_verbose(queue), "Bench_conf")[3] == "7 vectors queued for indexing"
    assert not shards_ready(nodes, "Missing")[0]


def test_built_index_read_back_from_the_schema() -> None:
    b = built_index_from_config(_collection_config_from_json(SCHEMA), SPEC, total=2000)
    assert b.kind == "hnsw" and b.substitutions == []
    assert (b.params["m"], b.params["ef_construction"], b.params["ef"]) == (16, 100, 64)
    assert b.params["distance"] == "cosine" and (b.indexed_count, b.total_count) == (2000, 2000)


def test_built_index_notes_what_differs() -> None:
    capped = built_index_from_config(_collection_config_from_json(_schema(maxConnections=8)), SPEC, total=2000)
    assert any("max_connections=8" in s for s in capped.substitutions)
    pq = _schema()
    pq["vectorConfig"]["default"]["vectorIndexConfig"]["pq"]["enabled"] = True
    compressed = built_index_from_config(_collection_config_from_json(pq), SPEC, total=2000, queued=10)
    assert compressed.params["quantizer"] == "pq"
    assert any("asked for quantization none; Weaviate reports pq" in s for s in compressed.substitutions)
    assert compressed.indexed_count == 1990
    flat = copy.deepcopy(SCHEMA)
    flat["vectorConfig"]["default"].update(vectorIndexType="flat", vectorIndexConfig={
        "distance": "cosine", "vectorCacheMaxObjects": 1000000000000,
        "pq": {"enabled": False}, "bq": {"enabled": False}, "sq": {"enabled": False}})
    got = built_index_from_config(_collection_config_from_json(flat), SPEC, total=2000)
    assert got.kind == "flat" and "asked for a hnsw" in got.substitutions[0]


# -- quantization ---------------------------------------------------------------------------------------------

def _quant(q: str, rescore: bool = True) -> CollectionSpec:
    from dataclasses import replace

    return replace(SPEC, index=IndexSpec(kind="hnsw", m=16, ef_construction=100, quantization=q, rescore=rescore))


@pytest.mark.parametrize("q,rescore,sent", [
    ("int8", True, {"sq": {"enabled": True, "rescoreLimit": 20, "trainingLimit": 10000}}),
    ("int8", False, {"sq": {"enabled": True, "rescoreLimit": 0, "trainingLimit": 10000}}),
    ("pq", True, {"pq": {"enabled": True, "centroids": 256, "encoder": {}, "segments": 16, "trainingLimit": 10000}}),
    ("binary", True, {"bq": {"enabled": True}}),
])
def test_create_request_sends_the_quantizer(q: str, rescore: bool, sent: dict) -> None:
    vic = _sent_json(_quant(q, rescore))["vectorConfig"]["default"]["vectorIndexConfig"]
    assert vic == {"distance": "cosine", "efConstruction": 100, "maxConnections": 16, **sent}


def test_create_request_quantizer_options() -> None:
    req = collection_request(_quant("int8"), rescore_limit=50, training_limit=2000)
    q = req["vector_config"].vectorIndexConfig.quantizer
    assert (q.rescoreLimit, q.trainingLimit) == (50, 2000)
    pq = collection_request(CollectionSpec("c", dim=100, metric="l2", index=IndexSpec(quantization="pq")))
    assert pq["vector_config"].vectorIndexConfig.quantizer.segments == 25  # one per 4 dimensions, divides 100


@pytest.mark.parametrize("q,rescore,words", [
    ("fp16", True, "no fp16"), ("pq", False, "always rescores PQ"), ("binary", False, "always rescores BQ")])
def test_create_request_refuses_what_weaviate_cannot_build(q: str, rescore: bool, words: str) -> None:
    with pytest.raises(UserError, match=words) as e:
        collection_request(_quant(q, rescore))
    assert "\n" not in str(e.value)


def _quantized_schema(kind: str, **cfg) -> dict:
    s = copy.deepcopy(SCHEMA)
    vic = s["vectorConfig"]["default"]["vectorIndexConfig"]
    vic[kind].update(enabled=True, **cfg)
    return s


def test_quantized_read_back_sq_pq_bq() -> None:
    sq = built_index_from_config(_collection_config_from_json(_quantized_schema("sq", rescoreLimit=20, trainingLimit=10000)),
                                 _quant("int8"), total=2000, compressed=(1, 1))
    assert sq.params["quantization"] == "int8" and sq.params["rescore"] is True and sq.substitutions == []
    assert sq.params["quantizer_rescore_limit"] == 20 and sq.params["compressed_shards"] == 1
    no_rescore = built_index_from_config(_collection_config_from_json(_quantized_schema("sq", rescoreLimit=0)),
                                         _quant("int8", False), total=2000, compressed=(1, 1))
    assert no_rescore.params["rescore"] is False and no_rescore.substitutions == []
    pq = built_index_from_config(_collection_config_from_json(_quantized_schema("pq", segments=16)), _quant("pq"),
                                 total=2000, compressed=(1, 1))
    assert pq.params["quantization"] == "pq" and pq.params["quantizer_segments"] == 16 and not pq.substitutions
    bq = built_index_from_config(_collection_config_from_json(_quantized_schema("bq")), _quant("binary"), total=2000,
                                 compressed=(1, 1))
    assert bq.params["quantization"] == "binary" and bq.params["rescore"] is True and not bq.substitutions


def test_quantized_read_back_notes_what_differs() -> None:
    plain = built_index_from_config(_collection_config_from_json(SCHEMA), _quant("int8"), total=2000, compressed=(0, 1))
    assert any("asked for quantization int8; Weaviate reports no quantizer" in s for s in plain.substitutions)
    untrained = built_index_from_config(_collection_config_from_json(_quantized_schema("pq", trainingLimit=100000)),
                                        _quant("pq"), total=2000, compressed=(0, 1))
    assert any("only 0 of 1 shards are compressed" in s and "100000" in s for s in untrained.substitutions)
    rescoring = built_index_from_config(_collection_config_from_json(_quantized_schema("sq", rescoreLimit=20)),
                                        _quant("int8", False), total=2000, compressed=(1, 1))
    assert any("asked for rescore=False" in s for s in rescoring.substitutions)


def test_shards_compressed_counts_this_collection_only() -> None:
    nodes = copy.deepcopy(NODES)
    assert shards_compressed(_ConvertFromREST.nodes_verbose(nodes), "Bench_conf") == (0, 1)
    nodes[0]["shards"][0]["compressed"] = True
    assert shards_compressed(_ConvertFromREST.nodes_verbose(nodes), "Bench_conf") == (1, 1)


# -- options, errors ------------------------------------------------------------------------------------------

def test_url_env_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_WEAVIATE_URL", "http://10.0.0.7:9090")
    assert WeaviateOptions().url == "http://10.0.0.7:9090"
    assert WeaviateBackend(WeaviateOptions(), "/tmp").address == ("10.0.0.7", 9090)


def test_unreachable_server_is_a_user_error_with_the_fix() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    opts = WeaviateOptions(url=f"http://127.0.0.1:{port}")
    assert f"127.0.0.1:{port}" in WeaviateBackend.check_available(opts)
    with pytest.raises(ServerUnreachable) as e:
        WeaviateBackend(opts, "/tmp").connect()
    assert f"127.0.0.1:{port}" in str(e.value) and "docker compose up -d weaviate" in str(e.value)


# -- a live Weaviate server, only when BENCH_WEAVIATE_URL names one --------------------------------------------

@pytest.fixture
def server(tmp_path):
    url = server_options("weaviate")["url"]
    b = WeaviateBackend(WeaviateOptions(url=url), str(tmp_path))
    b.connect()
    yield b
    b.drop()
    b.close()


def test_server_ef_follows_the_search_params(server) -> None:
    spec = CollectionSpec(name="BenchEf", dim=16, metric="l2", index=IndexSpec(m=12, ef_construction=64))
    server.create(spec)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 16)).astype(np.float32)
    server.insert(np.arange(300), x)
    built = server.wait_indexed(60)
    assert built.kind == "hnsw" and (built.params["m"], built.params["ef_construction"]) == (12, 64)
    assert server.search(x[3], 5, SearchParams(ef_search=40))[0] == 3
    assert built_index_from_config(server.handle.config.get(), spec, None).params["ef"] == 40


@pytest.mark.parametrize("q", ["int8", "pq", "binary"])
def test_server_builds_and_reports_the_quantizer(server, q: str) -> None:
    spec = CollectionSpec(name=f"BenchQ{q}", dim=32, metric="cosine",
                          index=IndexSpec(m=16, ef_construction=64, quantization=q, rescore=True))
    server.options = WeaviateOptions(url=server.options.url, training_limit=1000)
    server.create(spec)
    x = np.random.default_rng(3).standard_normal((2000, 32)).astype(np.float32)
    server.insert(np.arange(2000), x)
    built = server.wait_indexed(120)
    assert built.params["quantization"] == q and built.params["compressed_shards"] == built.params["shards"], built
    assert not built.substitutions
    assert server.search(x[7], 10, SearchParams(ef_search=64))[0] == 7
