"""Faults outside the timed trials: a server that freezes or dies while bench creates,
loads, waits for the index or drops ends the run in one sentence naming the phase, the engine and what to do,
status `failed`, exit 1, no engine traceback on the terminal (it is in the run's run.log); what the run could not
drop is named with the command that drops it (`bench cleanup RUN`), and that command drops it.

Live against private servers (own port and data folder), frozen with SIGSTOP at the moment the phase is seen in
the server's own activity (pg_stat_activity)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import psycopg
import pytest
from test_server_faults import _start
from test_timeouts import _finish, _frozen_server

from bench.faults.servers import process_tree, signal_tree
from bench.processes import wait_gone

pytestmark = [pytest.mark.server, pytest.mark.slow]

BUILD = ["--workload", "ann-smoke", "--set", "dataset.n=20000", "--set", "dataset.queries=20", "--set",
         "dataset.dim=96", "--set", "index.ef_construction=200", "--set", "run.min_operations=1",
         "--set", "run.warmup_s=0", "--trials", "1", "--concurrency", "1", "--quiet",
         "--set", "run.op_timeout_s=1", "--set", "run.phase_margin_s=2", "--set", "run.index_timeout_s=4"]


@pytest.fixture
def pg():
    yield from _frozen_server("pgvector")


def _dsn(srv) -> str:
    return f"postgresql://bench@127.0.0.1:{srv.port}/bench"


def _wait_for_query(srv, prefix: str, proc, timeout_s: float = 180) -> None:
    """Until the server runs a statement starting with `prefix` (from another backend than ours)."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(_dsn(srv), autocommit=True) as conn:
        while time.monotonic() < deadline:
            rows = conn.execute("SELECT query FROM pg_stat_activity WHERE state = 'active' AND pid <> "
                                "pg_backend_pid()").fetchall()
            if any(r[0].lstrip().upper().startswith(prefix) for r in rows):
                return
            if proc.poll() is not None:
                raise AssertionError(f"bench exited {proc.returncode} before {prefix}: {proc.stderr.read()[-2000:]}")
            time.sleep(0.01)
    raise AssertionError(f"no {prefix} seen within {timeout_s} s")


def _tables(srv) -> list[str]:
    with psycopg.connect(_dsn(srv), autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'bench_%'")]


def _relaunch(pg, procs) -> None:
    """Start the killed server again once every process of the old one is gone (a postmaster's children may
    outlive the SIGKILL by a moment, and pg_ctl refuses to start beside them); one more try after a pause."""
    wait_gone(procs, 20)
    try:
        pg.launch()
    except RuntimeError:
        time.sleep(2)
        pg.launch()


PHASES = {"COPY": "loading the data", "CREATE INDEX": "waiting until the index is built"}


@pytest.mark.parametrize("sig", [signal.SIGSTOP, signal.SIGKILL], ids=["frozen", "killed"])
@pytest.mark.parametrize("statement", list(PHASES))
def test_a_server_frozen_or_killed_while_loading_or_indexing_ends_the_run_in_one_sentence(
        pg, tmp_path, cache_dir, bench_cli, statement, sig):
    """Case B (and the chaos test's set-up phases on pgvector): the server is frozen (SIGSTOP) or killed (SIGKILL)
    the moment it runs the phase's statement. The run ends failed, exit 1, its last line naming the engine and
    the phase, then the table left on the server and `bench cleanup RUN`, which drops it once the server is back."""
    proc = _start(["run", "--backend", "pgvector", *BUILD, "--run-id", "hit",
                   *sum((["--set", o] for o in pg.overrides), [])], tmp_path, cache_dir)
    _wait_for_query(pg, statement, proc)
    procs = process_tree(pg.pid())
    signal_tree(procs, sig)
    try:
        out, err = _finish(proc, 90)
    finally:
        if sig == signal.SIGSTOP:
            signal_tree(procs, signal.SIGCONT)
        else:
            _relaunch(pg, procs)
    assert proc.returncode == 1, err[-3000:]
    assert "Traceback" not in err and "internal error" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: pgvector failed while {PHASES[statement]}: "), err[-2000:]
    if sig == signal.SIGSTOP:
        limit = "6" if statement == "CREATE INDEX" else "3"  # index_timeout_s + margin; op_timeout_s + margin
        assert f"the server gave no answer within {limit} s" in last
    run_dir = tmp_path / "results" / "hit"
    assert f"left on 127.0.0.1:{pg.port}" in last and f"bench cleanup {Path('results') / 'hit'}" in last
    assert (run_dir / "run.log").is_file()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "failed" and run["left_on_server"]["collection"] == run["collection"]
    assert run["collection"] in _tables(pg)
    p = bench_cli("cleanup", "hit", "--results-dir", str(tmp_path / "results"))
    assert p.returncode == 0, p.stderr
    assert f"dropped pgvector collection '{run['collection']}'" in p.stdout
    assert run["collection"] not in _tables(pg)


FAULT_SMALL = ["--set", "dataset.n=1500", "--set", "dataset.holdout=3000", "--set", "dataset.dim=32", "--set",
               "dataset.queries=20", "--set", "run.min_operations=1", "--set", "index.ef_construction=32", "--quiet"]


def _wait_down(srv, proc, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while srv.pid() is not None:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the server was never killed: {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)


@pytest.mark.parametrize("restart", ["works", "fails"])
def test_bench_fault_interrupted_during_the_outage_restarts_the_server_and_drops_its_table(pg, tmp_path, cache_dir,
                                                                                          restart):
    """Case A: SIGTERM to `bench fault` 1 s into a 10 s outage. It restarts the server it killed at once (the
    restart command), drops its table and ends interrupted (143); when the restart command cannot start the
    server, the last lines say so and give the command that would."""
    cmd = pg.restart_shell if restart == "works" else "exit 1"
    proc = _start(["fault", "--backend", "pgvector", "--kill-at", "2", "--duration", "15", "--restart-delay", "10",
                   "--recovery-timeout", "8", "--restart-cmd", cmd, *FAULT_SMALL,
                   *sum((["--set", o] for o in pg.overrides), [])], tmp_path, cache_dir)
    _wait_down(pg, proc)
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    out, err = _finish(proc, 90)
    assert proc.returncode == 143, err[-3000:]
    assert "Traceback" not in err
    said = " ".join(err.split())
    (run_dir,) = list((tmp_path / "results").iterdir())
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "interrupted"
    if restart == "works":
        assert "interrupted while the pgvector server was down: restarting it" in said
        assert pg.pid() is not None, "the server is running again"
        assert run["collection"] not in _tables(pg), said
    else:
        assert "did not answer within 8 s of its restart: start it with `exit 1`" in said
        assert "bench cleanup" in said and run["left_on_server"]["collection"] == run["collection"]
        pg.launch()
        assert run["collection"] in _tables(pg)


@pytest.fixture
def chroma():
    yield from _frozen_server("chroma")


def _chroma_loading(srv, proc, timeout_s: float = 180) -> None:
    """Until the run's collection on the private Chroma server holds some of its vectors (the load is under way)."""
    import chromadb

    client = chromadb.HttpClient(host="127.0.0.1", port=srv.port)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        cols = [c for c in client.list_collections() if getattr(c, "name", c).startswith("bench_")]
        if cols and client.get_collection(getattr(cols[0], "name", cols[0])).count() > 0:
            return
        if proc.poll() is not None:
            raise AssertionError(f"bench exited {proc.returncode} before loading: {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError(f"no loading seen within {timeout_s} s")


@pytest.mark.parametrize("sig", [signal.SIGSTOP, signal.SIGKILL], ids=["frozen", "killed"])
def test_a_chroma_server_frozen_or_killed_while_loading_ends_the_run_in_one_sentence(chroma, tmp_path, cache_dir,
                                                                                     bench_cli, sig):
    """The chaos test's load phase on the Chroma server: one sentence naming the phase, the collection left named
    with `bench cleanup`, which drops it once the server is back; no chromadb traceback on the terminal."""
    proc = _start(["run", "--backend", "chroma-server", *BUILD, "--set", "dataset.n=30000", "--run-id", "hit",
                   *sum((["--set", o] for o in chroma.overrides), [])], tmp_path, cache_dir)
    _chroma_loading(chroma, proc)
    procs = process_tree(chroma.pid())
    signal_tree(procs, sig)
    try:
        out, err = _finish(proc, 90)
    finally:
        if sig == signal.SIGSTOP:
            signal_tree(procs, signal.SIGCONT)
        else:
            chroma.launch()
    assert proc.returncode == 1, err[-3000:]
    assert "Traceback" not in err and "internal error" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: chroma-server failed while loading the data: "), err[-2000:]
    assert f"left on 127.0.0.1:{chroma.port}" in last and "bench cleanup " in last
    run = json.loads((tmp_path / "results" / "hit" / "run.json").read_text())
    assert run["status"] == "failed" and run["left_on_server"]["collection"] == run["collection"]
    p = bench_cli("cleanup", "hit", "--results-dir", str(tmp_path / "results"))
    assert p.returncode == 0, p.stderr
    import chromadb

    names = [getattr(c, "name", c) for c in chromadb.HttpClient(host="127.0.0.1", port=chroma.port).list_collections()]
    assert run["collection"] not in names
