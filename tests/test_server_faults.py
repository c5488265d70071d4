"""Server faults during `bench run`, live against a private pgvector server (its own port and data folder, so
killing it disturbs no other test), and Ctrl-C.

- The server dies during a trial: that trial's errors are counted and it is marked failed; with
  run.on_trial_failure = "continue" the run goes on (and the adapter reconnects once the server is back), with
  "stop" it stops; every finished trial is written either way.
- A connection drops (the server terminates the backend): errors are counted and the next operations reconnect.
- SIGINT to a `bench run` subprocess (to it alone, and to its whole process group as a terminal's Ctrl-C does):
  finished trials are written, run.json says "interrupted", every parquet row has run_status "interrupted",
  exit code 130.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
import pytest
from backend_options import start_private_server

from bench.analysis.load import read_table

pytestmark = [pytest.mark.server, pytest.mark.slow]

YCSB = ["--workload", "ycsb-a", "--set", "dataset.n=1500", "--set", "dataset.queries=20", "--set", "run.min_operations=1", "--set", "dataset.dim=32",
        "--set", "dataset.holdout=500", "--set", "index.ef_construction=32", "--set", "run.warmup_s=0.2",
        "--concurrency", "1", "--quiet"]


@pytest.fixture(scope="module")
def pg():
    srv = start_private_server("pgvector")
    yield srv
    srv.stop()


def _start(args: list[str], cwd: Path, cache_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "BENCH_CACHE_DIR": str(cache_dir)}
    return subprocess.Popen([sys.executable, "-m", "bench.cli", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _trials_written(results: Path) -> int:
    """How many trials the run has written so far (0 while trials.parquet does not exist)."""
    files = list(results.glob("*/trials.parquet"))
    if not files:
        return 0
    return len(set(read_table(files[0]).column("trial").to_pylist()))  # one open file: the run renames anew


def _wait_trials(results: Path, n: int, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while _trials_written(results) < n:
        if proc.poll() is not None:
            raise AssertionError(f"bench exited {proc.returncode} early: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no {n} trials written after {timeout_s} s")
        time.sleep(0.05)


def _results(tmp_path: Path) -> tuple[Path, list[dict], list[dict], dict]:
    (run_dir,) = list((tmp_path / "results").iterdir())
    trials = pq.read_table(run_dir / "trials.parquet").to_pylist()
    summary = pq.read_table(run_dir / "summary.parquet").to_pylist()
    return run_dir, trials, summary, json.loads((run_dir / "run.json").read_text())


def _by_trial(trials: list[dict]) -> dict[int, dict]:
    return {r["trial"]: r for r in trials if r["op"] == "total"}


def test_server_dies_and_comes_back_run_goes_on(pg, tmp_path, cache_dir):
    """Kill the server (SIGKILL of its tree) as trial 1 starts and restart it at once: trial 1 counts errors and
    is failed, the run goes on, trial 2 is clean again (pgvector reconnected), and all three trials are written."""
    proc = _start(["run", "--backend", "pgvector", *YCSB, "--set", "run.duration_s=4", "--trials", "3",
                   "--set", "run.on_trial_failure=\"continue\"", *sum((["--set", o] for o in pg.overrides), [])],
                  tmp_path, cache_dir)
    _wait_trials(tmp_path / "results", 1, proc)
    time.sleep(0.3)
    assert pg.kill()
    pg.launch()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-3000:]  # the run finished, and says some trial rows failed
    assert "Traceback" not in err and "failed" in err
    _, trials, summary, run = _results(tmp_path)
    t = _by_trial(trials)
    assert sorted(t) == [0, 1, 2]
    assert t[0]["status"] == "ok" and t[0]["errors"] == 0
    assert t[1]["status"] == "failed" and t[1]["errors"] > 0 and "error rate" in t[1]["status_reason"]
    assert "OperationalError" in t[1]["error_samples"]
    assert t[1]["count"] > 0  # it recovered within the trial: operations succeeded after the restart
    assert t[2]["status"] == "ok" and t[2]["errors"] == 0 and t[2]["count"] > 0, t[2]["status_reason"]
    assert run["status"] == "partial" and all(r["run_status"] == "partial" for r in trials + summary)
    (row,) = [r for r in summary if r["op"] == "total"]
    assert row["n_trials"] == 3 and row["n_ok"] == 2  # the failed trial is kept as a row, not aggregated


def test_server_stays_dead_run_stops(pg, tmp_path, cache_dir):
    """run.on_trial_failure = "stop": the server dies during trial 1 and stays down; trial 1 is failed and
    written, no trial 2 is attempted, the run is "stopped" (exit 1), and trial 0 is still there."""
    proc = _start(["run", "--backend", "pgvector", *YCSB, "--set", "run.duration_s=1.5", "--trials", "4",
                   "--set", "run.on_trial_failure=\"stop\"", *sum((["--set", o] for o in pg.overrides), [])],
                  tmp_path, cache_dir)
    try:
        _wait_trials(tmp_path / "results", 1, proc)
        time.sleep(0.2)
        assert pg.kill()
        out, err = proc.communicate(timeout=120)
    finally:
        pg.launch()
    assert proc.returncode == 1, err[-3000:]
    assert "Traceback" not in err
    _, trials, summary, run = _results(tmp_path)
    t = _by_trial(trials)
    assert sorted(t) == [0, 1]
    assert t[0]["status"] == "ok"
    assert t[1]["status"] == "failed" and t[1]["errors"] > 0
    assert run["status"] == "stopped"
    assert all(r["run_status"] == "stopped" for r in trials + summary)


def test_dropped_connections_are_counted_and_reconnected(pg, tmp_path, cache_dir):
    """The server stays up but terminates every bench connection mid-trial (pg_terminate_backend): the
    operations that met a dropped connection are counted as errors, the next ones reconnect and succeed."""
    dsn = pg.overrides[0].split("=", 1)[1].strip('"')
    proc = _start(["run", "--backend", "pgvector", *YCSB, "--set", "run.duration_s=3", "--trials", "1",
                   "--set", "run.warmup_s=0", "--set", "run.error_threshold=1",
                   *sum((["--set", o] for o in pg.overrides), [])], tmp_path, cache_dir)
    terminated = 0

    def drop() -> None:
        nonlocal terminated
        time.sleep(0.2)
        while proc.poll() is None and not terminated:
            with psycopg.connect(dsn, autocommit=True) as c:
                rows = c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'bench' "
                                 "AND pid <> pg_backend_pid() AND state IN ('active', 'idle') "
                                 "AND query LIKE '%bench_ycsb_a%'").fetchall()
                terminated = len(rows)
            time.sleep(0.2)

    _wait_trials_started = threading.Thread(target=drop, daemon=True)
    # wait until the timed phase runs (the index is built), then drop its connections
    deadline = time.monotonic() + 120
    while not list((tmp_path / "results").glob("*/run.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    _wait_trials_started.start()
    out, err = proc.communicate(timeout=120)
    _wait_trials_started.join(timeout=10)
    assert proc.returncode == 0, err[-3000:]
    assert terminated > 0
    _, trials, _, run = _results(tmp_path)
    t = _by_trial(trials)[0]
    # a connection terminated while a query runs raises AdminShutdown; one terminated while idle is found
    # dead by the next query, which raises its parent OperationalError ("server closed the connection")
    assert t["errors"] >= 1
    assert "AdminShutdown" in t["error_samples"] or "server closed the connection" in t["error_samples"]
    assert t["count"] > 10 * t["errors"]  # the rest reconnected and went on
    assert run["status"] == "complete"


@pytest.mark.parametrize("group", [False, True], ids=["sigint-to-bench", "ctrl-c-to-process-group"])
def test_sigint_writes_finished_trials_and_marks_the_run_interrupted(pg, tmp_path, cache_dir, group):
    proc = _start(["run", "--backend", "pgvector", *YCSB, "--set", "run.duration_s=1", "--trials", "20",
                   *sum((["--set", o] for o in pg.overrides), [])], tmp_path, cache_dir)
    _wait_trials(tmp_path / "results", 2, proc)
    if group:
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, err[-3000:])
    assert "Traceback" not in err
    assert "interrupted" in err
    _, trials, summary, run = _results(tmp_path)
    assert run["status"] == "interrupted" and run["ended_utc"]
    done = _by_trial(trials)
    assert 2 <= len(done) < 20
    assert all(r["run_status"] == "interrupted" for r in trials + summary)
    assert all(r["count"] > 0 for r in done.values())


def test_sigint_embedded_engine(tmp_path, cache_dir):
    """The same with an in-process engine (worker threads, no server)."""
    proc = _start(["run", "--backend", "chroma", "--workload", "ann-smoke", "--set", "dataset.n=1000",
                   "--set", "dataset.queries=20", "--set", "run.min_operations=1", "--set", "dataset.dim=16", "--set", "search.ef_search=[16]",
                   "--set", "run.warmup_s=0", "--set", "run.duration_s=0.5", "--trials", "50", "--quiet"],
                  tmp_path, cache_dir)
    _wait_trials(tmp_path / "results", 2, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, err[-3000:])
    assert "Traceback" not in err
    _, trials, summary, run = _results(tmp_path)
    assert run["status"] == "interrupted"
    assert all(r["run_status"] == "interrupted" for r in trials + summary)
    assert 2 <= len({r["trial"] for r in trials}) < 50
