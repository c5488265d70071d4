"""Filtered ANN: payload fields with exact selectivities, filtered ground truth, and `bench run` end to end with
the filter pushed into real engines (qdrant-edge in-process, pgvector on its server)."""

from __future__ import annotations

import json
import tempfile

import numpy as np
import pyarrow.parquet as pq
import pytest
from backend_options import BACKEND_OPTIONS

from bench.backends.base import CollectionSpec, SearchParams
from bench.datasets import filtered
from bench.datasets.exact import exact_topk
from bench.metrics.recall import recall_at_k

SMALL = ["--set", "dataset.n=3000", "--set", "dataset.queries=40", "--set", "dataset.dim=48",
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
        reason = BACKEND_OPTIONS["pgvector"]()
        if isinstance(reason, str):
            pytest.skip(reason)
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
