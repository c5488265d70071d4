"""kind = "capacity" through `bench run`: insert until a memory cap or a vector limit; vectors
held, RSS and disk at the end and per million vectors, and what ended it; the sentences it refuses with."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from backend_options import server_options

from bench.analysis.compare import compare, render
from bench.errors import UserError
from bench.run_context import RunRequest, check

TINY = ["--workload", "capacity", "--set", "dataset.source=\"synthetic\"", "--set", "dataset.dim=32",
        "--set", "dataset.n=500", "--set", "dataset.queries=20", "--set", "index.ef_construction=32",
        "--set", "capacity.batch=100", "--set", "capacity.check_every_s=0.2", "--quiet", "--json"]


def _row(tmp_path, p) -> dict:
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    (row,) = pq.read_table(tmp_path / out["results"] / "summary.parquet").to_pylist()
    assert row["op"] == "insert" and row["count"] > 0 and row["hdr"]
    return row


def test_capacity_on_qdrant_edge_stops_at_the_memory_cap(bench_cli, tmp_path):
    p = bench_cli("run", "--backend", "qdrant-edge", *TINY, "--set", "capacity.max_rss_bytes=1",
                  "--set", "capacity.time_limit_s=30")
    row = _row(tmp_path, p)
    assert row["ended_by"].startswith("memory cap") and row["vectors_held"] == 500 + 100 * row["count"]
    assert row["rss_bytes"] > 0 and row["disk_bytes"] > 0 and row["memory_from"].startswith("this process")
    text = render(compare([tmp_path / json.loads(p.stdout)["results"]]), "markdown")
    assert "| vectors held |" in text and "| memory cap (" in text and "disk MiB/M vec" in text


@pytest.mark.server
def test_capacity_on_pgvector_until_the_vector_limit(bench_cli, tmp_path):
    server_options("pgvector")
    p = bench_cli("run", "--backend", "pgvector", *TINY, "--set", "capacity.max_vectors=1500")
    row = _row(tmp_path, p)
    assert row["ended_by"] == "vector limit" and row["vectors_held"] == 1500 and row["count"] == 10
    assert row["disk_from"].startswith("pg_total_relation_size")
    assert row["disk_per_million_bytes"] > 32 * 4 * 1e6  # at least the raw float32 vectors
    assert row["rss_bytes"] > 0 and "server process tree" in row["memory_from"]


def test_capacity_refusals():
    with pytest.raises(UserError, match="capacity.max_vectors 400 must be above dataset.n 4000"):
        check(RunRequest("qdrant-edge", "capacity", ["capacity.max_vectors=400"]))
    with pytest.raises(UserError, match="--rate-sweep does not apply"):
        check(RunRequest("qdrant-edge", "capacity", rate_sweep=True))
