"""Soak: `bench run` and `bench suite` killed with SIGTERM, SIGHUP and SIGKILL at 20 seeded random
points, on a server backend (a private pgvector server, so its tables can be listed) and the null backend.

After each kill:
- every file left is readable (parquet, JSON, kept ids), and the trials written agree with the summary;
- every status is honest: SIGTERM/SIGHUP end a run `interrupted` (exit 143/129) in run.json and on every row, a
  suite `interrupted`; SIGKILL leaves `running` (nothing can be written), or `complete` when the run had ended;
- no process of the run is left (worker processes die with the harness, even on SIGKILL), and after SIGTERM or
  SIGHUP no table and no temporary work folder either; a SIGKILLed run cannot drop its table, which run.json names
  (the test drops it);
- a killed suite resumes with `bench suite --resume` and completes every cell, its killed cell's table replaced
  and dropped.

The points are drawn from a fixed seed over start-up, loading and the trials; the same points on every CI run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import psutil
import psycopg
import pyarrow.parquet as pq
import pytest
import test_server_faults

from bench.faults.servers import PrivateServer

pytestmark = [pytest.mark.server, pytest.mark.slow]

pg = test_server_faults.pg  # this module's own private pgvector server (module scope), made as there

SEED = 20261130
POINTS = 20
SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGKILL)
SMALL = ["dataset.n=1500", "dataset.dim=32", "dataset.queries=20", "dataset.holdout=300", "run.warmup_s=0",
         "run.duration_s=0.2", "index.ef_construction=32", "run.min_operations=1"]
TRIALS = 4


def _tables(srv: PrivateServer) -> set[str]:
    dsn = srv.overrides[0].split("=", 1)[1].strip('"')
    with psycopg.connect(dsn, autocommit=True) as c:
        return {r[0] for r in c.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'bench_%'")}


def _drop(srv: PrivateServer, names: set[str]) -> None:
    dsn = srv.overrides[0].split("=", 1)[1].strip('"')
    with psycopg.connect(dsn, autocommit=True) as c:
        for n in names:
            c.execute(f'DROP TABLE IF EXISTS "{n}"')


def _suite_file(folder: Path, srv: PrivateServer) -> Path:
    f = folder / "soak.toml"
    sets = ", ".join(json.dumps(s) for s in SMALL)
    f.write_text(f'name = "soak"\nbackends = ["null", "pgvector"]\nworkloads = ["ycsb-a"]\ntrials = {TRIALS}\n'
                 f'[workload.ycsb-a]\nset = [{sets}]\n'
                 f'[backend.pgvector]\nset = [{json.dumps(srv.overrides[0])}]\n')
    return f


def _bench(args: list[str], work: Path, cache: Path, tag: str) -> subprocess.Popen:
    tmp = work / "tmp"
    tmp.mkdir(exist_ok=True)
    env = {**os.environ, "BENCH_CACHE_DIR": str(cache), "TMPDIR": str(tmp), "BENCH_SOAK_TAG": tag}
    return subprocess.Popen([sys.executable, "-m", "bench.cli", *args], cwd=work, env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def _signal_at(proc: subprocess.Popen, sig: int, after_s: float) -> int:
    """Send `sig` to the harness alone after `after_s` (unless it ended before); its exit code."""
    deadline = time.monotonic() + after_s
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f"bench still running 60 s after signal {sig}") from None
    return proc.returncode


def _left_behind(tag: str, wait_s: float = 10.0) -> list[psutil.Process]:
    """Processes started by the killed command (they carry its tag in their environment) still alive."""
    deadline = time.monotonic() + wait_s
    while True:
        alive = []
        for p in psutil.process_iter():
            try:
                if p.environ().get("BENCH_SOAK_TAG") == tag and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def _check_files(run_dir: Path, prefix: str = "", killed: bool = False) -> dict | None:
    """Every file of one run (or suite cell) readable and consistent; its run.json, or None before there was one.
    killed (SIGKILL): a write cut short leaves its hidden temporary file (`.NAME.xxxx.tmp`), which no reader
    takes for a result; any other end removes it."""
    for f in run_dir.rglob("*.json"):
        json.loads(f.read_text())
    for f in run_dir.rglob(f"{prefix}*.parquet"):
        pq.read_table(f)
    for f in run_dir.rglob("*.npz"):
        with np.load(f) as z:
            assert "ids" in z
    left = [f for f in run_dir.rglob("*.tmp")]
    assert all(f.name.startswith(".") for f in left), left
    assert killed or not left, f"a half-written file was left: {left}"
    run_json = run_dir / f"{prefix}run.json"
    if not run_json.exists():
        return None
    run = json.loads(run_json.read_text())
    trials_f = run_dir / f"{prefix}trials.parquet"
    if trials_f.exists():
        trials = pq.read_table(trials_f).to_pylist()
        ids = sorted({r["trial"] for r in trials})
        assert ids == list(range(len(ids))), "trials are written in order, none missing"
        summary = pq.read_table(run_dir / f"{prefix}summary.parquet").to_pylist()
        total = next(r for r in summary if r["op"] == "total")
        assert total["n_trials"] in (len(ids), len(ids) - 1)  # the summary follows the trials file
        run["_row_status"] = {r["run_status"] for r in trials}
    return run


def _honest(run: dict | None, sig: int, rc: int) -> None:
    if run is None:
        return  # killed before the run had a folder: nothing to be honest about
    # rc 0/1: it finished before the signal came. rc -sig: the signal's default action, which holds only before
    # the CLI installs its handlers (interpreter start-up: no folder yet, above) and after the command returned
    # (interpreter shutdown restores the default handlers): then the run had ended and said so.
    # rc 128+sig with "complete": the signal came while the finished run was writing its end, which it completed
    # first (bench.run_context.deferred_signals), then it ended the command.
    ended = rc in (0, 1) or rc == -sig
    if sig == signal.SIGKILL:
        want = {"complete"} if rc in (0, 1) else {"running", "complete"}
    else:
        assert rc in ((128 + sig), -sig, 0, 1), rc
        want = {"complete"} if ended else {"interrupted", "complete"}
    if "complete" in want:  # a trial may fail under the soak's load: the finished run then says partial
        want = want | {"partial"}
    assert run["status"] in want, (run["status"], sig, rc)
    if "_row_status" in run and sig != signal.SIGKILL:
        assert run["_row_status"] == {run["status"]}


def _plan() -> list[tuple[str, int, float, str]]:
    rng = np.random.default_rng(SEED)
    combos = [(t, s) for t in ("run", "run", "suite") for s in SIGNALS]  # a suite point also resumes: fewer
    out = []
    for i in range(POINTS):
        target, sig = combos[i % len(combos)]
        backend = "pgvector" if target == "suite" or rng.random() < 0.7 else "null"
        out.append((target, sig, float(rng.uniform(0.8, 5.0)), backend))
    return out


def test_soak_twenty_kill_points(pg, tmp_path, cache_dir):
    suite_file = _suite_file(tmp_path, pg)
    before = _tables(pg)
    for i, (target, sig, after, backend) in enumerate(_plan()):
        work, tag = tmp_path / f"p{i}", uuid.uuid4().hex
        work.mkdir()
        if target == "run":
            args = ["run", "--backend", backend, "--workload", "ycsb-a", "--trials", str(TRIALS), "--quiet",
                    *sum((["--set", s] for s in SMALL), [])]
            if backend == "pgvector":
                args += ["--set", pg.overrides[0]]
        else:
            args = ["suite", str(suite_file), "--quiet"]
        rc = _signal_at(_bench(args, work, cache_dir, tag), sig, after)
        where = f"point {i}: {target} {backend} {signal.Signals(sig).name} after {after:.1f} s (exit {rc})"
        assert not _left_behind(tag), f"{where}: processes left behind"
        if sig != signal.SIGKILL:
            assert not list((work / "tmp").glob("bench-*")), f"{where}: a work folder was left"
        for run_dir in (work / "results").iterdir() if (work / "results").exists() else []:
            if target == "run":
                run = _check_files(run_dir, killed=sig == signal.SIGKILL)
                _honest(run, sig, rc)
                leftover = _tables(pg) - before
                if sig == signal.SIGKILL and run is not None and run.get("collection"):
                    assert leftover <= {run["collection"]}, f"{where}: {leftover}"
                    _drop(pg, leftover)
                else:
                    assert not leftover, f"{where}: tables left {leftover}"
            else:
                _suite_point(pg, run_dir, work, cache_dir, sig, rc, where, before)


def _suite_point(pg, run_dir: Path, work: Path, cache_dir: Path, sig: int, rc: int, where: str,
                 before: set[str]) -> None:
    suite = json.loads((run_dir / "suite.json").read_text())
    if sig != signal.SIGKILL and rc not in (0, 1):
        # the handled signal, or its default action during interpreter shutdown, after the suite said how it ended
        assert (rc == 128 + sig and suite["status"] == "interrupted") or (rc == -sig and suite["status"] in (
            "complete", "partial", "failed")), (where, suite["status"])
    killed: set[str] = set()
    for prefix in ("null.ycsb-a.", "pgvector.ycsb-a."):
        cell = _check_files(run_dir, prefix, killed=sig == signal.SIGKILL)
        if cell is None:
            continue
        # a cell finished before the signal is complete; the one it hit says interrupted (or running: SIGKILL)
        assert cell["status"] in ({"complete", "partial", "running"} if sig == signal.SIGKILL
                                  else {"complete", "partial", "interrupted"})
        if "_row_status" in cell and sig != signal.SIGKILL:
            assert cell["_row_status"] == {cell["status"]}
        if cell.get("collection"):
            killed.add(cell["collection"])
    tag = uuid.uuid4().hex
    resumed = _bench(["suite", str(work.parent / "soak.toml"), "--resume", run_dir.name, "--quiet"], work,
                     cache_dir, tag)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, f"{where}: resume exit {resumed.returncode}: {err[-1500:]}"
    suite = json.loads((run_dir / "suite.json").read_text())
    assert suite["status"] == "complete" and all(c["status"] in ("complete", "already done")
                                                 for c in suite["cells"]), where
    for prefix in ("null.ycsb-a.", "pgvector.ycsb-a."):
        run = _check_files(run_dir, prefix, killed=sig == signal.SIGKILL)
        assert run is not None and run["status"] == "complete", where
        assert len({r["trial"] for r in pq.read_table(run_dir / f"{prefix}trials.parquet").to_pylist()}) == TRIALS
    assert not _left_behind(tag), f"{where}: the resume left processes"
    leftover = _tables(pg) - before
    if sig == signal.SIGKILL:  # killed between a cell's last write and its drop: the cell is done, its table stays
        assert leftover <= killed, f"{where}: tables left after the resume: {leftover}"
        _drop(pg, leftover)
    else:
        assert not leftover, f"{where}: tables left after the resume: {leftover}"
