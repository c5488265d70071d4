"""End to end: `bench run` on each embedded adapter writes both parquet files with every trial and a trimmed
summary, and the recall it reports is checked against the harness' own ground truth."""

import json

import pyarrow.parquet as pq
import pytest

SMALL = ["--set", "dataset.n=3000", "--set", "dataset.queries=60", "--set", "run.min_operations=1", "--set", "dataset.dim=96",
         "--set", "search.ef_search=[16, 64]", "--set", "run.warmup_s=0.2", "--trials", "3"]


@pytest.mark.parametrize("backend", ["qdrant-edge", "faiss", "chroma"])
def test_run_embedded_backend_writes_results(bench_cli, tmp_path, backend):
    p = bench_cli("run", "--backend", backend, "--workload", "ann-smoke", *SMALL, "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    run_dir = tmp_path / out["results"]
    trials = pq.read_table(run_dir / "trials.parquet").to_pylist()
    summary = pq.read_table(run_dir / "summary.parquet").to_pylist()
    assert sorted((r["ef_search"], r["trial"]) for r in trials) == [(16, 0), (16, 1), (16, 2), (64, 0), (64, 1), (64, 2)]
    assert {r["ef_search"] for r in summary} == {16, 64}
    for r in trials:
        assert r["status"] == "ok" and r["count"] == 60 and r["errors"] == 0
        _percentiles_in_order(r)
        assert r["qps"] > 0 and r["hdr"]
        assert r["backend"] == backend and r["dataset_n"] == 3000 and r["dataset_dim"] == 96
        assert r["git_commit"] and r["host_cores"] >= 1 and r["backend_client_version"]
        built = json.loads(r["index_built"])
        assert built["kind"] in ("hnsw", "flat", "plain")
    by_ef = {r["ef_search"]: r for r in summary}
    assert by_ef[64]["recall"] >= 0.9
    assert by_ef[64]["recall"] >= by_ef[16]["recall"] - 0.02
    assert by_ef[64]["n_trials"] == 3 and by_ef[64]["n_kept"] == 1
    run_json = json.loads((run_dir / "run.json").read_text())
    assert run_json["status"] == "complete"


def test_run_prints_table_and_null_backend_measures_the_harness(bench_cli, tmp_path):
    p = bench_cli("run", "--backend", "null", "--workload", "ann-smoke", *SMALL, "--quiet")
    assert p.returncode == 0, p.stderr
    assert "QPS" in p.stdout and "P99.9" in p.stdout and "recall" in p.stdout
    assert "null backend stores and indexes nothing" in p.stdout  # the substitution is printed, not hidden
    (run_dir,) = (tmp_path / "results").iterdir()
    summary = pq.read_table(run_dir / "summary.parquet").to_pylist()
    assert all(r["recall"] == 0.0 for r in summary)


def test_two_runs_never_overwrite_each_other(bench_cli, tmp_path):
    for _ in range(2):
        assert bench_cli("run", "--backend", "null", "--workload", "ann-smoke", *SMALL, "--quiet").returncode == 0
    assert len(list((tmp_path / "results").iterdir())) == 2
    p = bench_cli("run", "--backend", "null", "--workload", "ann-smoke", *SMALL, "--quiet", "--run-id", "same")
    assert p.returncode == 0
    p = bench_cli("run", "--backend", "null", "--workload", "ann-smoke", *SMALL, "--quiet", "--run-id", "same")
    assert p.returncode == 2 and "already exists" in p.stderr


def _percentiles_in_order(r: dict) -> None:
    """The percentiles a trial reports are ordered; those its samples cannot support are withheld, and named."""
    names = ("p50_us", "p90_us", "p99_us", "p999_us", "max_us")
    shown = [r[f] for f in names if r[f] is not None]
    assert r["p50_us"] is not None and shown == sorted(shown)
    withheld = {f for f in names[:-1] if r[f] is None}
    assert withheld == set(filter(None, (r["percentiles_withheld"] or "").split(",")))
