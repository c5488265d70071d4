"""Quantization: each adapter that offers it builds what was asked and reads it back; one that does not raises a
UserError naming the engine and the quantization (the run is skipped, never built unquantized in silence)."""

from __future__ import annotations

import json
import tempfile

import numpy as np
import pyarrow.parquet as pq
import pytest

from bench.backends.base import CollectionSpec, IndexSpec, SearchParams
from bench.datasets.exact import exact_topk
from bench.errors import UserError
from bench.metrics.recall import recall_at_k

N, DIM, NQ = 2000, 32, 40


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((N, DIM)).astype(np.float32)
    q = rng.standard_normal((NQ, DIM)).astype(np.float32)
    return x, q, exact_topk(x, q, 10, "cosine")


def _backend(name: str, d: str):
    if name == "faiss":
        pytest.importorskip("faiss")
        from bench.backends.faiss_hnsw import FaissBackend, FaissOptions
        return FaissBackend(FaissOptions(), d)
    pytest.importorskip("qdrant_edge")
    from bench.backends.qdrant_edge import QdrantEdgeBackend, QdrantEdgeOptions
    return QdrantEdgeBackend(QdrantEdgeOptions(), d)


def _build(name, quant, rescore, data):
    x, q, gt = data
    with tempfile.TemporaryDirectory() as d:
        b = _backend(name, d)
        b.create(CollectionSpec("q", DIM, "cosine", IndexSpec(m=16, ef_construction=64, quantization=quant,
                                                               rescore=rescore)))
        for s in range(0, N, 500):
            b.insert(np.arange(s, s + 500, dtype=np.int64), x[s:s + 500])
        built = b.wait_indexed(60)
        ids = np.full((NQ, 10), -1, dtype=np.int64)
        for i, v in enumerate(q):
            got = list(b.search(v, 10, SearchParams(ef_search=64)))
            ids[i, :len(got)] = got
        b.drop()
    return built, recall_at_k(ids, gt, 10)


READ_BACK = {("faiss", "int8"): "int8", ("faiss", "fp16"): "fp16", ("faiss", "pq"): "pq",
             ("qdrant-edge", "int8"): "scalar", ("qdrant-edge", "pq"): "product", ("qdrant-edge", "binary"): "binary"}


@pytest.mark.parametrize("name,quant", sorted(READ_BACK))
def test_quantized_index_is_built_and_read_back(data, name, quant):
    built, recall = _build(name, quant, True, data)
    assert built.params["quantization"] == READ_BACK[(name, quant)], built.params
    assert built.params["rescore"] is True and not built.substitutions
    assert built.indexed_count == N
    assert recall >= {"binary": 0.1, "pq": 0.5}.get(quant, 0.85), recall  # 32-d Gaussian: binary is weak


def test_qdrant_edge_fp16_is_the_storage_datatype(data):
    built, recall = _build("qdrant-edge", "fp16", True, data)
    assert built.params["datatype"] == "float16" and built.params["quantization"] is None
    assert recall >= 0.85


@pytest.mark.parametrize("name", ["faiss", "qdrant-edge"])
def test_rescore_with_the_original_vectors_raises_pq_recall(data, name):
    (b_on, r_on), (b_off, r_off) = _build(name, "pq", True, data), _build(name, "pq", False, data)
    assert b_on.params["rescore"] is True and b_off.params["rescore"] is False
    assert r_on > r_off + 0.05, (r_on, r_off)


def test_faiss_binary_is_a_user_error_naming_engine_and_quantization():
    with pytest.raises(UserError, match="faiss.*binary"), tempfile.TemporaryDirectory() as d:
        _backend("faiss", d).create(CollectionSpec("q", DIM, "cosine", IndexSpec(quantization="binary")))


def test_run_skips_an_engine_without_the_quantization(bench_cli):
    p = bench_cli("run", "--backend", "chroma", "--workload", "ann-quantized", "--set", "index.quantization='pq'",
                  "--set", "dataset.n=1000", "--set", "dataset.dim=16", "--quiet")
    assert p.returncode == 2 and "quantization 'pq'" in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_run_quantized_workload_records_what_was_built(bench_cli, tmp_path):
    p = bench_cli("run", "--backend", "qdrant-edge", "--workload", "ann-quantized", "--set", "dataset.n=2000",
                  "--set", "dataset.dim=32", "--set", "dataset.queries=40", "--set", "search.ef_search=[64]",
                  "--set", "run.warmup_s=0.1", "--trials", "1", "--json")
    assert p.returncode == 0, p.stderr
    run_dir = tmp_path / json.loads(p.stdout)["results"]
    (row,) = pq.read_table(run_dir / "summary.parquet").to_pylist()
    assert json.loads(row["index_requested"])["quantization"] == "int8"
    assert json.loads(row["index_built"])["params"]["quantization"] == "scalar"
    assert row["recall"] >= 0.8
