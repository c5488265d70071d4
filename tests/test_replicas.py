"""pgvector on a replicated PostgreSQL, live: a PRIVATE primary with two hot standbys (bench.pgcluster: own ports,
own data folders under a temporary folder, stopped by pid at the end; the shared 5432 server is never touched).

- the cluster: roles and replay lag as `status` reports them, replication of a table to both standbys;
- the adapter: writes on the primary, searches spread over the standbys (the `read_nodes` key and the `served_by`
  column of every row), the primary among them on request, a killed standby's searches moving to the other;
- `bench run` on it: a search-under-writes YCSB run whose visibility lag (a write on the primary until a search on
  a standby finds it) is present and bounded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg
import pyarrow.parquet as pq
import pytest
from pg_replicas import remove, start_cluster

from bench.backends.base import CollectionSpec, IndexSpec, SearchParams
from bench.backends.pgvector import PgvectorBackend, PgvectorOptions
from bench.pgcluster import PgCluster, format_status

pytestmark = [pytest.mark.server, pytest.mark.slow]
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cluster():
    c, folder = start_cluster()
    yield c
    remove(c, folder)


def _options(c: PgCluster, **kw) -> PgvectorOptions:
    return PgvectorOptions(dsn=c.primary_dsn, replica_dsns=c.replica_dsns, **kw)


def test_status_names_the_roles_and_the_replay_lag(cluster):
    rows = {r["name"]: r for r in cluster.status()}
    assert [rows[n]["role"] for n in ("primary", "replica1", "replica2")] == ["primary", "standby", "standby"]
    for n in ("replica1", "replica2"):
        assert rows[n]["receiver"] == "streaming"
        assert rows[n]["replay_lag_bytes"] >= 0 and rows[n]["replay_lag_s"] >= 0
    assert "replica1:async" in rows["primary"]["standbys"] and "replica2:async" in rows["primary"]["standbys"]
    text = "\n".join(format_status(cluster.status()))
    assert "replica2: standby on 127.0.0.1:" in text and "replay lag" in text


def test_a_table_written_on_the_primary_reaches_both_standbys_and_they_refuse_writes(cluster):
    with psycopg.connect(cluster.primary_dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS repl_probe")
        conn.execute("CREATE TABLE repl_probe (id int)")
        conn.execute("INSERT INTO repl_probe VALUES (7)")
    for dsn in cluster.replica_dsns:
        deadline = time.monotonic() + 30
        with psycopg.connect(dsn, autocommit=True) as conn:
            while True:
                try:
                    if conn.execute("SELECT id FROM repl_probe").fetchall() == [(7,)]:
                        break
                except psycopg.errors.UndefinedTable:
                    pass
                assert time.monotonic() < deadline, f"{dsn} never showed the row"
                time.sleep(0.05)
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("INSERT INTO repl_probe VALUES (8)")


def _loaded(c: PgCluster, name: str, **kw) -> tuple[PgvectorBackend, np.ndarray]:
    b = PgvectorBackend(_options(c, **kw), tempfile.gettempdir())
    b.connect()
    rng = np.random.default_rng(1)
    vecs = rng.standard_normal((300, 16)).astype(np.float32)
    b.create(CollectionSpec(name, 16, "cosine", IndexSpec(kind="hnsw", m=8, ef_construction=32)))
    b.insert(np.arange(300), vecs)
    built = b.wait_indexed(60)
    assert [r["node"] for r in built.params["replicas"]] == ["replica1", "replica2"]
    return b, vecs


def test_searches_are_spread_over_the_standbys_and_writes_go_to_the_primary(cluster):
    b, vecs = _loaded(cluster, "repl_spread")
    try:
        assert b.read_nodes() == ["replica1", "replica2"] and b.info().read_nodes == ["replica1", "replica2"]
        for i in range(20):
            assert b.search(vecs[i], 5, SearchParams(ef_search=40))[0] == i
        assert b.served_by() == {"replica1": 10, "replica2": 10}
        b.upsert(5, vecs[6])  # a write: on the primary (a standby would refuse it)
        assert np.allclose(b.get(5).vector, vecs[6])
        assert b.served_by() == {"replica1": 10, "replica2": 10}  # gets and writes are not searches
        ports = {b._rconn[n].info.port for n in ("replica1", "replica2")}
        assert ports == {cluster.node("replica1").port, cluster.node("replica2").port}
        assert b.conn.info.port == cluster.node("primary").port
    finally:
        b.drop()
        b.close()


def test_the_primary_serves_searches_when_asked(cluster):
    b, vecs = _loaded(cluster, "repl_primary", reads_on_primary=True)
    try:
        assert b.read_nodes() == ["primary", "replica1", "replica2"]
        for i in range(9):
            b.search(vecs[i], 5, SearchParams())
        assert b.served_by() == {"primary": 3, "replica1": 3, "replica2": 3}
    finally:
        b.drop()
        b.close()


def test_a_killed_standby_s_searches_move_to_the_other(cluster):
    b, vecs = _loaded(cluster, "repl_kill")
    try:
        for i in range(4):
            b.search(vecs[i], 5, SearchParams())
        assert cluster.kill("replica2", signal.SIGKILL) is not None
        failed = 0
        for i in range(40):
            try:
                assert b.search(vecs[i], 5, SearchParams())[0] == i
            except psycopg.OperationalError:
                failed += 1
        assert failed <= 1, "only the search that met the dead connection may fail"
        served = b.served_by()
        assert served["replica1"] >= 2 + 39 - 1 and served["replica2"] <= 3
    finally:
        cluster.start("replica2")
        cluster.wait_streaming(2)
        b.drop()
        b.close()


def test_bench_run_records_the_read_nodes_and_the_visibility_lag(cluster, bench_cli, tmp_path):
    sets = [a for o in _overrides(cluster) for a in ("--set", o)]
    p = bench_cli("run", "--backend", "pgvector", "--workload", "ycsb-search-under-writes", *sets,
                  "--set", "dataset.n=1500", "--set", "dataset.dim=32", "--set", "dataset.queries=20",
                  "--set", "dataset.holdout=600", "--set", "run.trials=1", "--set", "run.duration_s=3",
                  "--set", "run.warmup_s=0.3", "--set", "run.visibility_sample_every=5", "--concurrency", "2",
                  "--results-dir", str(tmp_path / "results"), "--quiet")
    assert p.returncode == 0, p.stderr[-3000:]
    (run_dir,) = list((tmp_path / "results").iterdir())
    rows = pq.read_table(run_dir / "trials.parquet").to_pylist()
    assert {r["op"] for r in rows} == {"search", "update", "total"}
    for r in rows:
        assert r["read_nodes"] == "replica1+replica2"
        served = json.loads(r["served_by"])
        assert set(served) == {"replica1", "replica2"} and min(served.values()) > 0
    search = next(r for r in rows if r["op"] == "search")
    assert sum(json.loads(search["served_by"]).values()) >= search["count"]  # probes are searches too
    total = next(r for r in rows if r["op"] == "total")
    assert total["visibility_probes"] >= 20 and total["visibility_missed"] == 0
    # a write on the primary, found by a search on a standby: replication and the search take time, and a
    # standby streaming on loopback replays well within the probe's 5 s
    assert 0 < total["visibility_p50_us"] < 5e6
    assert 0 <= total["visibility_stale"] <= total["visibility_probes"] + total["visibility_missed"]


def test_remote_apply_replication_leaves_no_stale_read_on_the_synchronous_standby(bench_cli, tmp_path):
    """synchronous_commit = remote_apply with replica1 the synchronous standby: an update is acknowledged only once
    replica1 applied it, so the first search there after the acknowledgement finds it, every time."""
    c, folder = start_cluster(sync=True, synchronous_commit="remote_apply")
    try:
        assert "replica1:sync" in next(r for r in c.status() if r["name"] == "primary")["standbys"]
        sets = [a for o in c.overrides() if not o.startswith("backend.replica_dsns=") for a in ("--set", o)]
        p = bench_cli("run", "--backend", "pgvector", "--workload", "ycsb-search-under-writes", *sets,
                      "--set", f"backend.replica_dsns={json.dumps(c.replica_dsns[:1])}",
                      "--set", "dataset.n=1500", "--set", "dataset.dim=32", "--set", "dataset.queries=20",
                      "--set", "dataset.holdout=600", "--set", "run.trials=1", "--set", "run.duration_s=3",
                      "--set", "run.warmup_s=0.3", "--set", "run.visibility_sample_every=3", "--concurrency", "2",
                      "--results-dir", str(tmp_path / "results"), "--quiet")
    finally:
        remove(c, folder)
    assert p.returncode == 0, p.stderr[-3000:]
    (run_dir,) = list((tmp_path / "results").iterdir())
    total = next(r for r in pq.read_table(run_dir / "trials.parquet").to_pylist() if r["op"] == "total")
    assert total["read_nodes"] == "replica1" and json.loads(total["served_by"]).keys() == {"replica1"}
    assert total["visibility_probes"] >= 20 and total["visibility_missed"] == 0
    assert total["visibility_stale"] == 0


def _overrides(c: PgCluster) -> list[str]:
    return c.overrides()


def test_read_scaling_sweeps_the_same_concurrency_with_0_1_and_2_replicas(cluster, cache_dir, tmp_path):
    """benchmarks/read_replicas.py: three `bench run`s on the cluster; every figure is there, the searches went
    where each run sent them, and the servers' CPU is the standbys' too (the primary idles when they serve)."""
    sets = [a for o in cluster.overrides() for a in ("--set", o)]
    small = ["dataset.n=1500", "dataset.dim=32", "dataset.queries=50", "run.trials=1", "run.duration_s=1.5",
             "run.warmup_s=0.3", "index.ef_construction=32"]
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "read_replicas.py"), "--concurrency", "1,2",
                        "--results-dir", str(tmp_path / "rr"), "--json", *sets, *[a for s in small for a in ("--set", s)]],
                       capture_output=True, text=True, timeout=900, cwd=tmp_path,
                       env={**os.environ, "BENCH_CACHE_DIR": str(cache_dir)})
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout)
    assert set(got) == {"0", "1", "2"} and all(set(per) == {"1", "2"} for per in got.values())
    for n, per in got.items():
        for r in per.values():
            assert r["qps"] > 0 and r["client_cores"] > 0 and r["server_cores"] > 0 and r["trials"] == 1
            nodes = {"0": None, "1": "replica1", "2": "replica1+replica2"}[n]
            assert r["read_nodes"] == nodes
            assert set(r["served_by"]) == (set(nodes.split("+")) if nodes else set())


def test_the_nodes_bench_fault_can_kill_come_from_the_configuration():
    from bench.backends.base import ServerNode
    from bench.errors import UserError
    from bench.faults.nodes import local_node

    o = PgvectorOptions(dsn="postgresql://bench@127.0.0.1:7001,127.0.0.1:7002/bench?target_session_attrs=read-write",
                        replica_dsns=["postgresql://bench@127.0.0.1:7002/bench"], promote_cmd="{python} -m x promote",
                        node_start_cmd="start {node}")
    nodes = PgvectorBackend.server_nodes(o)
    assert [(n.name, n.role, n.address, n.recover_cmd) for n in nodes] == [
        ("primary", "primary", ("127.0.0.1", 7001), "{python} -m x promote"),
        ("replica1", "replica", ("127.0.0.1", 7002), "start replica1")]
    assert nodes[1].probe_options == {"dsn": o.replica_dsns[0], "replica_dsns": []}
    assert PgvectorBackend.server_nodes(PgvectorOptions(dsn=o.dsn)) == []  # one endpoint: compose --node instead
    node = local_node("primary", nodes, "pgvector", "kill", None, lambda n: True)
    assert node.start_command() == ["/bin/sh", "-c", f"{sys.executable} -m x promote"] and node.healthy()
    assert local_node("primary", nodes, "pgvector", "kill", "my-failover", lambda n: True).recover == "my-failover"
    for args, needle in [(("replica9", nodes), "is not a server of this pgvector configuration"),
                         (("primary", [ServerNode("primary", "primary", ("10.0.0.5", 5432), "p")]), "not on this machine"),
                         (("primary", [ServerNode("primary", "primary", ("127.0.0.1", 5432), None)]), "promote_cmd")]:
        with pytest.raises(UserError, match=needle):
            local_node(*args, "pgvector", "kill", None, lambda n: True)
