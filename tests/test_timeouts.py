"""A frozen or hung engine never hangs `bench run`.

- Every engine call of a timed phase has a timeout (run.op_timeout_s): a timed-out call is an error, and a trial
  that runs past its duration by more than run.phase_margin_s fails. Live: a private Chroma server frozen with
  SIGSTOP for a few seconds, then thawed: the trials it held fail with the reason, the run goes on.
- A worker that finishes no operation for op_timeout_s + phase_margin_s ends the phase (the pool's watchdog):
  the run ends failed, the finished trials written, cleanup given a time limit. Live: a private pgvector server
  frozen for good (psycopg has no client-side call timeout, so only the watchdog can end it); and a hung
  in-process engine (the fake-slow backend, which exists to test the harness).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
from backend_options import start_private_server
from test_server_faults import _start, _wait_trials  # the same subprocess and wait helpers

from bench.faults.servers import PrivateServer
from bench.processes import process_tree, signal_tree

pytestmark = [pytest.mark.server, pytest.mark.slow]

SMALL = ["--set", "dataset.n=1500", "--set", "dataset.queries=20", "--set", "dataset.dim=32",
         "--set", "dataset.holdout=500", "--set", "index.ef_construction=32", "--set", "run.warmup_s=0.2",
         "--set", "run.min_operations=1", "--concurrency", "1", "--quiet"]


def _finish(proc: subprocess.Popen, timeout_s: float) -> tuple[str, str]:
    """The run's output; a run still going after `timeout_s` is the hang this file is about."""
    try:
        return proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f"bench run still running {timeout_s:.0f} s after the engine froze: it hung") from None


def _results(tmp_path: Path) -> tuple[dict[int, dict], dict]:
    (run_dir,) = list((tmp_path / "results").iterdir())
    trials = pq.read_table(run_dir / "trials.parquet").to_pylist()
    by_trial = {r["trial"]: r for r in trials if r["op"] in ("total", "search")}
    return by_trial, json.loads((run_dir / "run.json").read_text())


def _freeze(srv: PrivateServer) -> list:
    pid = srv.pid()
    assert pid is not None
    procs = process_tree(pid)
    signal_tree(procs, signal.SIGSTOP)
    return procs


def test_a_hung_in_process_engine_ends_the_run_failed(tmp_path, cache_dir):
    """fake-slow hangs for 10 minutes on an operation of trial 1: the watchdog ends that phase after
    op_timeout_s + phase_margin_s (2 s) of silence, the run ends failed (exit 1) with trial 0 written."""
    proc = _start(["run", "--backend", "fake-slow", "--workload", "ycsb-a", *SMALL, "--trials", "3",
                   "--set", "run.duration_s=0.6", "--set", "run.op_timeout_s=1", "--set", "run.phase_margin_s=1",
                   "--set", "backend.stall_after_s=1.0", "--set", "backend.stall_s=600"], tmp_path, cache_dir)
    out, err = _finish(proc, 90)
    assert proc.returncode == 1, err[-2000:]
    assert "Traceback" not in err and "stopped answering" in err
    trials, run = _results(tmp_path)
    assert run["status"] == "failed"
    assert any("stopped answering" in w for w in run["warnings"])
    assert 0 in trials and trials[0]["status"] == "ok"
    assert 2 not in trials  # nothing ran after the stall


def _frozen_server(kind: str):
    """A private server of `kind` for one test, thawed (a test may leave it frozen) and stopped after it."""
    srv = start_private_server(kind)
    yield srv
    pid = srv.pid()
    if pid is not None:
        signal_tree(process_tree(pid), signal.SIGCONT)
    srv.stop()


@pytest.fixture
def pg():
    yield from _frozen_server("pgvector")


def test_a_frozen_pgvector_server_ends_the_run_failed_instead_of_hanging(pg, tmp_path, cache_dir):
    """The server is frozen (SIGSTOP) after trial 0 and stays frozen: the worker process waits in psycopg, which
    has no call timeout; the watchdog ends the phase after 3 s of silence, kills the worker, gives the cleanup
    (dropping the collection on a server that does not answer) 3 s and says what may be left behind."""
    proc = _start(["run", "--backend", "pgvector", "--workload", "ycsb-a", *SMALL, "--trials", "4",
                   "--set", "run.duration_s=1", "--set", "run.op_timeout_s=1", "--set", "run.phase_margin_s=2",
                   *sum((["--set", o] for o in pg.overrides), [])], tmp_path, cache_dir)
    _wait_trials(tmp_path / "results", 1, proc)
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert workers, "pgvector runs its workers as processes"
    _freeze(pg)
    t0 = time.monotonic()
    out, err = _finish(proc, 60)
    took = time.monotonic() - t0
    assert proc.returncode == 1, err[-2000:]
    assert "Traceback" not in err
    said = " ".join(err.split())
    assert "stopped answering" in said and "drop it with `bench cleanup " in said.rsplit("warning:", 1)[-1]
    trials, run = _results(tmp_path)
    assert run["status"] == "failed" and trials[0]["status"] == "ok"
    assert took < 40, f"the run took {took:.0f} s to end after the freeze"
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE], \
        "a worker process was left behind"


@pytest.fixture
def chroma():
    yield from _frozen_server("chroma")


def test_a_chroma_server_frozen_for_seconds_fails_the_trials_it_held_and_the_run_goes_on(chroma, tmp_path,
                                                                                          cache_dir):
    """Frozen for 3 s after trial 0, then thawed: a call held by the frozen server gives up after op_timeout_s
    (2 s; chromadb's HTTP session otherwise waits forever) as an error, and the trial, 1 s long, ran more than
    phase_margin_s (0.5 s) over, so it fails with that reason; the last trial, after the thaw, is ok; the run
    completes (exit 1: some trials failed) and drops its collection."""
    proc = _start(["run", "--backend", "chroma-server", "--workload", "ycsb-a", *SMALL, "--trials", "5",
                   "--set", "run.duration_s=1", "--set", "run.op_timeout_s=2", "--set", "run.phase_margin_s=0.5",
                   *sum((["--set", o] for o in chroma.overrides), [])], tmp_path, cache_dir)
    _wait_trials(tmp_path / "results", 1, proc)
    procs = _freeze(chroma)
    time.sleep(3)
    signal_tree(procs, signal.SIGCONT)
    out, err = _finish(proc, 120)
    assert proc.returncode == 1, err[-2000:]
    assert "Traceback" not in err
    trials, run = _results(tmp_path)
    assert run["status"] == "partial" and sorted(trials) == list(range(5))
    held = [t for t in trials.values() if t["status"] == "failed"]
    assert held, "no trial failed although the server froze for 3 s"
    # failed by the timed-out calls' error rate, or by running past the margin (whichever the timing gave)
    assert all("run.phase_margin_s" in t["status_reason"] or "error rate" in t["status_reason"] for t in held), \
        [t["status_reason"] for t in held]
    assert any("timed out" in t["error_samples"].lower() or "timeout" in t["error_samples"].lower() for t in held), \
        [(t["status_reason"], t["error_samples"], t["count"], t["errors"], t["duration_s"]) for t in held]
    assert trials[4]["status"] == "ok" and trials[4]["errors"] == 0
