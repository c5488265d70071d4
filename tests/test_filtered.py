"""Filtered ANN: payload fields with exact selectivities, filtered ground truth, and `bench run` end to end with
the filter pushed into real engines (qdrant-edge in-process, pgvector on its server)."""

from __future__ import annotations

import json
import tempfile
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest
from backend_options import server_options

from bench.backends.base import CollectionSpec, SearchParams
from bench.backends.query import Eq, Range, evaluate
from bench.datasets import filtered
from bench.datasets.exact import exact_topk
from bench.metrics.recall import recall_at_k

SMALL = ["--set", "dataset.n=3000", "--set", "dataset.queries=40", "--set", "run.min_operations=1", "--set", "dataset.dim=48",
         "--set", "search.ef_search=[128]", "--set", "run.warmup_s=0.1", "--trials", "3"]
SELS = [0.5, 0.1, 0.01, 0.001]


@pytest.mark.parametrize("n", [1000, 3000, 10_000, 12_345])
def test_generated_selectivities_are_exact_and_seeded(n):
    cases = filtered.cases(SELS)
    assert [c.field for c in cases] == ["sel_50", "sel_10", "sel_1", "sel_0_1"]
    masks = filtered.masks(n, cases, seed=7)
    for c in cases:
        assert int(masks[c.field].sum()) == round(c.selectivity * n)
    again = filtered.masks(n, cases, seed=7)
    other = filtered.masks(n, cases, seed=8)
    assert all(np.array_equal(masks[f], again[f]) for f in masks)
    assert not np.array_equal(masks["sel_50"], other["sel_50"])
    ids = np.arange(5, 25, dtype=np.int64)
    pl = filtered.payloads(ids, masks)
    assert pl[3] == {f: int(masks[f][8]) for f in masks}
    assert filtered.payload_fields(cases) == {f: "int" for f in masks}


def test_range_cases_keep_exactly_round_s_n_records_of_one_seeded_rank_field():
    n = 3001
    cases = filtered.cases(SELS, kind="range", n=n)
    assert {c.field for c in cases} == {"rank"} and {c.kind for c in cases} == {"range"}
    assert [c.value for c in cases] == [round(s * n) for s in SELS] == [1500, 300, 30, 3]
    assert [c.label for c in cases] == ["rank<1500", "rank<300", "rank<30", "rank<3"]
    assert cases[1].query == Range("rank", lt=300) and cases[1].selectivity == 0.1
    assert len({c.key for c in cases}) == len(cases)  # one field, distinct keys (file names, result stems)
    cols = filtered.columns(n, cases, seed=7)
    assert list(cols) == ["rank"] and sorted(cols["rank"].tolist()) == list(range(n))  # a permutation
    masks = filtered.masks(n, cases, seed=7)
    for c in cases:
        m = masks[c.key]
        assert int(m.sum()) == round(c.selectivity * n)
        assert np.array_equal(m, cols["rank"] < c.value) and np.array_equal(m, evaluate(c.query, cols))
    assert not (masks[cases[2].key] & ~masks[cases[1].key]).any()  # rarer ranges keep a subset
    assert np.array_equal(filtered.masks(n, cases, seed=7)[cases[0].key], masks[cases[0].key])
    assert not np.array_equal(filtered.masks(n, cases, seed=8)[cases[0].key], masks[cases[0].key])
    assert filtered.payload_fields(cases) == {"rank": "int"}
    ids = np.arange(5, 25, dtype=np.int64)
    assert filtered.payloads(ids, cols)[3] == {"rank": int(cols["rank"][8])}
    with pytest.raises(ValueError, match="record count"):
        filtered.cases(SELS, kind="range")
    with pytest.raises(ValueError, match="kind"):
        filtered.FilterCase("x", 0.1, kind="grid")


def test_equality_cases_are_unchanged_by_the_range_kind():
    eq = filtered.cases([0.1], kind="eq")
    assert eq == filtered.cases([0.1]) == [filtered.FilterCase("sel_10", 0.1)]
    c = eq[0]
    assert (c.kind, c.key, c.label, c.query) == ("eq", "sel_10", "sel_10=1", Eq("sel_10", 1))
    assert np.array_equal(filtered.masks(1000, eq, 3)["sel_10"], filtered.mask_for(1000, 0.1, 3))


def _tiny_ds(tmp_path, n=600, nq=8, dim=8):
    rng = np.random.default_rng(2)
    return SimpleNamespace(cache_dir=tmp_path, content_hash="h", metric="l2", n=n,
                           base_rows=rng.standard_normal((n, dim)).astype(np.float32),
                           queries=rng.standard_normal((nq, dim)).astype(np.float32))


def test_range_ground_truth_is_exact_and_never_shares_a_cache_file_with_equality(tmp_path):
    ds = _tiny_ds(tmp_path)
    (eq,) = filtered.cases([0.1])
    (rg,) = filtered.cases([0.1], kind="range", n=ds.n)
    gt = filtered.ground_truth(ds, 10, rg, None, seed=4)  # the mask follows from the case
    keep = filtered.masks(ds.n, [rg], 4)[rg.key]
    assert np.array_equal(gt, exact_topk(ds.base_rows, ds.queries, 10, "l2", mask=keep))
    assert set(gt.ravel().tolist()) <= set(np.flatnonzero(keep).tolist())
    gt_eq = filtered.ground_truth(ds, 10, eq, filtered.masks(ds.n, [eq], 4)["sel_10"], seed=4)
    files = sorted(p.name for p in (tmp_path / "groundtruth").iterdir())
    assert files == ["h-l2-k10-range-rank_lt60-n600-seed4.npy", "h-l2-k10-sel_10-n600-seed4.npy"]
    assert not np.array_equal(gt, gt_eq)
    assert np.array_equal(filtered.ground_truth(ds, 10, rg, None, seed=4), gt)  # read back from the cache


def test_filtered_ground_truth_stays_inside_the_mask_and_recall_counts_what_exists():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((500, 8)).astype(np.float32)
    q = rng.standard_normal((6, 8)).astype(np.float32)
    mask = filtered.mask_for(500, 0.01, seed=1)  # 5 records
    gt = exact_topk(base, q, 10, "l2", mask=mask)
    assert set(gt[gt >= 0].tolist()) <= set(np.flatnonzero(mask).tolist())
    assert ((gt >= 0).sum(axis=1) == 5).all()
    assert recall_at_k(gt, gt, 10) == 1.0  # all 5 found is full recall, not 0.5
    half = gt.copy()
    half[:, 2:] = -1
    assert recall_at_k(half, gt, 10) == pytest.approx(0.4)


def test_qdrant_edge_search_returns_only_records_the_filter_keeps():
    pytest.importorskip("qdrant_edge")
    from bench.backends.qdrant_edge import QdrantEdgeBackend, QdrantEdgeOptions

    n = 2000
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, 16)).astype(np.float32)
    cases = filtered.cases([0.1, 0.01])
    masks = filtered.masks(n, cases, seed=3)
    with tempfile.TemporaryDirectory() as d:
        b = QdrantEdgeBackend(QdrantEdgeOptions(), d)
        b.create(CollectionSpec("f", 16, "l2", payload_fields=filtered.payload_fields(cases)))
        ids = np.arange(n, dtype=np.int64)
        b.insert(ids, x, filtered.payloads(ids, masks))
        b.wait_indexed(60)
        for c in cases:
            got = b.search(x[0], 10, SearchParams(ef_search=64, filter=c.query))
            assert len(got) == 10 and all(masks[c.field][i] for i in got)
        b.drop()


def _run(bench_cli, tmp_path, backend):
    p = bench_cli("run", "--backend", backend, "--workload", "ann-filtered", *SMALL, "--json")
    assert p.returncode == 0, p.stderr
    run_dir = tmp_path / json.loads(p.stdout)["results"]
    return (pq.read_table(run_dir / "trials.parquet").to_pylist(),
            pq.read_table(run_dir / "summary.parquet").to_pylist())


@pytest.mark.parametrize("backend", ["qdrant-edge", "pgvector"])
def test_run_filtered_workload_rows_per_selectivity(bench_cli, tmp_path, backend):
    if backend == "pgvector":
        server_options("pgvector")
    trials, summary = _run(bench_cli, tmp_path, backend)
    assert sorted((r["selectivity"], r["trial"]) for r in trials) == sorted((s, t) for s in SELS for t in range(3))
    assert {r["filter"] for r in trials} == {"sel_50=1", "sel_10=1", "sel_1=1", "sel_0_1=1"}
    by_sel = {r["selectivity"]: r for r in summary}
    assert set(by_sel) == set(SELS)
    for s in SELS:
        r = by_sel[s]
        assert r["n_trials"] == 3 and r["count"] == 3 * 40 and r["errors"] == 0
        # against exact ground truth over the kept records only: an unfiltered search would score ~s here
        assert r["recall"] >= 0.8, (s, r["recall"])


def test_backend_without_filters_is_skipped_with_a_reason(bench_cli):
    p = bench_cli("run", "--backend", "faiss", "--workload", "ann-filtered", *SMALL, "--quiet")
    assert p.returncode == 2
    assert "faiss" in p.stderr and "filter" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("bad, words", [
    (["--set", "filter.selectivities=[0]"], "selectivities"),
    (["--set", "filter.selectivities=[0.0001]"], "select no record"),
    (["--set", "filter.mode='grid'"], "filter.mode"),
])
def test_bad_filter_table_is_a_user_error(bench_cli, bad, words):
    p = bench_cli("run", "--backend", "qdrant-edge", "--workload", "ann-filtered", *SMALL, *bad, "--quiet")
    assert p.returncode == 2 and words in p.stderr and "Traceback" not in p.stderr, p.stderr
