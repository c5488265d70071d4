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
                  "--set", "dataset.dim=32", "--set", "dataset.queries=40", "--set", "run.min_operations=1", "--set", "search.ef_search=[64]",
                  "--set", "run.warmup_s=0.1", "--trials", "1", "--json")
    assert p.returncode == 0, p.stderr
    run_dir = tmp_path / json.loads(p.stdout)["results"]
    (row,) = pq.read_table(run_dir / "summary.parquet").to_pylist()
    assert json.loads(row["index_requested"])["quantization"] == "int8"
    assert json.loads(row["index_built"])["params"]["quantization"] == "scalar"
    assert row["recall"] >= 0.8


# -- pgvector: halfvec (fp16) and binary_quantize (binary), on the live server ---------------------------------

def _pgvector_or_skip() -> None:
    from backend_options import server_options

    server_options("pgvector")


def _run(bench_cli, tmp_path, backend: str, quant: str, rescore: bool, *extra: str):
    p = bench_cli("run", "--backend", backend, "--workload", "ann-quantized", "--set", "dataset.n=2000",
                  "--set", "dataset.dim=64", "--set", "dataset.queries=40", "--set", "run.min_operations=1", "--set", "search.ef_search=[64]",
                  "--set", f"index.quantization='{quant}'", "--set", f"index.rescore={str(rescore).lower()}",
                  "--set", "run.warmup_s=0.1", "--trials", "1", "--json", *extra)
    assert p.returncode == 0, p.stderr
    (row,) = [r for r in pq.read_table(tmp_path / json.loads(p.stdout)["results"] / "summary.parquet").to_pylist()
              if r["op"] == "search"]
    return row, json.loads(row["index_built"])


@pytest.mark.parametrize("quant,rescore,opclass,expr", [
    ("fp16", True, "halfvec_cosine_ops", "(embedding)::halfvec(64)"),
    ("fp16", False, "halfvec_cosine_ops", "(embedding)::halfvec(64)"),
    ("binary", True, "bit_hamming_ops", "(binary_quantize(embedding))::bit(64)"),
    ("binary", False, "bit_hamming_ops", "(binary_quantize(embedding))::bit(64)"),
])
def test_pgvector_quantized_run_end_to_end(bench_cli, tmp_path, quant, rescore, opclass, expr):
    _pgvector_or_skip()
    row, built = _run(bench_cli, tmp_path, "pgvector", quant, rescore)
    p = built["params"]
    assert built["kind"] == "hnsw" and p["opclass"] == opclass and expr in p["indexdef"], p
    assert p["quantization"] == quant and p["rescore"] is rescore and p["search_plan_uses_index"] is True
    assert built["substitutions"] == [] and (row["quantization"], row["rescore"]) == (quant, rescore)
    assert row["index_size_bytes"] == p["index_bytes"] > 0
    assert row["recall"] >= (0.9 if quant == "fp16" else 0.05), row["recall"]  # 64-d Gaussian: 1 bit is weak


def test_pgvector_binary_rescore_raises_recall_and_the_index_is_smaller(bench_cli, tmp_path):
    _pgvector_or_skip()
    plain_row, plain = _run(bench_cli, tmp_path, "pgvector", "fp16", False)
    off, _ = _run(bench_cli, tmp_path, "pgvector", "binary", False)
    on, _ = _run(bench_cli, tmp_path, "pgvector", "binary", True)
    assert on["recall"] > off["recall"] + 0.03, (on["recall"], off["recall"])
    assert on["index_size_bytes"] < plain_row["index_size_bytes"]  # bit(64) tuples vs halfvec(64) tuples


@pytest.mark.parametrize("quant,words", [("int8", "pgvector offers no int8 quantization"),
                                         ("pq", "pgvector offers no pq quantization")])
def test_pgvector_refuses_int8_and_pq_in_one_sentence(bench_cli, quant, words):
    p = bench_cli("run", "--backend", "pgvector", "--workload", "ann-quantized", "--set", f"index.quantization='{quant}'",
                  "--set", "dataset.n=1000", "--set", "dataset.dim=16", "--quiet")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    msg = p.stderr.strip()
    assert f"does not offer quantization '{quant}' (it offers: fp16, binary)" in msg and len(msg.splitlines()) == 1


def test_pgvector_adapter_refuses_int8_itself(tmp_path):
    """The adapter refuses on its own too (not only the runner's capability check)."""
    _pgvector_or_skip()
    from bench.backends.pgvector import PgvectorBackend, PgvectorOptions

    b = PgvectorBackend(PgvectorOptions(), str(tmp_path))
    b.connect()
    try:
        with pytest.raises(UserError, match="pgvector offers no int8 quantization"):
            b.create(CollectionSpec("pgq_refuse", DIM, "cosine", IndexSpec(quantization="int8")))
    finally:
        b.close()


# -- Milvus server 2.3.5: IVF_SQ8 / IVF_PQ / SCANN, recorded as substitutions ------------------------------------

def _milvus_or_skip() -> None:
    from backend_options import server_options

    server_options("milvus")


@pytest.mark.parametrize("quant,rescore,index_type", [("int8", False, "IVF_SQ8"), ("pq", False, "IVF_PQ"),
                                                      ("pq", True, "SCANN")])
def test_milvus_server_quantized_run_records_the_ivf_substitution(bench_cli, tmp_path, quant, rescore, index_type):
    _milvus_or_skip()
    row, built = _run(bench_cli, tmp_path, "milvus", quant, rescore, "--set", "backend.consistency_level='Bounded'",
                      "--set", "backend.ivf_nlist=32", "--set", "backend.ivf_nprobe=8")
    p = built["params"]
    assert built["kind"] == "ivf" and p["index_type"] == index_type and p["quantization"] == quant, p
    assert p["nlist"] == 32 and p["search_params"]["nprobe"] == 8
    assert any(s.startswith(f"{quant}{' with rescore' if rescore else ''} became {index_type}")
               and "an IVF index, not HNSW" in s and "ef_search does not apply" in s
               for s in built["substitutions"]), built["substitutions"]
    assert row["recall"] >= 0.3, row["recall"]
    assert index_type in row["index_substitutions"]


@pytest.mark.parametrize("backend,quant,rescore,words", [
    ("milvus", "int8", True, "IVF_SQ8, which has no refine step"),
    ("milvus", "fp16", True, "does not offer quantization 'fp16'"),
    ("milvus", "binary", True, "does not offer quantization 'binary'"),
    ("milvus-lite", "pq", True, "does not offer quantization 'pq'"),
    ("milvus-lite", "int8", True, "HNSW_SQ has no refine step"),
])
def test_milvus_refusals_name_the_version_or_the_missing_kind(bench_cli, backend, quant, rescore, words):
    if backend == "milvus":
        _milvus_or_skip()
    p = bench_cli("run", "--backend", backend, "--workload", "ann-quantized", "--set", f"index.quantization='{quant}'",
                  "--set", f"index.rescore={str(rescore).lower()}", "--set", "dataset.n=1000", "--set", "dataset.dim=16",
                  "--quiet")
    assert p.returncode == 2 and "Traceback" not in p.stderr and words in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_milvus_lite_int8_is_hnsw_sq_read_back_from_its_segments(bench_cli, tmp_path):
    pytest.importorskip("milvus_lite")
    row, built = _run(bench_cli, tmp_path, "milvus-lite", "int8", False)
    p = built["params"]
    assert built["kind"] == "hnsw" and p["index_type"] == "HNSW_SQ" and p["quantization"] == "int8", p
    assert p["segment_index_classes"] == ["FaissHnswSqIndex"]
    assert row["recall"] >= 0.8


def test_bench_backends_lists_each_adapters_quantization(bench_cli):
    p = bench_cli("backends", "--json")
    assert p.returncode == 0, p.stderr
    caps = {r["backend"]: r["capabilities"]["quantization"] for r in json.loads(p.stdout) if r["capabilities"]}
    assert caps["pgvector"] == ["fp16", "binary"] and caps["milvus"] == ["int8", "pq"]
    assert caps["milvus-lite"] == ["int8"] and caps["faiss"] == ["int8", "fp16", "pq"]
    assert caps["qdrant"] == caps["qdrant-edge"] == ["int8", "fp16", "pq", "binary"]
    assert caps["weaviate"] == ["int8", "pq", "binary"] and caps["qdrant-local"] == caps["chroma"] == []
    table = bench_cli("backends", "--wide").stdout  # all columns, whatever the terminal's width
    assert "quantization" in table and "fp16, binary" in table


@pytest.mark.parametrize("quant,rescore", [(None, True), ("int8", True), ("int8", False), ("fp16", False),
                                           ("pq", True)])
def test_faiss_index_size_matches_its_serialized_size_and_shrinks_with_quantization(data, quant, rescore):
    faiss = pytest.importorskip("faiss")
    from bench.backends.faiss_hnsw import FaissBackend, FaissOptions

    x, _, _ = data
    with tempfile.TemporaryDirectory() as d:
        b = FaissBackend(FaissOptions(), d)
        b.create(CollectionSpec("q", DIM, "cosine", IndexSpec(m=16, ef_construction=64, quantization=quant,
                                                               rescore=rescore)))
        b.insert(np.arange(N, dtype=np.int64), x)
        b.wait_indexed(60)
        info = b.info()
        serialized = int(faiss.serialize_index(b.index).size)
    assert abs(info.index_size_bytes - serialized) < 4096, (info.index_size_bytes, serialized)
    codes = {None: 4 * DIM, "int8": DIM, "fp16": 2 * DIM, "pq": DIM // 4}[quant]
    assert info.extra["vector_codes_bytes"] == N * codes
    if quant is not None and rescore:
        assert info.extra["rescore_vectors_bytes"] == N * 4 * DIM


def test_qdrant_edge_index_size_counts_vectors_quantized_copy_and_graph(data):
    pytest.importorskip("qdrant_edge")
    from bench.backends.qdrant_edge import QdrantEdgeBackend, QdrantEdgeOptions

    x, _, _ = data
    sizes = {}
    for quant in (None, "int8", "fp16"):
        with tempfile.TemporaryDirectory() as d:
            b = QdrantEdgeBackend(QdrantEdgeOptions(), d)
            b.create(CollectionSpec("q", DIM, "cosine", IndexSpec(m=16, ef_construction=64, quantization=quant)))
            b.insert(np.arange(N, dtype=np.int64), x)
            b.wait_indexed(60)
            info = b.info()
            b.drop()
        e = info.extra
        assert info.index_size_bytes == e["vectors_bytes"] + e["quantized_bytes"] + e["graph_bytes"]
        assert e["total_on_disk_bytes"] > info.index_size_bytes and e["graph_bytes"] > 0
        sizes[quant] = e
    assert sizes[None]["quantized_bytes"] == 0 and sizes["int8"]["quantized_bytes"] >= N * DIM  # one byte a dim
    assert sizes["fp16"]["vectors_bytes"] < sizes[None]["vectors_bytes"]  # half-precision storage
