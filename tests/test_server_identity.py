"""The server a trial measured is part of the trial (a restarted server flags or fails its trials), live against a private pgvector server:
a restart during a trial fails that trial; a restart between two trials (here: during the next configuration's
warm-up) flags the trial after it (`server_changed`, `server_changes` in the summary, a line under the table)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from backend_options import start_private_server
from test_server_faults import _start, _wait_trials

pytestmark = [pytest.mark.server, pytest.mark.slow]

ARGS = ["--workload", "ann-smoke", "--set", "dataset.n=1500", "--set", "dataset.queries=20", "--set", "dataset.dim=32",
        "--set", "index.ef_construction=32", "--set", "run.min_operations=1", "--set", "search.ef_search=[16, 32]",
        "--set", "run.warmup_s=8", "--set", "run.duration_s=3", "--trials", "2", "--concurrency", "1",
        "--set", "run.on_trial_failure=\"continue\"", "--set", "run.error_threshold=0.2", "--quiet"]


@pytest.fixture(scope="module")
def pg():
    srv = start_private_server("pgvector")  # under the server switch: a server that cannot start fails the test
    yield srv
    srv.stop()


def test_a_restart_during_a_trial_fails_it_and_one_between_trials_flags_the_next(pg, tmp_path, cache_dir):
    proc = _start(["run", "--backend", "pgvector", *ARGS, "--run-id", "ident",
                   *sum((["--set", o] for o in pg.overrides), [])], tmp_path, cache_dir)
    results = tmp_path / "results"
    _wait_trials(results, 1, proc, timeout_s=180)  # ef=16 trial 0 written, trial 1 (3 s) under way
    first = pg.pid()
    assert pg.kill()
    pg.launch()
    _wait_trials(results, 2, proc)  # ef=16 done; ef=32's warm-up (8 s) under way
    second = pg.pid()
    assert second != first
    assert pg.kill()
    pg.launch()
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 1, err[-3000:]
    assert "Traceback" not in err
    run_dir = results / "ident"
    rows = {(r["ef_search"], r["trial"]): r for r in pq.read_table(run_dir / "trials.parquet").to_pylist()}
    held = rows[(16, 1)]
    assert held["status"] == "failed" and "the server restarted during the trial (pid " in held["status_reason"]
    assert rows[(16, 0)]["server_identity"].startswith(f"pid {first} started ")
    after = rows[(32, 0)]
    assert after["server_changed"] is True and after["server_changed_from"].startswith(f"pid {second} started ")
    assert after["server_identity"] != after["server_changed_from"]
    assert rows[(32, 1)]["server_changed"] is False
    summary = {r["ef_search"]: r for r in pq.read_table(run_dir / "summary.parquet").to_pylist()}
    assert summary[32]["server_changes"] == 1 and summary[16]["server_changes"] == 0
    said = " ".join((out + err).split())
    assert "server restarted: 1 trial(s) measured a server other than the trial before them" in said
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "partial"
    assert any("restarted before trial 0 at ef=32" in w for w in run["warnings"])
