"""kind = "searchable" through `bench run`: time until every inserted id is found by its own vector, and the first
query after an embedded engine's reopen or a server's restart (a private pgvector server: its own port and data
folder, so restarting it disturbs nobody), against warm; the sentences it refuses with."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from bench.analysis.compare import compare, render
from bench.errors import UserError
from bench.run_context import RunRequest, check

TINY = ["--workload", "searchable", "--set", "dataset.source=\"synthetic\"", "--set", "dataset.dim=32",
        "--set", "dataset.n=600", "--set", "dataset.queries=30", "--set", "index.ef_construction=32",
        "--set", "searchable.new_vectors=100", "--set", "searchable.batch=25", "--set", "searchable.queries=30",
        "--quiet", "--json"]


def _rows(tmp_path, p) -> dict[str, dict]:
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    return {r["op"]: r for r in pq.read_table(tmp_path / out["results"] / "summary.parquet").to_pylist()}


def _check(rows: dict[str, dict]) -> None:
    assert set(rows) == {"insert", "search-warm", "search-cold"}
    ins = rows["insert"]
    assert ins["count"] == 4 and ins["searchable_found"] == 1.0 and 0 < ins["searchable_after_s"] < 60
    assert rows["search-warm"]["count"] == rows["search-cold"]["count"] == 30
    cold = rows["search-cold"]
    assert cold["first_query_us"] > 0 and cold["restart_s"] > 0 and rows["search-warm"]["first_query_us"] is None


def test_searchable_and_reopen_on_qdrant_edge(bench_cli, tmp_path):
    p = bench_cli("run", "--backend", "qdrant-edge", *TINY)
    _check(_rows(tmp_path, p))
    text = render(compare([tmp_path / json.loads(p.stdout)["results"]]), "markdown")
    assert "| search-cold |" in text and "first query us" in text and "all found after s" in text


@pytest.mark.server
@pytest.mark.slow
def test_searchable_and_restart_on_a_private_pgvector(bench_cli, tmp_path, private_server):
    srv = private_server("pgvector")
    pid = srv.pid()
    p = bench_cli("run", "--backend", "pgvector", *TINY, *[a for o in srv.overrides for a in ("--set", o)],
                  "--set", f"searchable.restart_cmd={json.dumps(srv.restart_shell)}")
    _check(_rows(tmp_path, p))
    assert srv.pid() not in (None, pid)  # restarted: another postmaster listens on the port now


def test_searchable_refusals():
    with pytest.raises(UserError, match="cannot be closed and reopened from its files"):
        check(RunRequest("chroma", "searchable"))
    check(RunRequest("chroma", "searchable", ["searchable.cold=false"]))  # searchable-after alone: fine
    with pytest.raises(UserError, match="new_vectors 3995 must leave at least search.k"):
        check(RunRequest("qdrant-edge", "searchable", ["searchable.new_vectors=3995"]))
