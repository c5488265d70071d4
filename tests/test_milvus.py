"""Milvus adapters: request building and parsing, milvus-lite's traps (against the real in-process engine), and the
server's traps (against a Milvus server on loopback, skipped with the reason when none answers).

The conformance suite covers the ordinary operations; this module covers what is particular to Milvus.
"""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
from backend_options import server_options

from bench.backends._net import start_hint
from bench.backends.base import CollectionSpec, IndexSpec, SearchParams
from bench.backends.milvus import (
    LITE_CAVEAT,
    MilvusBackend,
    MilvusLiteBackend,
    MilvusOptions,
    compare_params,
    filter_expr,
    hit_ids,
    index_request,
    is_lite_uri,
    lite_engine_state,
    quantization_plan,
    read_index_description,
    record_from_row,
    search_params,
)
from bench.backends.query import And, Eq
from bench.errors import ServerUnreachable, UserError

pymilvus = pytest.importorskip("pymilvus")

DIM = 16


def _data(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return np.arange(n, dtype=np.int64) + 100, rng.standard_normal((n, DIM)).astype(np.float32)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- request building and parsing ---------------------------------------------------------------------------

def test_index_request_nests_build_params_for_lite_only() -> None:
    spec = IndexSpec(kind="hnsw", m=12, ef_construction=77)
    server = index_request(spec, "cosine", lite=False)
    lite = index_request(spec, "cosine", lite=True)
    assert server["params"] == {"M": 12, "efConstruction": 77}
    assert lite["params"] == {"params": {"M": 12, "efConstruction": 77}}
    for req in (server, lite):
        assert (req["index_type"], req["metric_type"], req["field_name"]) == ("HNSW", "COSINE", "vector")


def test_index_request_maps_flat_and_metrics() -> None:
    flat = index_request(IndexSpec(kind="flat"), "l2", lite=False)
    assert flat["index_type"] == "FLAT" and "params" not in flat
    assert index_request(IndexSpec(), "ip", lite=False)["metric_type"] == "IP"


@pytest.mark.parametrize("spec,metric,word", [
    (IndexSpec(kind="ivf"), "cosine", "ivf"),
    (IndexSpec(), "hamming", "hamming"),
    (IndexSpec(quantization="pq"), "cosine", "quantization"),
])
def test_index_request_rejects_what_it_cannot_map(spec: IndexSpec, metric: str, word: str) -> None:
    with pytest.raises(UserError, match=word):
        index_request(spec, metric, lite=False)


def test_quantization_plan_maps_to_what_2_3_5_has() -> None:
    sq8 = quantization_plan(IndexSpec(quantization="int8", rescore=False), 768, lite=False, nlist=64, nprobe=8)
    assert (sq8.index_type, sq8.build, sq8.search) == ("IVF_SQ8", {"nlist": 64}, {"nprobe": 8})
    assert "an IVF index, not HNSW" in sq8.note and "HNSW_SQ/HNSW_PQ are 2.5+" in sq8.note
    ivfpq = quantization_plan(IndexSpec(quantization="pq", rescore=False), 768, lite=False)
    assert ivfpq.index_type == "IVF_PQ" and ivfpq.build == {"nlist": 128, "m": 192, "nbits": 8}
    scann = quantization_plan(IndexSpec(quantization="pq", rescore=True), 768, lite=False)
    assert scann.index_type == "SCANN" and "with_raw_data" not in scann.build  # 2.3.5 rejects the string form
    req = index_request(IndexSpec(quantization="pq", rescore=False), "cosine", lite=False, plan=ivfpq)
    assert req == {"field_name": "vector", "index_type": "IVF_PQ", "index_name": "vector", "metric_type": "COSINE",
                   "params": {"nlist": 128, "m": 192, "nbits": 8}}
    lite = quantization_plan(IndexSpec(m=8, ef_construction=40, quantization="int8", rescore=False), 64, lite=True)
    assert index_request(IndexSpec(quantization="int8"), "l2", lite=True, plan=lite)["params"] == {
        "params": {"M": 8, "efConstruction": 40}} and lite.index_type == "HNSW_SQ"
    assert search_params("cosine", 64, sq8, 10) == {"metric_type": "COSINE", "params": {"nprobe": 8}}
    assert search_params("cosine", 64, scann, 10) == {"metric_type": "COSINE", "params": {"nprobe": 16, "reorder_k": 20}}
    assert search_params("cosine", 64, lite, 10) == {"metric_type": "COSINE", "params": {"ef": 64}}


@pytest.mark.parametrize("quant,rescore,lite,words", [
    ("int8", True, False, "IVF_SQ8, which has no refine step"),
    ("fp16", True, False, "FLOAT16_VECTOR arrived in Milvus 2.4"),
    ("binary", True, False, "BINARY_VECTOR field"),
    ("pq", False, True, "milvus-lite 3.2.2 offers no pq quantization"),
    ("int8", True, True, "HNSW_SQ has no refine step"),
])
def test_quantization_plan_refuses_with_the_version(quant: str, rescore: bool, lite: bool, words: str) -> None:
    with pytest.raises(UserError, match=words):
        quantization_plan(IndexSpec(quantization=quant, rescore=rescore), 64, lite=lite)


def test_read_back_of_ivf_quantized_descriptions() -> None:
    desc = {"nlist": "128", "m": "192", "nbits": "8", "metric_type": "COSINE", "index_type": "IVF_PQ",
            "field_name": "vector", "index_name": "vector", "total_rows": 3000, "indexed_rows": 3000,
            "pending_index_rows": 0, "state": "Finished"}
    kind, params = read_index_description(desc)
    assert kind == "ivf" and params["quantization"] == "pq" and (params["nlist"], params["pq_m"], params["pq_nbits"]) \
        == (128, 192, 8)
    assert read_index_description({"index_type": "IVF_SQ8", "nlist": "64"})[1]["quantization"] == "int8"
    assert read_index_description({"index_type": "HNSW"})[1]["quantization"] is None


def test_search_params_carry_ef_per_query() -> None:
    assert search_params("cosine", 40) == {"metric_type": "COSINE", "params": {"ef": 40}}
    assert search_params("l2", None) == {"metric_type": "L2"}


def test_filter_expr_quotes_values() -> None:
    assert filter_expr(None) == ""
    assert filter_expr(Eq("group", 2)) == "group == 2"
    assert filter_expr(And((Eq("group", np.int64(2)), Eq("color", 'r"ed')))) == '(group == 2 and color == "r\\"ed")'
    with pytest.raises(UserError, match="field"):
        filter_expr(Eq("a b", 1))
    with pytest.raises(ValueError, match="int or a string"):
        Eq("group", [1, 2])  # refused where the filter is made


def test_read_index_description_server_and_lite_forms() -> None:
    server = {"M": "12", "efConstruction": "77", "metric_type": "COSINE", "index_type": "HNSW", "field_name": "vector",
              "index_name": "vector", "total_rows": 3000, "indexed_rows": 3000, "pending_index_rows": 0,
              "state": "Finished"}
    lite = {"index_type": "HNSW", "metric_type": "COSINE", "params": {"M": 12, "efConstruction": 77},
            "field_name": "vector", "index_name": "vector", "state": "Finished"}
    lite_flat_ignored = {"index_type": "HNSW", "metric_type": "COSINE", "field_name": "vector"}
    for desc in (server, lite):
        kind, params = read_index_description(desc)
        assert kind == "hnsw" and (params["m"], params["ef_construction"]) == (12, 77)
    kind, params = read_index_description(lite_flat_ignored)
    assert kind == "hnsw" and "m" not in params
    assert read_index_description({"index_type": "FLAT", "metric_type": "L2"})[0] == "flat"
    assert read_index_description({"index_type": "BRUTE_FORCE"})[0] == "flat"


def test_hit_ids_and_records() -> None:
    result = [[{"id": 7, "distance": 0.9, "entity": {}}, {"id": 3, "distance": 0.5, "entity": {}}]]
    assert hit_ids(result) == [7, 3]
    assert hit_ids([]) == []
    # pymilvus' own result: ids read from the hits' `ids`, without decoding each hit
    from pymilvus.client.search_result import SearchResult
    from pymilvus.grpc_gen import schema_pb2

    sr = SearchResult(schema_pb2.SearchResultData(num_queries=1, top_k=3, scores=[0.9, 0.5, 0.1], topks=[3],
                                                  ids=schema_pb2.IDs(int_id=schema_pb2.LongArray(data=[7, 3, 11]))))
    assert hit_ids(sr) == [7, 3, 11] == [h["id"] for h in sr[0]]
    r = record_from_row({"id": 5, "vector": [1.0, 2.0], "group": 1, "color": None})
    assert r.id == 5 and r.vector.dtype == np.float32 and r.payload == {"group": 1}


def test_compare_params_names_every_difference() -> None:
    req = IndexSpec(kind="hnsw", m=16, ef_construction=100)
    assert compare_params(req, "hnsw", {"m": 16, "ef_construction": 100}) == []
    assert "m=16" in compare_params(req, "hnsw", {"m": 16, "ef_construction": 200})[0]
    assert "FLAT" in compare_params(req, "flat", {"index_type": "FLAT"})[0]


def test_lite_uri_routing() -> None:
    assert is_lite_uri("./x.db") and is_lite_uri("/tmp/a/milvus.db")
    assert not is_lite_uri("http://127.0.0.1:19530") and not is_lite_uri("127.0.0.1:19530")
    server = MilvusBackend(MilvusOptions(uri="./local.db"), "/tmp")
    with pytest.raises(UserError, match="milvus-lite"):
        server.connect()
    assert "milvus-lite" in MilvusBackend.check_available(MilvusOptions(uri="./local.db"))


def test_uri_env_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_MILVUS_URI", "http://10.1.2.3:19999")
    assert MilvusOptions().uri == "http://10.1.2.3:19999"
    assert MilvusBackend(MilvusOptions(), "/tmp").address == ("10.1.2.3", 19999)


def test_unreachable_server_is_a_user_error_with_the_fix() -> None:
    port = _free_port()
    opts = MilvusOptions(uri=f"http://127.0.0.1:{port}")
    reason = MilvusBackend.check_available(opts)
    assert reason and f"127.0.0.1:{port}" in reason
    with pytest.raises(ServerUnreachable) as e:
        MilvusBackend(opts, "/tmp").connect()
    msg = str(e.value)
    assert "milvus" in msg and f"127.0.0.1:{port}" in msg and start_hint("milvus") in msg
    assert e.value.exit_code == 2


# -- milvus-lite: its traps, against the real in-process engine ---------------------------------------------

@pytest.fixture
def lite(tmp_path):
    pytest.importorskip("milvus_lite")
    b = MilvusLiteBackend(MilvusLiteBackend.Options(), str(tmp_path))
    b.connect()
    yield b
    b.drop()
    b.close()


def _spec(name: str, kind: str = "hnsw", m: int = 12, efc: int = 77, **kw) -> CollectionSpec:
    return CollectionSpec(name=name, dim=DIM, metric="cosine", index=IndexSpec(kind=kind, m=m, ef_construction=efc), **kw)


def test_lite_plain_client_flat_params_are_ignored_by_the_engine(tmp_path) -> None:
    """The trap itself: pymilvus's ordinary `params={"M": ..}` reaches milvus-lite as keys it ignores."""
    pytest.importorskip("milvus_lite")
    from pymilvus import DataType, MilvusClient

    uri = str(tmp_path / "raw.db")
    c = MilvusClient(uri=uri)
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    ip = c.prepare_index_params()
    ip.add_index(field_name="vector", index_type="HNSW", metric_type="COSINE", params={"M": 12, "efConstruction": 77})
    c.create_collection("raw", schema=schema, index_params=ip)
    ids, x = _data(300)
    c.insert("raw", [{"id": int(i), "vector": v.tolist()} for i, v in zip(ids, x, strict=True)])
    c.flush("raw")
    c.release_collection("raw")
    c.load_collection("raw")
    state = lite_engine_state(uri, "raw")
    assert state is not None
    assert [(s["index"], s["m"], s["ef_construction"]) for s in state["segments"]] == [("hnsw", 16, 200)]
    c.close()


def test_lite_m_and_ef_construction_reach_the_graph(lite) -> None:
    lite.create(_spec("lite_params"))
    ids, x = _data(1500)
    lite.insert(ids, x)
    built = lite.wait_indexed(60)
    assert built.kind == "hnsw"
    assert (built.params["m"], built.params["ef_construction"]) == (12, 77)  # read from the faiss graph
    assert built.indexed_count == built.total_count == 1500
    assert built.substitutions == [LITE_CAVEAT]


def test_lite_unflushed_rows_are_brute_forced_until_wait_indexed(lite) -> None:
    spec = _spec("lite_flush")
    lite.create(spec)
    ids, x = _data(800)
    lite.insert(ids, x)
    before = lite_engine_state(lite.uri, spec.name)
    assert before == {"segments": [], "memtable_rows": 800}  # describe_index says Finished all the same
    assert lite.client.describe_index(spec.name, "vector")["state"] == "Finished"
    built = lite.wait_indexed(60)
    after = lite_engine_state(lite.uri, spec.name)
    assert after["memtable_rows"] == 0 and {s["index"] for s in after["segments"]} == {"hnsw"}
    assert built.params["memtable_rows"] == 0 and built.indexed_count == 800


def test_lite_reports_rows_left_in_the_memtable(lite) -> None:
    """Detection, when something skips the flush: the read-back says those rows are searched exactly."""
    spec = _spec("lite_memtable")
    lite.create(spec)
    ids, x = _data(600)
    lite.insert(ids, x)
    built = lite._wait_built(spec, deadline=float("inf"))  # the build step without wait_indexed's flush
    assert built.params["memtable_rows"] == 600
    assert any("unflushed" in s and "brute force" in s for s in built.substitutions)


def test_lite_brute_force_instead_of_hnsw_is_a_substitution(lite) -> None:
    """If the engine holds another index than asked (here: swapped for BRUTE_FORCE), the run says so."""
    spec = _spec("lite_swap")
    lite.create(spec)
    lite.client.release_collection(spec.name)
    lite.client.drop_index(spec.name, "vector")
    ip = lite.client.prepare_index_params()
    ip.add_index(field_name="vector", index_type="BRUTE_FORCE", metric_type="COSINE")
    lite.client.create_index(spec.name, ip)
    lite.client.load_collection(spec.name)
    ids, x = _data(500)
    lite.insert(ids, x)
    built = lite.wait_indexed(60)
    assert built.kind == "flat"
    assert any("asked for a hnsw index" in s for s in built.substitutions)


def test_lite_flat_request_reads_back_flat(lite) -> None:
    lite.create(_spec("lite_flat", kind="flat"))
    ids, x = _data(400)
    lite.insert(ids, x)
    built = lite.wait_indexed(60)
    assert built.kind == "flat" and built.substitutions == [LITE_CAVEAT]
    assert lite.search(x[5], 3, SearchParams())[0] == int(ids[5])


def test_lite_info_carries_the_caveat(lite) -> None:
    lite.create(_spec("lite_info"))
    info = lite.info()
    assert info.engine == "milvus-lite" and info.server_version.startswith("milvus_lite")
    assert info.extra["caveat"] == LITE_CAVEAT
    assert MilvusLiteBackend.capabilities.in_process and not MilvusBackend.capabilities.in_process


def test_lite_rows_without_a_declared_payload_field(lite) -> None:
    spec = _spec("lite_payload", payload_fields={"group": "int", "color": "keyword"})
    lite.create(spec)
    ids, x = _data(200)
    lite.insert(ids, x, [{"group": int(i % 2), "color": "red" if i % 3 else "blue"} for i in ids])
    lite.upsert(int(ids[0]), x[1])  # no payload: the engine stores nulls
    lite.wait_indexed(60)
    assert lite.get(int(ids[0])).payload is None
    found = lite.search(x[3], 10, SearchParams(ef_search=32, filter=Eq("color", "blue")))
    assert found and all(lite.get(i).payload["color"] == "blue" for i in found)


# -- a Milvus server on loopback ----------------------------------------------------------------------------

@pytest.fixture
def server(tmp_path):
    opts = server_options("milvus")
    b = MilvusBackend(MilvusOptions(**opts), str(tmp_path))
    b.connect()
    yield b
    b.drop()
    b.close()


def test_server_small_segments_are_reported_unindexed(server) -> None:
    """describe_index counts a 500-row segment as indexed; the loaded segment carries no index."""
    spec = _spec("small_segment")
    server.create(spec)
    ids, x = _data(500)
    server.insert(ids, x)
    built = server.wait_indexed(120)
    assert built.total_count == 500 and built.indexed_count == 0
    assert any("no index" in s and "brute force" in s for s in built.substitutions)


def test_server_waits_for_pending_rows_and_reads_params_back(server) -> None:
    spec = _spec("server_params")
    server.create(spec)
    ids, x = _data(3000)
    server.insert(ids, x)
    built = server.wait_indexed(120)
    assert built.kind == "hnsw" and (built.params["m"], built.params["ef_construction"]) == (12, 77)
    assert built.indexed_count == built.total_count == 3000 and built.substitutions == []
    cluster = built.params["cluster"]  # shards and replicas read back (describe_replica), with their query nodes
    assert cluster["shards"] == 1 and cluster["replicas"] == 1 and cluster["substitutions"] == []
    (replica,) = cluster["placement"]
    assert replica["query_nodes"] and len(replica["shard_leaders"]) == 1
    assert set(replica["shard_leaders"].values()) <= set(replica["query_nodes"])
    desc = server.client.describe_index(spec.name, "vector")
    assert desc["pending_index_rows"] == 0
    with pytest.raises(UserError, match="ef_search"):
        server.search(x[0], 20, SearchParams(ef_search=10))
    assert server.search(x[0], 5, SearchParams(ef_search=20))[0] == int(ids[0])
    assert server.info().server_version


@pytest.mark.parametrize("message, retried", [
    ("read error in /x/1.idx: 4470 != 5016 (Resource temporarily unavailable)", True),
    ("Failed to read all data for array. Expected (400, 16) = 6400 elements, could only read 0 elements. "
     "(file seems not fully written?)", True),
    ("collection not found", False),
])
def test_lite_load_retries_only_a_file_still_being_written(message: str, retried: bool) -> None:
    """milvus-lite's background thread may still be writing a segment file when load_collection reads it; those
    two messages are retried until the load succeeds, any other error is raised at once."""
    from pymilvus.exceptions import MilvusException

    class Client:
        calls = 0

        def load_collection(self, name: str) -> None:
            Client.calls += 1
            if Client.calls == 1:
                raise MilvusException(code=1, message=message)

    backend = MilvusLiteBackend.__new__(MilvusLiteBackend)
    backend.client = Client()
    if retried:
        backend._lite_load("c", deadline=time.monotonic() + 10)
        assert Client.calls == 2
    else:
        with pytest.raises(MilvusException):
            backend._lite_load("c", deadline=time.monotonic() + 10)
        assert Client.calls == 1
