"""Quality beyond recall@k (recall@1/10/100, NDCG@k, ann-benchmarks' rel), computed from the kept ids so old runs
are rescored, and cost (price per hour -> queries per currency unit, cost of a million queries) in compare and
report; end to end on qdrant-edge, pgvector and chroma-server."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from backend_options import BACKEND_OPTIONS, no_server
from inproc import bench

from bench.analysis import cost
from bench.metrics import quality

# -- the figures, by hand ------------------------------------------------------------------------------------


def test_recall_at_cutoffs_and_absent_past_k():
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[2, 1, 9, 4], [9, 5, 6, 7]])
    r = quality.recall_at(found, truth, 4)
    assert r["recall_at_1"] == pytest.approx(0.0)  # neither first id is the exact nearest
    assert r["recall_at_10"] is None and r["recall_at_100"] is None  # k = 4: not measured, not faked
    r = quality.recall_at(np.tile(found, (1, 25))[:, :100], np.tile(truth, (1, 25))[:, :100], 100)
    assert r["recall_at_10"] is not None and r["recall_at_100"] is not None


def test_ndcg_binary_relevance_by_returned_position():
    truth = np.array([[1, 2, 3]])
    assert quality.ndcg(np.array([[1, 2, 3]]), truth, 3)[0] == pytest.approx(1.0)
    assert quality.ndcg(np.array([[3, 2, 1]]), truth, 3)[0] == pytest.approx(1.0)  # same set, same positions hit
    miss_first = quality.ndcg(np.array([[9, 2, 3]]), truth, 3)[0]
    miss_last = quality.ndcg(np.array([[1, 2, 9]]), truth, 3)[0]
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert miss_first == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / ideal)
    assert miss_last == pytest.approx((1 + 1 / math.log2(3)) / ideal) and miss_last > miss_first
    # fewer qualifying records than k (a filtered search): the ideal counts only those
    assert quality.ndcg(np.array([[7, -1, -1]]), np.array([[7, -1, -1]]), 3)[0] == pytest.approx(1.0)


def test_distance_ratio_is_ann_benchmarks_rel():
    rows = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]], dtype=np.float32)
    q = np.array([[0.0, 0.0]], dtype=np.float32)
    take = lambda ids: rows[ids]  # noqa: E731
    truth = np.array([[0, 1]])
    assert quality.distance_ratio(np.array([[0, 1]]), truth, 2, q, take, "l2") == pytest.approx(1.0)
    assert quality.distance_ratio(np.array([[0, 3]]), truth, 2, q, take, "l2") == pytest.approx(3.0)
    assert quality.distance_ratio(np.array([[1, 2]]), np.array([[1, 2]]), 2, q + 0.5, take, "ip") is None
    # a short answer is left out rather than counted as closer
    assert quality.distance_ratio(np.array([[0, -1]]), truth, 2, q, take, "l2") is None
    cos_rows = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=np.float32)
    got = quality.distance_ratio(np.array([[1]]), np.array([[0]]), 1, np.array([[1.0, 0.1]], dtype=np.float32),
                                 lambda ids: cos_rows[ids], "cosine")
    assert got > 1.0


def test_cost_figures_and_currencies():
    per_unit, per_m = cost.figures({"qps": 100.0, "price_per_hour": 3.6, "currency": "EUR"})
    assert per_unit == pytest.approx(100_000.0) and per_m == pytest.approx(10.0)
    assert cost.figures({"qps": 100.0, "price_per_hour": None}) == (None, None)
    assert cost.figures({"qps": float("nan"), "price_per_hour": 1.0}) == (None, None)
    rows = [{"price_per_hour": 1.0, "currency": "USD"}, {"price_per_hour": 2.0, "currency": "EUR"}, {"qps": 1.0}]
    cur = cost.currencies(rows)
    assert cur == ["EUR", "USD"] and cost.headings(cur) == ["queries/unit", "cost/M queries"]
    assert cost.cells({"qps": 100.0, "price_per_hour": 3.6, "currency": "EUR"}, cur)[1] == "10 EUR"
    assert cost.headings(["USD"]) == ["queries/USD", "USD/M queries"] and cost.note(["USD"]) == []
    assert "not comparable" in cost.note(cur)[0]


# -- end to end ------------------------------------------------------------------------------------------------

SMALL = ["--set", "dataset.n=1500", "--set", "dataset.queries=40", "--set", "dataset.dim=32",
         "--set", "search.ef_search=[64]", "--set", "run.warmup_s=0", "--set", "run.min_operations=1",
         "--trials", "1", "--json"]
ENGINES = {"qdrant-edge": ["--price-per-hour", "0.5"],
           "pgvector": ["--price-per-hour", "1.2", "--currency", "EUR"],
           "chroma-server": ["--set", "backend.ef_search=64", "--price-per-hour", "0.8"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality")
    out = {}
    for backend, extra in ENGINES.items():
        reason = BACKEND_OPTIONS[backend]()
        if isinstance(reason, str):
            out[backend] = reason
            continue
        p = bench("run", "-b", backend, "-w", "ann-smoke", *SMALL, "--set", "search.k=100", *extra,
                  "--results-dir", str(root / backend), "--cache-dir", str(root / "cache"))
        assert p.returncode == 0, p.stderr[-2000:]
        out[backend] = Path(json.loads(p.stdout)["results"])
    p = bench("run", "-b", "qdrant-edge", "-w", "ann-smoke", *SMALL, "--results-dir", str(root / "k10"),
              "--cache-dir", str(root / "cache"))
    assert p.returncode == 0, p.stderr[-2000:]
    out["k10"] = Path(json.loads(p.stdout)["results"])
    out["cache"] = root / "cache"
    return out


@pytest.mark.parametrize("backend", list(ENGINES))
def test_runs_keep_quality_beyond_recall_and_their_price(runs, backend):
    if isinstance(runs[backend], str):
        no_server(backend, runs[backend])
    (r,) = pq.read_table(runs[backend] / "summary.parquet").to_pylist()
    assert r["k"] == 100
    for f in ("recall_at_1", "recall_at_10", "recall_at_100", "ndcg"):
        assert 0.5 <= r[f] <= 1.0, (f, r[f])
    assert r["recall_at_100"] == pytest.approx(r["recall"])  # k = 100: the same figure
    assert 1.0 <= r["distance_ratio"] < 1.2  # cosine: returned ids are near the exact ones, never nearer
    assert r["price_per_hour"] == float(ENGINES[backend][ENGINES[backend].index("--price-per-hour") + 1])
    assert r["currency"] == ("EUR" if backend == "pgvector" else "USD")
    assert "price_per_hour" in json.loads(r["backend_options"])


def test_recall_at_100_is_absent_when_k_is_smaller(runs):
    (r,) = pq.read_table(runs["k10"] / "summary.parquet").to_pylist()
    assert r["k"] == 10 and r["recall_at_10"] == pytest.approx(r["recall"]) and r["recall_at_100"] is None
    assert r["price_per_hour"] is None and r["currency"] is None


def test_rescore_brings_quality_to_a_run_made_before_it(runs):
    """An old run (its trials without the new columns) gets them back from its kept ids."""
    run = runs["qdrant-edge"]
    t = pq.read_table(run / "trials.parquet")
    before = t.to_pylist()[0]
    pq.write_table(t.drop_columns(["recall_at_1", "recall_at_10", "recall_at_100", "ndcg", "distance_ratio"]),
                   run / "trials.parquet")
    (run / "trials.parquet.sha256").unlink()  # written before bench kept checksums, as an old run's file was
    p = bench("rescore", str(run), "--cache-dir", str(runs["cache"]))
    assert p.returncode == 0, p.stderr
    after = pq.read_table(run / "trials.parquet").to_pylist()[0]
    for f in ("recall_at_1", "recall_at_10", "recall_at_100", "ndcg", "distance_ratio"):
        assert after[f] == pytest.approx(before[f])


def test_compare_shows_quality_and_cost_and_says_when_currencies_differ(runs):
    dirs = [str(runs[b]) for b in ENGINES if not isinstance(runs[b], str)] + [str(runs["k10"])]
    p = bench("compare", *dirs, "--format", "markdown")
    assert p.returncode == 0, p.stderr
    head = next(line for line in p.stdout.splitlines() if line.startswith("| backend"))
    for h in ("R@1", "R@10", "R@100", "NDCG@k", "rel"):
        assert f"| {h} |" in head
    if isinstance(runs["pgvector"], str):
        assert "| queries/USD | USD/M queries |" in head
    else:  # EUR beside USD: no shared currency heading, each cell names its own, and a note says so
        assert "| queries/unit | cost/M queries |" in head and " EUR |" in p.stdout and " USD |" in p.stdout
        assert "not comparable" in p.stdout
    k10 = next(line for line in p.stdout.splitlines() if "| qdrant-edge |" in line and "| 10 |" in line)
    assert k10.count("| - |") >= 3  # no R@100, no price: shown as absent


@pytest.mark.parametrize("bad, words", [(["--price-per-hour", "-1"], "--price-per-hour"),
                                        (["--price-per-hour", "1", "--currency", "usd"], "--currency")])
def test_bad_price_is_one_sentence(bad, words, tmp_path):
    p = bench("run", "-b", "qdrant-edge", "-w", "ann-smoke", *SMALL, *bad, "--results-dir", str(tmp_path / "r"))
    assert p.returncode == 2 and words in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
