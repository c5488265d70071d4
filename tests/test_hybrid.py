"""Hybrid (BM25 + dense) search: synthetic texts, the exact BM25 and fusion reference against hand-computed
values, `bench run --workload ann-hybrid` end to end on real engines, and refusals with a reason."""

from __future__ import annotations

import json
import math
import tempfile

import numpy as np
import pyarrow.parquet as pq
import pytest

from bench.backends.base import CollectionSpec, HybridSpec, SearchParams
from bench.datasets import hybrid, texts

SMALL = ["--set", "dataset.n=2000", "--set", "dataset.queries=40", "--set", "run.min_operations=1", "--set", "dataset.dim=48",
         "--set", "search.ef_search=[128]", "--set", "run.warmup_s=0.1", "--trials", "3"]

# A corpus small enough to check by hand: N = 4, lengths 3, 2, 4, 1, avgdl = 10 / 4 = 2.5.
DOCS = ["bako tumi bako", "tumi rata", "rata rata rata bako", "zemo"]
QUERY = "bako rata"
# cosine against the query [1, 0]: 1, 0.6, 0, -1
VECS = np.array([[1, 0], [0.6, 0.8], [0, 1], [-1, 0]], dtype=np.float32)


def _hand_bm25() -> list[float]:
    """BM25 of QUERY over DOCS with k1 = 1.2, b = 0.75, worked out term by term."""
    idf = math.log(1 + (4 - 2 + 0.5) / (2 + 0.5))  # "bako" and "rata" are each in 2 of the 4 documents: ln 2

    def part(tf, dl):
        return tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * dl / 2.5))

    return [idf * part(2, 3),  # doc 0: bako x2
            idf * part(1, 2),  # doc 1: rata x1
            idf * (part(3, 4) + part(1, 4)),  # doc 2: rata x3, bako x1
            0.0]


def test_exact_bm25_matches_the_hand_computed_scores():
    idx = hybrid.build_bm25(DOCS)
    assert idx.avgdl == 2.5
    got = idx.scores([QUERY])[0]
    assert got == pytest.approx(_hand_bm25(), rel=1e-12)
    # the same values, written out: ln 2 * 4.4 / 3.38 etc.
    assert got[2] == pytest.approx(math.log(2) * (6.6 / 4.74 + 2.2 / 2.74), rel=1e-12)
    # a repeated query word counts once; an unknown word adds nothing; case is folded
    assert idx.scores(["BAKO bako rata nowhere"])[0] == pytest.approx(got)


def test_rrf_and_weighted_fusion_on_the_hand_example():
    idx = hybrid.build_bm25(DOCS)
    q = np.array([[1, 0]], dtype=np.float32)
    # candidates = 3: dense top 3 = [0, 1, 2]; BM25 top 3 = [2, 0, 1] (doc 3 scores 0: not a candidate)
    rrf = hybrid.reference(VECS, q, "cosine", idx, [QUERY], k=3, candidates=3, fusion="rrf", alpha=None, norm=None)
    # doc 0: 1/61 + 1/62; doc 2: 1/63 + 1/61; doc 1: 1/62 + 1/63
    assert rrf.fused[0].tolist() == [0, 2, 1]
    assert rrf.kth[0] == pytest.approx(1 / 62 + 1 / 63)
    assert rrf.dense_topk[0].tolist() == [0, 1, 2] and rrf.bm25_topk[0].tolist() == [2, 0, 1]
    b = _hand_bm25()
    bm_norm0 = (b[0] - b[1]) / (b[2] - b[1])  # min-max over the BM25 candidates; about 0.192
    # alpha = 0.25 (dense weight): doc 2 = 0.75 * 1; doc 0 = 0.25 * 1 + 0.75 * 0.192; doc 1 = 0.25 * 0.6
    w = hybrid.reference(VECS, q, "cosine", idx, [QUERY], 3, 3, "weighted", 0.25, "minmax")
    assert w.fused[0].tolist() == [2, 0, 1]
    assert w.kth[0] == pytest.approx(0.25 * 0.6)
    assert dict(zip(w.cand_ids[0].tolist(), w.cand_scores[0].tolist(), strict=True))[0] == pytest.approx(
        0.25 + 0.75 * bm_norm0)
    # alpha = 0.75 turns it round: doc 0 = 0.75 + 0.25 * 0.192, doc 1 = 0.45, doc 2 = 0.25
    assert hybrid.reference(VECS, q, "cosine", idx, [QUERY], 3, 3, "weighted", 0.75, "minmax").fused[0].tolist() == [0, 1, 2]
    # Milvus' atan normalisation: cosine (1 + s) / 2, BM25 2 atan(s) / pi
    m = hybrid.reference(VECS, q, "cosine", idx, [QUERY], 3, 3, "weighted", 0.5, "atan")
    want = {0: 0.5 * 1.0 + 0.5 * 2 * math.atan(b[0]) / math.pi, 1: 0.5 * 0.8 + 0.5 * 2 * math.atan(b[1]) / math.pi,
            2: 0.5 * 0.5 + 0.5 * 2 * math.atan(b[2]) / math.pi}
    got = dict(zip(m.cand_ids[0].tolist(), m.cand_scores[0].tolist(), strict=True))
    assert {i: got[i] for i in want} == pytest.approx(want)


def test_agreement_counts_ties_at_the_kth_score_and_misses():
    idx = hybrid.build_bm25(DOCS)
    q = np.array([[1, 0]], dtype=np.float32)
    # candidates = 1: dense says doc 0, BM25 says doc 2; both score 1/61: a tie for k = 1
    ref = hybrid.reference(VECS, q, "cosine", idx, [QUERY], 1, 1, "rrf", None, None)
    assert ref.fused[0].tolist() == [0]
    assert ref.agreement(np.array([0]), np.array([[2]]), 1) == 1.0  # the tie is not a miss
    assert ref.agreement(np.array([0]), np.array([[1]]), 1) == 0.0  # doc 1 is not a candidate at all
    ref3 = hybrid.reference(VECS, q, "cosine", idx, [QUERY], 3, 3, "rrf", None, None)
    assert ref3.agreement(np.array([0]), np.array([[0, 2, 3]]), 3) == pytest.approx(2 / 3)


def test_synthetic_texts_are_seeded_and_follow_the_vectors():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((5, 32)) * 5
    owner = rng.integers(0, 5, 3000)
    base = (centres[owner] + rng.standard_normal((3000, 32))).astype(np.float32)
    queries = (centres[owner[:50]] + rng.standard_normal((50, 32))).astype(np.float32)
    p = texts.TextParams(vocab=2000, topics=5, topic_words=20)
    docs, qs = texts.generate(base, queries, p, seed=7)
    again = texts.generate(base, queries, p, seed=7)
    other = texts.generate(base, queries, p, seed=8)
    assert (docs, qs) == again and docs != other[0]
    assert len(docs) == 3000 and len(qs) == 50
    lens = [len(d.split()) for d in docs]
    assert min(lens) >= p.words_min and max(lens) <= p.words_max
    assert all(p.query_words_min <= len(q.split()) == len(set(q.split())) <= p.query_words_max for q in qs)
    vocab = set(texts.vocabulary(2000))
    assert len(vocab) == 2000 and all(w in vocab for d in docs[:100] for w in d.split())
    assert all(w[-1] in "aou" for w in vocab)  # no stemmer suffix ends in a, o or u
    # text relevance follows the vectors: documents sharing a vector cluster share far more of the words past
    # the 50 most frequent (where the topic words are)
    common = set(texts.vocabulary(50))

    def overlap(a, b):
        return len((set(docs[a].split()) & set(docs[b].split())) - common)
    same = np.mean([overlap(i, j) for i in range(300) for j in range(i + 1, 300) if owner[i] == owner[j]])
    diff = np.mean([overlap(i, j) for i in range(300) for j in range(i + 1, 300) if owner[i] != owner[j]])
    assert same > 2 * diff


def test_qdrant_edge_hybrid_rrf_equals_the_exact_reference_on_a_full_scan():
    """Below the indexing threshold the dense side is exact, so qdrant-edge's fused list is the reference's."""
    pytest.importorskip("qdrant_edge")
    from bench.backends.qdrant_edge import QdrantEdgeBackend, QdrantEdgeOptions

    rng = np.random.default_rng(5)
    n = 500
    x = rng.standard_normal((n, 16)).astype(np.float32)
    qv = rng.standard_normal((20, 16)).astype(np.float32)
    docs, qs = texts.generate(x, qv, texts.TextParams(vocab=300, topics=5, topic_words=10), seed=1)
    idx = hybrid.build_bm25(docs)
    ref = hybrid.reference(x, qv, "cosine", idx, qs, 10, 30, "rrf", None, None)
    with tempfile.TemporaryDirectory() as d:
        b = QdrantEdgeBackend(QdrantEdgeOptions(indexing_threshold_kb=1_000_000), d)
        b.create(CollectionSpec("h", 16, "cosine", payload_fields={"text": "text"},
                                hybrid=HybridSpec(avgdl=idx.avgdl)))
        ids = np.arange(n, dtype=np.int64)
        b.insert(ids, x, [{"text": t} for t in docs])
        built = b.wait_indexed(60)
        assert built.params["hybrid"]["text_index"]["scoring"].endswith("Bm25")
        found = np.array([b.search(qv[i], 10, SearchParams(ef_search=64, text=qs[i], fusion="rrf", candidates=30))
                          for i in range(len(qs))])
        b.drop()
    # equal BM25 scores within one side (same term counts, same length) take either order in the engine, from
    # one run to the next, and then their RRF scores differ: at most two such swaps in these 200 results
    assert ref.agreement(np.arange(len(qs)), found, 10) >= 0.99 - 1e-9


def _run(bench_cli, tmp_path, backend, *extra):
    p = bench_cli("run", "--backend", backend, "--workload", "ann-hybrid", *SMALL, *extra, "--json")
    assert p.returncode == 0, p.stderr
    run_dir = tmp_path / json.loads(p.stdout)["results"]
    return (pq.read_table(run_dir / "trials.parquet").to_pylist(), pq.read_table(run_dir / "summary.parquet").to_pylist(),
            json.loads((run_dir / "run.json").read_text()), p.stderr)


def test_run_hybrid_on_qdrant_edge_rrf_rows_and_weighted_skipped(bench_cli, tmp_path):
    trials, summary, run, err = _run(bench_cli, tmp_path, "qdrant-edge")
    assert {(r["fusion"], r["alpha"]) for r in trials} == {("rrf", None)}
    assert sorted(r["trial"] for r in trials) == [0, 1, 2]
    (s,) = summary
    assert s["count"] == 3 * 40 and s["errors"] == 0
    assert s["recall"] >= 0.9, s["recall"]
    assert 0 < s["recall_dense"] < 1 and 0 < s["recall_bm25"] < 1  # fusion is neither side alone
    assert "weighted" in err and "skipped" in err
    assert any("'weighted'" in w and "skipped" in w for w in run["warnings"])
    assert run["scenarios"]["hybrid"]["texts"] == "synthetic" and run["scenarios"]["hybrid"]["bm25"]["k1"] == 1.2
    assert json.loads(s["index_built"])["params"]["hybrid"]["bm25"].startswith("engine")


def test_hybrid_on_wordnet_uses_its_real_texts(bench_cli, tmp_path):
    trials, summary, run, _ = _run(bench_cli, tmp_path, "qdrant-edge", "--set", "dataset.source='wordnet-mpnet-768'",
                                   "--set", "dataset.dim=768", "--set", "dataset.queries=40", "--set", "run.min_operations=1")
    assert run["scenarios"]["hybrid"]["texts"] == "wordnet-mpnet-768 texts"
    assert summary[0]["recall"] >= 0.8


def test_milvus_lite_hybrid_runs_rrf_and_weighted_and_analysis_keeps_them_apart(bench_cli, tmp_path):
    pytest.importorskip("milvus_lite")
    trials, summary, run, _ = _run(bench_cli, tmp_path, "milvus-lite", "--set", "hybrid.alpha=[0.3, 0.7]",
                                   "--trials", "1", "--set", "run.warmup_s=0")
    by = {(r["fusion"], r["alpha"]): r for r in summary}
    assert set(by) == {("rrf", None), ("weighted", 0.3), ("weighted", 0.7)}
    assert run["scenarios"]["hybrid"]["weighted_norm"] == "atan"
    for r in by.values():
        assert r["errors"] == 0 and r["recall"] >= 0.7, r["recall"]
    built = json.loads(summary[0]["index_built"])["params"]["hybrid"]
    assert [(s["k1"], s["b"]) for s in built["segment_scorers"]] == [(1.2, 0.75)] * len(built["segment_scorers"])
    p = bench_cli("compare", "results", "--format", "csv")
    assert p.returncode == 0, p.stderr
    header, *rows = p.stdout.split("\n\n")[0].strip().split("\n")
    cols = header.split(",")
    keys = sorted((r.split(",")[cols.index("fusion")], r.split(",")[cols.index("alpha")]) for r in rows)
    assert keys == [("rrf", ""), ("weighted", "0.3"), ("weighted", "0.7")]
    md = bench_cli("compare", "results", "--format", "markdown").stdout
    assert "| weighted a=0.3 |" in md and "| rrf |" in md and "vs bm25" in md
    rep = bench_cli("report", "results", "--out", "rep")
    assert rep.returncode == 0, rep.stderr
    assert len(list((tmp_path / "rep").glob("recall-qps-ann-hybrid-*.png"))) == 1


@pytest.mark.parametrize("backend", ["faiss", "chroma", "pgvector"])
def test_backends_without_hybrid_are_skipped_with_a_reason(bench_cli, backend):
    p = bench_cli("run", "--backend", backend, "--workload", "ann-hybrid", *SMALL, "--quiet")
    assert p.returncode == 2, p.stderr
    assert backend in p.stderr and "hybrid" in p.stderr and "skipped" in p.stderr and "Traceback" not in p.stderr


def test_milvus_server_before_2_5_is_refused_naming_the_version(bench_cli):
    from backend_options import server_options

    server_options("milvus")
    p = bench_cli("run", "--backend", "milvus", "--workload", "ann-hybrid", *SMALL, "--quiet")
    assert p.returncode == 2, p.stderr
    assert "2.5" in p.stderr and "BM25" in p.stderr and "skipped" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("bad, words", [
    (["--set", "hybrid.fusion=['dbsf']"], "hybrid.fusion"),
    (["--set", "hybrid.alpha=[1.5]"], "alpha"),
    (["--set", "hybrid.candidates=5"], "candidates"),
    (["--set", "hybrid.words_min=40"], "words_min"),
    (["--set", "hybrid.texts='dataset'"], "has no texts"),
    (["--set", "hybrid.fusion=['weighted']"], "no alpha-weighted fusion"),
])
def test_bad_hybrid_table_is_a_user_error(bench_cli, bad, words):
    p = bench_cli("run", "--backend", "qdrant-edge", "--workload", "ann-hybrid", *SMALL, *bad, "--quiet")
    assert p.returncode == 2 and words in p.stderr and "Traceback" not in p.stderr, p.stderr


@pytest.mark.parametrize(("metric", "c", "k"), [("cosine", 25, 10), ("l2", 5, 5)])
def test_streamed_reference_over_small_blocks_equals_sorting_every_score(tmp_path, monkeypatch, metric, c, k):
    """The reference reads the records block by block and keeps each side's running top candidates: over a
    file read in 40-row blocks (with a filter mask, and ties) it gives what sorting each query's full score rows
    gives."""
    from bench.datasets.rows import FileRows

    rng = np.random.default_rng(11)
    n, dim, nq = 1000, 16, 30
    x = rng.standard_normal((n, dim)).astype(np.float32)
    qv = rng.standard_normal((nq, dim)).astype(np.float32)
    docs, qs = texts.generate(x, qv, texts.TextParams(vocab=300, topics=5, topic_words=10), seed=2)
    idx = hybrid.build_bm25([d for d in docs[:100] for _ in range(10)])  # BM25 ties, broken by the lower id
    mask = rng.random(n) < 0.7
    np.save(tmp_path / "x.npy", x)
    rows = FileRows.contiguous(tmp_path / "x.npy", 128, n, dim)  # the .npy header of a 2-D float32 array
    assert np.array_equal(rows.read(0, n), x)
    monkeypatch.setattr(hybrid, "_BLOCK_BYTES", 8 * 40 * dim)
    got = hybrid.reference(rows, qv, metric, idx, qs, k, c, "weighted", 0.4, "minmax", block=8, mask=mask)
    dense, bm25 = hybrid.dense_scores(x, qv, metric), idx.scores(qs)
    larger, ids = metric != "l2", np.flatnonzero(mask)
    for qi in range(nq):
        d = ids[np.lexsort((ids, -dense[qi, ids] if larger else dense[qi, ids]))][:c]
        pos = ids[bm25[qi, ids] > 0]
        b = pos[np.lexsort((pos, -bm25[qi, pos]))][:c]
        f = hybrid.fuse((d, dense[qi, d]), (b, bm25[qi, b]), "weighted", 0.4, "minmax", metric)
        want = sorted(f.items(), key=lambda kv: (-kv[1], kv[0]))
        assert got.dense_topk[qi].tolist() == d[:k].tolist()
        assert got.bm25_topk[qi, :min(k, len(b))].tolist() == b[:k].tolist()
        assert got.cand_ids[qi, :len(want)].tolist() == [i for i, _ in want]
        assert got.cand_scores[qi, :len(want)] == pytest.approx([s for _, s in want], rel=1e-12)
        assert got.fused[qi].tolist() == [i for i, _ in want[:k]]
