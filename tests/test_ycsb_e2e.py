"""YCSB workloads through `bench run`: rows per operation kind plus the total, five trials, seeded streams,
search under writes, concurrency on threads and on processes, and the error threshold."""

import json

import pyarrow.parquet as pq
import pytest
from backend_options import server_options

from bench.metrics.hdr import min_samples

SMALL_DATA = ["--set", "dataset.n=2000", "--set", "dataset.dim=64", "--set", "dataset.queries=50", "--set", "run.min_operations=1",
              "--set", "dataset.holdout=500", "--set", "run.warmup_s=0.1",
              "--set", "index.m=8", "--set", "index.ef_construction=40"]
TINY = [*SMALL_DATA, "--set", "run.duration_s=0.3"]

EXPECTED_OPS = {"ycsb-a": {"read", "update"}, "ycsb-b": {"read", "update"}, "ycsb-c": {"read"},
                "ycsb-d": {"read", "insert"}, "ycsb-e": {"scan", "insert"}, "ycsb-f": {"read", "read-modify-write"}}


def _run(bench_cli, tmp_path, *args):
    p = bench_cli("run", *args, "--json")
    out = json.loads(p.stdout) if p.stdout.strip().startswith("{") else None
    return p, out


@pytest.mark.parametrize("workload", sorted(EXPECTED_OPS))
def test_ycsb_core_workloads_on_qdrant_edge(bench_cli, tmp_path, workload):
    p, out = _run(bench_cli, tmp_path, "--backend", "qdrant-edge", "--workload", workload, *TINY)
    assert p.returncode == 0, p.stderr
    trials = pq.read_table(tmp_path / out["results"] / "trials.parquet").to_pylist()
    ops = {r["op"] for r in trials}
    assert ops == EXPECTED_OPS[workload] | {"total"}
    for op in ops:
        rows = [r for r in trials if r["op"] == op]
        assert sorted(r["trial"] for r in rows) == [0, 1, 2, 3, 4]
        for r in rows:  # each reported percentile in order; one its samples cannot support is withheld
            shown = [r[f] for f in ("p50_us", "p90_us", "p99_us", "p999_us", "max_us") if r[f] is not None]
            assert r["qps"] > 0 and shown == sorted(shown)
            # P50 is withheld exactly when the op has too few samples (a rare op in a short trial on a busy host)
            assert (r["p50_us"] is None) == (r["count"] < min_samples(50.0)), (op, r["count"], r["p50_us"])
    for t in range(5):
        parts = [r["count"] for r in trials if r["trial"] == t and r["op"] != "total"]
        (total,) = [r["count"] for r in trials if r["trial"] == t and r["op"] == "total"]
        assert sum(parts) == total
    summary = pq.read_table(tmp_path / out["results"] / "summary.parquet").to_pylist()
    assert {r["op"] for r in summary} == ops and all(r["n_trials"] == 5 and r["n_kept"] == 3 for r in summary)


def test_search_under_writes_measures_recall_and_visibility(bench_cli, tmp_path):
    p, out = _run(bench_cli, tmp_path, "--backend", "qdrant-edge", "--workload", "ycsb-search-under-writes", *TINY,
                  "--trials", "2", "--set", "run.duration_s=1.0")
    assert p.returncode == 0, p.stderr
    trials = pq.read_table(tmp_path / out["results"] / "trials.parquet").to_pylist()
    search = [r for r in trials if r["op"] == "search"]
    assert {r["op"] for r in trials} == {"search", "update", "total"}
    for r in search:
        assert r["recall"] is not None and r["recall"] > 0.8  # against ground truth that follows the updates
        assert r["visibility_probes"] > 0 and r["visibility_missed"] == 0
        # the latency percentiles' sample floor: a median from 20 probes, a P99 from 1,000
        assert (r["visibility_p50_us"] is None) == (r["visibility_probes"] < min_samples(50.0)), r
        assert (r["visibility_p99_us"] is None) == (r["visibility_probes"] < min_samples(99.0)), r


def test_search_under_writes_recall_follows_updates(tmp_path):
    """The ground truth follows acknowledged updates: a search that returns an updated record's new
    neighbourhood scores as right, the same ids scored against the stale base vectors do not."""
    import numpy as np

    from bench.metrics.recall import recall_under_updates
    from bench.results.worker import WorkerResult

    rng = np.random.default_rng(0)
    base = rng.standard_normal((100, 8)).astype(np.float32)
    holdout = rng.standard_normal((10, 8)).astype(np.float32)
    q = holdout[:1] + 0.01  # a query right next to holdout row 0

    class DS:
        metric = "l2"

    ds = DS()
    ds.base, ds.holdout, ds.queries = base, holdout, q

    class State:
        before = {}
        trial_log = [(100, 42, 0)]  # at t=100 record 42 got holdout row 0

    r = WorkerResult(worker=0, started_wall=0, ended_wall=1)
    r.search_queries = np.array([0])
    r.search_started = np.array([200])  # after the update: record 42 is the nearest
    r.search_ids = np.array([[42]])
    assert recall_under_updates([r], State, ds, 1) == 1.0
    r.search_started = np.array([50])  # before the update: 42 is not the nearest
    assert recall_under_updates([r], State, ds, 1) == 0.0


@pytest.mark.parametrize("concurrency", [1, 2, 4])
def test_concurrency_in_process_threads(bench_cli, tmp_path, concurrency):
    p, out = _run(bench_cli, tmp_path, "--backend", "qdrant-edge", "--workload", "ycsb-a", *TINY,
                  "--trials", "1", "--concurrency", str(concurrency))
    assert p.returncode == 0, p.stderr
    (total,) = [r for r in pq.read_table(tmp_path / out["results"] / "trials.parquet").to_pylist() if r["op"] == "total"]
    assert total["concurrency"] == concurrency and total["count"] > 0 and total["errors"] == 0


@pytest.mark.server
@pytest.mark.parametrize("concurrency", [1, 2, 4])
def test_concurrency_server_processes(bench_cli, tmp_path, concurrency):
    opts = server_options("chroma-server")
    p, out = _run(bench_cli, tmp_path, "--backend", "chroma-server", "--workload", "ycsb-a", *TINY,
                  "--trials", "1", "--concurrency", str(concurrency),
                  *[f"--set=backend.{k}={json.dumps(v)}" for k, v in opts.items()])
    assert p.returncode == 0, p.stderr
    rows = pq.read_table(tmp_path / out["results"] / "trials.parquet").to_pylist()
    (total,) = [r for r in rows if r["op"] == "total"]
    assert total["concurrency"] == concurrency and total["count"] > 0 and total["errors"] == 0
    assert total["client_cpu_cores"] is not None and total["client_limited"] is not None  # measured per worker
    assert total["server_rss_peak_bytes"] and total["server_rss_peak_bytes"] > 0  # sampled by listening port


def test_error_threshold_marks_trials_failed_and_still_writes_them(bench_cli, tmp_path):
    p, out = _run(bench_cli, tmp_path, "--backend", "fake-slow", "--workload", "ycsb-a", *TINY, "--trials", "2",
                  "--set", "backend.fail_every=10", "--set", "backend.latency_us=50")
    assert p.returncode == 1  # finished, but with failed trials
    rows = pq.read_table(tmp_path / out["results"] / "trials.parquet").to_pylist()
    total = [r for r in rows if r["op"] == "total"]
    assert len(total) == 2
    for r in total:
        assert r["status"] == "failed" and "error rate" in r["status_reason"]
        assert abs(r["error_rate"] - 0.1) < 0.02 and r["hdr_failed"]
        assert json.loads(r["error_samples"])[0].endswith("injected failure")


def test_same_seed_same_stream_counts(bench_cli, tmp_path):
    """Operation streams are seeded: with a fixed operation count, two runs issue the same mix."""
    args = ["--backend", "null", "--workload", "ycsb-b", *SMALL_DATA, "--trials", "1", "--set", "run.operations=5000",
            "--set", "run.duration_s=1000"]
    counts = []
    for _ in range(2):
        p, out = _run(bench_cli, tmp_path, *args)
        assert p.returncode == 0, p.stderr
        rows = pq.read_table(tmp_path / out["results"] / "trials.parquet").to_pylist()
        counts.append(sorted((r["op"], r["count"]) for r in rows))
    assert counts[0] == counts[1]
    assert dict(counts[0])["total"] == 5000

