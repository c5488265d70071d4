"""`bench fault`: live against private pgvector and Chroma servers (own port and data, so the kill disturbs no
other test), the recovery analysis on made-up timings, the durability check on made-up histories, and its user
errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from backend_options import no_server, start_private_server

from bench.faults import analyse, durability

SMALL = ["--set", "dataset.n=1500", "--set", "dataset.holdout=3000", "--set", "dataset.dim=32", "--set",
         "dataset.queries=20", "--set", "run.min_operations=1", "--set", "index.ef_construction=32"]


def _fault(tmp_path: Path, cache_dir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "BENCH_CACHE_DIR": str(cache_dir)}
    return subprocess.run([sys.executable, "-m", "bench.cli", "fault", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)


# -- live --------------------------------------------------------------------------------------------------------

@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["pgvector", "chroma"])
def test_fault_workload_live(tmp_path, cache_dir, kind):
    srv = start_private_server(kind)
    with srv:
        sets = [a for o in srv.overrides for a in ("--set", o)]
        p = _fault(tmp_path, cache_dir, "--backend", srv.backend, "--workload", "fault-ycsb-a", "--kill-at", "2",
                   "--duration", "8", "--p99-factor", "3", "--restart-cmd", srv.restart_shell, *SMALL, *sets, "--json")
        pid_after = srv.pid()
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-3000:])
    assert "Traceback" not in p.stderr
    out = json.loads(p.stdout)
    assert out["status"] == "complete"
    assert pid_after is not None and pid_after != out["killed_pid"], "the server was killed and a new one serves"
    assert abs(out["kill_s"] - 2.0) < 0.5
    # recovery: finite, after the kill, inside the run; the P99 recovers no earlier than the first success
    assert 0 < out["restart_s"] < 6 and 0 < out["first_ok_s"] < 6
    assert out["p99_recovered_s"] is not None and out["first_ok_s"] <= out["p99_recovered_s"] < 6
    assert out["p99_before_us"] > 0
    # errors: counted, per kind, all inside the fault window
    assert out["errors"] > 0 and out["fault_window_errors"] > 0
    assert sum(out["errors_by_op"].values()) == out["errors"]
    assert sum(out["fault_window_errors_by_op"].values()) == out["fault_window_errors"] <= out["errors"]
    assert out["ok"] + out["errors"] == out["operations"]
    # durability: every key written before the kill was read back after recovery
    assert out["durability_error"] is None
    assert out["acknowledged_writes_before_kill"] > 0
    assert out["keys_not_read"] == 0 and out["keys_checked"] > 0
    assert 0 <= out["lost_acknowledged_writes"] <= out["keys_checked"]
    assert len(out["lost_keys_sample"]) == min(10, out["lost_acknowledged_writes"])
    if kind == "pgvector":
        assert out["lost_acknowledged_writes"] == 0  # committed transactions survive a crash (WAL, fsync on)
        assert out["reconnects"] >= 1  # each worker's adapter reconnected after the restart
    # written like a run
    run_dir = tmp_path / out["results"]
    fault = json.loads((run_dir / "fault.json").read_text())
    assert fault["lost_acknowledged_writes"] == out["lost_acknowledged_writes"]
    assert fault["first_ok_s"] == out["first_ok_s"] and fault["provenance"]["git_commit"]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
    timeline = pq.read_table(run_dir / "timeline.parquet").to_pylist()
    kill, w = out["kill_s"], timeline[0]["window_s"]
    assert all(r["errors"] == 0 for r in timeline if r["t_s"] + w < kill - 0.05)  # nothing failed before
    assert any(r["errors"] > 0 for r in timeline if r["t_s"] <= kill + out["first_ok_s"] <= r["t_s"] + w + 0.05)
    # bench report draws the timeline: its windows, the kill and the recovery marked, the recovery in a sentence
    r = subprocess.run([sys.executable, "-m", "bench.cli", "report", str(run_dir), "--out", str(tmp_path / "rep")],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    page = (tmp_path / "rep" / "index.html").read_text()
    assert f"failover timeline: {run_dir.name}" in page and "Failover timeline of a bench fault run" in page
    assert "kill server" in page and "answering again (+" in page and f"{out['kill_s']:,.2f} s" in page


# -- the analysis on made-up timings ------------------------------------------------------------------------------

LABELS = {0: "read", 1: "update"}
MS = 1_000_000


def _ops(spans: list[tuple[int, int, bool]]) -> tuple[np.ndarray, ...]:
    start = np.array([s for s, _, _ in spans], dtype=np.int64)
    end = np.array([e for _, e, _ in spans], dtype=np.int64)
    ok = np.array([o for *_, o in spans], dtype=bool)
    return start, end, np.zeros(len(spans), dtype=np.int8), ok


def test_analyse_finds_first_success_and_p99_recovery():
    # 1 ms operations every 2 ms; killed at 1000 ms: failures until 1500 ms, then slow (10 ms) until 2500 ms,
    # then back to 1 ms until 4000 ms.
    spans = []
    for t in range(0, 4000, 2):
        if t < 1000:
            spans.append((t * MS, (t + 1) * MS, True))
        elif t < 1500:
            spans.append((t * MS, (t + 1) * MS, False))
        elif t < 2500:
            if t % 10 == 0:
                spans.append((t * MS, (t + 10) * MS, True))
        else:
            spans.append((t * MS, (t + 1) * MS, True))
    out, timeline = analyse(*_ops(spans), kill_ns=1000 * MS, duration_ns=4000 * MS, window_s=0.5, p99_factor=2,
                            labels=LABELS)
    assert out["p99_before_us"] == pytest.approx(1000)
    assert out["first_ok_s"] == pytest.approx(0.51)  # the op started at 1500 ms ends at 1510 ms
    assert out["p99_recovered_s"] == pytest.approx(1.5, abs=0.06)  # windows from 2500 ms on are fast again
    assert out["fault_window_errors"] == 250 and out["errors"] == 250
    assert out["errors_by_op"] == {"read": 250}
    slow = [r for r in timeline if 1.6 <= r["t_s"] <= 1.9]
    assert slow and all(r["p99_us"] == pytest.approx(10_000) and r["errors"] == 0 for r in slow)


def test_analyse_never_recovers():
    spans = [(t * MS, (t + 1) * MS, t < 1000) for t in range(0, 3000, 2)]
    out, _ = analyse(*_ops(spans), kill_ns=1000 * MS, duration_ns=3000 * MS, window_s=0.5, p99_factor=2,
                     labels=LABELS)
    assert out["first_ok_s"] is None and out["p99_recovered_s"] is None
    assert out["fault_window_errors"] == 1000


# -- the durability check on made-up histories --------------------------------------------------------------------

def test_durability_judges_each_key_by_its_history():
    holdout = np.arange(40, dtype=np.float32).reshape(10, 4)
    kill = 100
    writes = [
        (1, 0, 10, 20, True), (1, 1, 30, 40, True),          # key 1: last acked row 1, read back row 1: kept
        (2, 2, 10, 20, True), (2, 3, 30, 40, True),          # key 2: last acked row 3, read back row 2: LOST
        (3, 4, 10, 20, True), (3, 5, 90, 110, False),        # key 3: in flight at the kill (row 5) may have landed
        (4, 6, 10, 20, True), (4, 7, 150, 160, True),        # key 4: overwritten after recovery, before the read
        (5, 8, 10, 20, True),                                # key 5: the record is gone: LOST
        (6, 9, 120, 130, True),                              # key 6: only written after the kill: not judged
    ]
    snapshot = {1: (holdout[1], 500), 2: (holdout[2], 500), 3: (holdout[5], 500), 4: (holdout[7], 500),
                5: (None, 500)}
    d = durability(writes, snapshot, kill, holdout)
    assert d["acknowledged_writes_before_kill"] == 7
    assert d["writes_in_flight_at_kill"] == 1
    assert d["lost_acknowledged_writes"] == 2 and sorted(d["lost_keys_sample"]) == [2, 5]
    assert d["keys_checked"] == 5 and d["keys_not_read"] == 0
    # a write that started after the read finished cannot explain what the read saw
    late = [(7, 0, 10, 20, True), (7, 1, 600, 610, True)]
    assert durability(late, {7: (holdout[1], 500)}, kill, holdout)["lost_acknowledged_writes"] == 1


# -- user errors --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args,needle", [
    (["--backend", "chroma"], "runs in this process"),
    (["--backend", "pgvector", "--workload", "ann-smoke"], "runs a YCSB workload"),
    (["--backend", "pgvector", "--kill-at", "30", "--duration", "10"], "must fall inside the run"),
    (["--backend", "pgvector", "--p99-factor", "0.5"], "at least 1"),
    (["--backend", "pgvector", "--workload", "ycsb-c"], "writes nothing"),
    (["--backend", "pgvector", "--set", "dataset.holdout=0"], "holdout = 0"),
])
def test_fault_user_errors(tmp_path, cache_dir, args, needle):
    p = _fault(tmp_path, cache_dir, *args)
    if p.returncode == 2 and "not usable here" in p.stderr:
        no_server("pgvector", p.stderr.strip())
    assert p.returncode == 2, (p.stdout, p.stderr)
    err = p.stderr.strip()
    assert "Traceback" not in p.stderr and len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert needle in err, err
    assert not (tmp_path / "results").exists()


def test_default_restart_goes_through_scripts_services():
    from bench.errors import UserError
    from bench.faults.run import FaultRequest, _restart_command

    cmd = _restart_command(FaultRequest(backend="pgvector"), 5432)
    assert cmd[1:] == ["-m", "bench.services", "up", "pgvector"]
    assert _restart_command(FaultRequest(backend="chroma-server"), 8000)[3:] == ["up", "chroma"]
    assert _restart_command(FaultRequest(backend="pgvector", restart_cmd="pg_ctl start"), 6000) == \
        ["/bin/sh", "-c", "pg_ctl start"]
    with pytest.raises(UserError, match="--restart-cmd"):
        _restart_command(FaultRequest(backend="pgvector"), 6000)  # not the port scripts/services.py runs it on
