"""Hybrid search in the adapters that cannot run live here: the Qdrant server adapter (request building, and its
logic through qdrant-client's local mode, which implements the same TextQuery BM25 and RRF) and Weaviate
(request building and schema read-back; a live server only when BENCH_WEAVIATE_URL is set)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from bench.backends.base import CollectionSpec, HybridSpec, IndexSpec, SearchParams
from bench.backends.query import Eq
from bench.datasets import hybrid, texts

HSPEC = CollectionSpec(name="bench-hyb", dim=8, metric="cosine", index=IndexSpec(m=16, ef_construction=64),
                       payload_fields={"text": "text", "group": "int"}, hybrid=HybridSpec(k1=1.5, b=0.6, avgdl=12.0))
VEC = np.arange(8, dtype=np.float32) / 10


# -- Qdrant server ------------------------------------------------------------------------------------------

def test_qdrant_hybrid_request_prefetches_dense_and_bm25_and_fuses_by_rrf_61():
    pytest.importorskip("qdrant_client")
    from qdrant_client import models

    from bench.backends.qdrant import hybrid_request, payload_index_requests

    req = hybrid_request(HSPEC, VEC, 10, SearchParams(ef_search=96, text="bako rata", fusion="rrf", candidates=50,
                                                      filter=Eq("group", 3)))
    sent = json.loads(models.QueryRequest(prefetch=req["prefetch"], query=req["query"], limit=req["limit"],
                                          filter=req["query_filter"]).model_dump_json(exclude_none=True))
    dense, text = sent["prefetch"]
    assert dense["query"] == pytest.approx(VEC.tolist()) and dense["limit"] == 50 and dense["params"]["hnsw_ef"] == 96
    assert "using" not in dense
    assert text == {"query": {"text": {"query": "bako rata", "scoring": {"bm25": {"k": 1.5, "b": 0.6}}}},
                    "using": "text", "limit": 50,
                    "filter": {"must": [{"key": "group", "match": {"value": 3}}]}}
    assert sent["query"] == {"rrf": {"k": 61}} and sent["limit"] == 10
    with pytest.raises(ValueError, match="weighted"):
        hybrid_request(HSPEC, VEC, 10, SearchParams(text="x", fusion="weighted", alpha=0.5))
    idx = {r["field_name"]: r["field_schema"] for r in payload_index_requests(HSPEC)}
    assert json.loads(idx["text"].model_dump_json(exclude_none=True)) == {
        "type": "text", "tokenizer": "word", "lowercase": True, "scoring": True}
    assert idx["group"] == models.PayloadSchemaType.INTEGER


def test_qdrant_adapter_logic_on_local_mode_equals_the_exact_reference():
    """Local mode is exact (brute force) and implements TextQuery BM25 and RRF: the adapter's fused list must be
    the harness' reference exactly. This checks the adapter's logic only, never a Qdrant figure."""
    pytest.importorskip("qdrant_client")
    from bench.backends.qdrant import QdrantLocalBackend, QdrantLocalOptions

    rng = np.random.default_rng(11)
    n = 400
    x = rng.standard_normal((n, 8)).astype(np.float32)
    qv = rng.standard_normal((15, 8)).astype(np.float32)
    docs, qs = texts.generate(x, qv, texts.TextParams(vocab=300, topics=4, topic_words=10), seed=3)
    idx = hybrid.build_bm25(docs, k1=1.5, b=0.6)
    ref = hybrid.reference(x, qv, "cosine", idx, qs, 10, 25, "rrf", None, None)
    b = QdrantLocalBackend(QdrantLocalOptions(), "/tmp")
    b.connect()
    b.create(CollectionSpec("hyb", 8, "cosine", payload_fields={"text": "text"},
                            hybrid=HybridSpec(k1=1.5, b=0.6, avgdl=idx.avgdl)))
    b.insert(np.arange(n, dtype=np.int64), x, [{"text": t} for t in docs])
    built = b.wait_indexed(30)
    assert built.params["hybrid"]["fusion"]["rrf"].startswith("RrfQuery(Rrf(k=61))")
    found = np.array([b.search(qv[i], 10, SearchParams(text=qs[i], fusion="rrf", candidates=25)) for i in range(15)])
    b.drop()
    b.close()
    # every returned record scores at least the reference's k-th (records tied there may swap)
    assert ref.agreement(np.arange(15), found, 10) == pytest.approx(1.0)


def test_bench_run_hybrid_on_qdrant_local(bench_cli, tmp_path):
    p = bench_cli("run", "--backend", "qdrant-local", "--workload", "ann-hybrid", "--set", "dataset.n=1500",
                  "--set", "dataset.queries=20", "--set", "run.min_operations=1", "--set", "dataset.dim=32", "--set", "search.ef_search=[64]",
                  "--set", "run.warmup_s=0", "--trials", "1", "--json")
    assert p.returncode == 0, p.stderr
    run_dir = tmp_path / json.loads(p.stdout)["results"]
    (row,) = pq.read_table(run_dir / "summary.parquet").to_pylist()
    assert (row["fusion"], row["alpha"]) == ("rrf", None) and row["recall"] == pytest.approx(1.0)
    assert "local mode" in row["index_substitutions"]  # never reported as Qdrant's


# -- Weaviate -----------------------------------------------------------------------------------------------

def test_weaviate_create_request_sets_bm25_and_a_word_tokenized_text_property():
    pytest.importorskip("weaviate")
    from weaviate.collections.classes.config import _CollectionConfigCreate

    from bench.backends.weaviate import collection_request

    req = collection_request(HSPEC, 64)
    sent = _CollectionConfigCreate(name=req["name"], properties=req["properties"], vector_config=req["vector_config"],
                                   inverted_index_config=req["inverted_index_config"])._to_dict()
    assert sent["invertedIndexConfig"]["bm25"] == {"k1": 1.5, "b": 0.6}
    assert sent["invertedIndexConfig"]["stopwords"]["preset"] == "none"
    props = {p["name"]: p for p in sent["properties"]}
    assert props["text"]["tokenization"] == "word" and props["text"]["indexSearchable"] is True
    assert "inverted_index_config" not in collection_request(CollectionSpec(name="x", dim=8, metric="cosine"))


def test_weaviate_hybrid_request_maps_fusion_and_alpha():
    pytest.importorskip("weaviate")
    from weaviate.classes.query import HybridFusion

    from bench.backends.weaviate import VECTOR_NAME, hybrid_request

    w = hybrid_request(VEC, 10, SearchParams(text="bako rata", fusion="weighted", alpha=0.25, candidates=100), "text")
    assert w["fusion_type"] == HybridFusion.RELATIVE_SCORE and w["alpha"] == 0.25
    assert w["query"] == "bako rata" and w["vector"] == pytest.approx(VEC.tolist())
    assert w["query_properties"] == ["text"] and w["limit"] == 10 and w["target_vector"] == VECTOR_NAME
    r = hybrid_request(VEC, 5, SearchParams(text="x", fusion="rrf", filter=Eq("group", 2)), "text")
    assert r["fusion_type"] == HybridFusion.RANKED and r["alpha"] == 0.5 and r["filters"] is not None
    with pytest.raises(ValueError):
        hybrid_request(VEC, 5, SearchParams(text="x", fusion="weighted"), "text")


def test_weaviate_bm25_read_back_from_the_schema_notes_what_differs():
    pytest.importorskip("weaviate")
    from test_weaviate import SCHEMA
    from weaviate.collections.classes.config_methods import _collection_config_from_json

    from bench.backends.weaviate import hybrid_readback

    s = copy.deepcopy(SCHEMA)
    s["invertedIndexConfig"]["bm25"] = {"b": 0.6, "k1": 1.5}
    s["invertedIndexConfig"]["stopwords"]["preset"] = "none"
    s["properties"].append({"dataType": ["text"], "indexFilterable": True, "indexSearchable": True, "name": "text",
                            "tokenization": "word"})
    subs: list[str] = []
    got = hybrid_readback(_collection_config_from_json(s), HSPEC, subs)
    assert (got["k1"], got["b"], got["tokenization"]) == (1.5, 0.6, "word") and subs == []
    s["invertedIndexConfig"]["bm25"] = {"b": 0.75, "k1": 1.2}
    hybrid_readback(_collection_config_from_json(s), HSPEC, subs)
    assert subs and "k1=1.2" in subs[0]


def test_weaviate_live_hybrid_agrees_with_the_reference(tmp_path):
    from backend_options import server_options

    url = server_options("weaviate")["url"]
    from bench.backends.weaviate import WeaviateBackend, WeaviateOptions

    rng = np.random.default_rng(4)
    n = 1000
    x = rng.standard_normal((n, 16)).astype(np.float32)
    qv = rng.standard_normal((20, 16)).astype(np.float32)
    docs, qs = texts.generate(x, qv, texts.TextParams(vocab=500, topics=5, topic_words=10), seed=2)
    idx = hybrid.build_bm25(docs)
    b = WeaviateBackend(WeaviateOptions(url=url), str(tmp_path))
    b.connect()
    try:
        b.create(CollectionSpec("BenchHybrid", 16, "cosine", index=IndexSpec(kind="flat"),
                                payload_fields={"text": "text"}, hybrid=HybridSpec(avgdl=idx.avgdl)))
        b.insert(np.arange(n, dtype=np.int64), x, [{"text": t} for t in docs])
        b.wait_indexed(120)
        for fusion, alpha in (("rrf", None), ("weighted", 0.5)):
            ref = hybrid.reference(x, qv, "cosine", idx, qs, 10, 100, fusion, alpha, "minmax" if alpha else None)
            found = np.array([b.search(qv[i], 10, SearchParams(text=qs[i], fusion=fusion, alpha=alpha, candidates=100))
                              for i in range(20)])
            assert ref.agreement(np.arange(20), found, 10) >= 0.9, fusion
    finally:
        b.drop()
        b.close()
