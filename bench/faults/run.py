"""`bench fault`: kill a local server during a YCSB run, restart it, and measure the recovery.

During the timed phase the harness SIGKILLs the server's whole process tree (found by its listening port, like a
crash or a killed container) at `kill_at_s`, runs the restart command at once and waits for the backend's own
health probe (`check_available`). It reports:

- `first_ok_s`: from the kill to the end of the first operation, issued after the kill, that succeeded;
- `p99_recovered_s`: from the kill to the start of the first sliding window (`window_s` long) after it that
  holds no failed operation and whose P99 is within `p99_factor` x the P99 before the fault;
- errors in the fault window (kill .. recovery) and in the whole run, per operation kind;
- durability: once the server answers again, every key whose write was acknowledged before the kill is read
  back and compared with the vector written. A key holding neither that vector nor that of a write that may have
  overwritten it (issued later, or still in flight at the kill) lost an acknowledged write.

Workers are threads, each with its own adapter (own connection); every operation is timed with
`perf_counter_ns` and kept (start, end, kind, ok), so windows and first success are exact. After a failed
operation a worker pauses `retry_pause_s` (outside any timing), as a client's retry would, so a dead server does
not turn the client into a busy loop that starves the restarting server of CPU; the adapter reconnects on its
next operation (that operation's time includes the reconnect).
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from bench.backends.base import Backend, CollectionSpec
from bench.backends.secrets import redact_command
from bench.errors import UserError
from bench.faults.nodes import ComposeNode, LocalNode, compose_node, local_node
from bench.load.driver import After, Op, drive
from bench.load.sources import YcsbSource
from bench.load.task import PhaseTask
from bench.ops.stream import OpKind
from bench.processes import (
    LOOPBACK,
    identify_engine,
    listens,
    pid_on_port,
    process_tree,
    signal_tree,
    wait_gone,
)
from bench.results import env
from bench.results.worker import WorkerResult
from bench.results.writer import new_run_id, write_json, write_parquet
from bench.run_context import Checked, RunContext, RunRequest, deferred_signals
from bench.spec import REPO_ROOT, WorkloadSpec

SERVICE_OF = {"pgvector": ("pgvector", 5432), "chroma-server": ("chroma", 8000)}  # scripts/services.py names
STEP_S = 0.05  # grid of the sliding windows
MIN_WINDOW_OPS = 5


@dataclass
class FaultRequest:
    backend: str
    workload: str = "fault-ycsb-a"
    overrides: list[str] = field(default_factory=list)
    config: str | None = None
    kill_at_s: float = 5.0
    duration_s: float = 20.0
    p99_factor: float = 2.0
    window_s: float = 1.0
    restart_cmd: str | None = None  # shell command that starts the server again; default: scripts/services.py up
    restart_delay_s: float = 0.0  # pause between the kill and the restart command
    recovery_timeout_s: float = 120.0
    retry_pause_s: float = 0.01
    node: str | None = None  # a compose service (one node of an engine cluster) to stop instead of a local server
    compose_file: Path | None = None
    node_action: str = "kill"  # docker compose kill | stop
    concurrency: int | None = None
    results_dir: Path = Path("results")
    run_id: str | None = None
    cache_dir: Path | None = None
    quiet: bool = False
    command: str = ""


@dataclass
class FaultOutcome:
    run_id: str
    run_dir: Path
    summary: dict[str, Any]
    timeline: list[dict[str, Any]]
    status: str


def _check(req: FaultRequest, spec: WorkloadSpec, cls: type[Backend]) -> None:
    if spec.kind != "ycsb" or spec.ycsb is None:
        raise UserError(f"bench fault runs a YCSB workload, and '{spec.name}' is kind '{spec.kind}'",
                        "use --workload fault-ycsb-a or another ycsb workload")
    if spec.features:
        raise UserError(f"bench fault runs a plain YCSB mix (no filtered searches, named vectors or hybrid search), "
                        f"and workload '{spec.name}' has a [{next(iter(spec.features))}] table",
                        "use a workload without feature tables, such as fault-ycsb-a")
    if not cls.capabilities.server:
        raise UserError(f"Backend '{req.backend}' runs in this process, so there is no server to kill",
                        "use a server backend such as pgvector or chroma-server")
    if not 0 < req.kill_at_s < req.duration_s:
        raise UserError(f"--kill-at {req.kill_at_s:g} must fall inside the run (0 < kill-at < --duration "
                        f"{req.duration_s:g})", "kill earlier or run longer")
    if not (req.p99_factor >= 1 and np.isfinite(req.p99_factor)):
        raise UserError(f"--p99-factor {req.p99_factor:g} must be at least 1", "give e.g. --p99-factor 2")
    if not 0 < req.window_s <= req.duration_s - req.kill_at_s:
        raise UserError(f"--window {req.window_s:g} s must be positive and fit after the kill",
                        "use a shorter window or a longer --duration")
    if not (spec.ycsb.update_proportion + spec.ycsb.insert_proportion + spec.ycsb.read_modify_write_proportion) > 0:
        raise UserError(f"Workload '{spec.name}' writes nothing, so durability cannot be checked",
                        "use a workload with updates, such as fault-ycsb-a")
    if spec.dataset.holdout == 0:
        raise UserError(f"Workload '{spec.name}' has dataset.holdout = 0, but bench fault writes held-out vectors so "
                        "it can tell each write apart", "set dataset.holdout (e.g. 2000)")
    if not cls.capabilities.get:
        raise UserError(f"Backend '{req.backend}' cannot read records back by id, which the durability check needs",
                        "choose a backend that supports get")


def _restart_command(req: FaultRequest, port: int) -> list[str]:
    if req.restart_cmd:
        return ["/bin/sh", "-c", req.restart_cmd]
    svc = SERVICE_OF.get(req.backend)
    if svc is None or svc[1] != port:
        raise UserError(f"bench fault does not know how to restart the {req.backend} server on port {port}",
                        "give --restart-cmd 'COMMAND' (it may return at once or keep running; bench waits for the "
                        "server's health)")
    return [sys.executable, "-m", "bench.services", "up", svc[0]]


# -- the workers ----------------------------------------------------------------------------------------------

@dataclass
class _Log:
    """One worker's record of every operation, kept compact (no Python object per operation). The controller
    reads the writes while the worker still appends; each append of a row is one call, so it sees whole rows."""

    spans: array = field(default_factory=lambda: array("q"))  # (start, end) ns since t0, two per operation
    kind: array = field(default_factory=lambda: array("b"))
    ok: array = field(default_factory=lambda: array("b"))
    writes: array = field(default_factory=lambda: array("q"))  # (key, holdout row, start, end, ok), five per write
    result: WorkerResult | None = None  # the driver's, once the worker is done (error counts and samples)

    def write_rows(self) -> np.ndarray:
        """The write attempts so far, as int64 (n, 5) rows (key, holdout row, start, end, ok)."""
        w = np.frombuffer(self.writes.tobytes(), dtype=np.int64)
        return w[: len(w) - len(w) % 5].reshape(-1, 5)


_WRITES = (int(OpKind.UPDATE), int(OpKind.INSERT), int(OpKind.RMW))


class _FaultSource(YcsbSource):
    """The YCSB source, logging every operation's span and every write attempt (ns since t0) for the recovery
    and durability analysis."""

    def __init__(self, backend: Backend, task: PhaseTask, ds, w: int, W: int, t0: int, log: _Log):
        super().__init__(backend, task, ds.queries, ds.base, ds.holdout, w, W, np.random.default_rng([task.seed, w]))
        self.t0, self.flog = t0, log
        self.pending: After | None = None
        self.pending_kind = 0

    def next(self) -> Op:
        kind, call, args, after = super().next()
        self.pending_kind, self.pending = kind, after
        return kind, call, args, self._done

    def _done(self, out: Any, t0: int, t1: int) -> int:
        self._log(self.pending_kind, t0, t1, 1)
        return t1 if self.pending is None else self.pending(out, t0, t1)

    def failed(self, kind: int, t0: int, t1: int) -> None:
        self._log(kind, t0, t1, 0)

    def _log(self, kind: int, t0: int, t1: int, ok: int) -> None:
        lg, s, e = self.flog, t0 - self.t0, t1 - self.t0
        lg.spans.extend((s, e))
        lg.kind.append(kind)
        lg.ok.append(ok)
        if kind in _WRITES:
            lg.writes.extend((self.key, self.row, s, e, ok))


def _worker(backend: Backend, spec: WorkloadSpec, ds, w: int, W: int, t0: int, duration_s: float,
            stop: threading.Event, retry_pause_s: float, log: _Log) -> None:
    """One worker: the YCSB mix from its start (the warm-up, before t0) until t0 + duration_s, closed loop."""
    assert spec.ycsb is not None
    task = PhaseTask(mode="ycsb", trial=0, seed=spec.dataset.seed, k=spec.search.k,
                     ef_search=spec.search.ef_search[0], duration_s=duration_s, operations=None, ycsb=spec.ycsb,
                     record_count=ds.n)
    log.result = drive(_FaultSource(backend, task, ds, w, W, t0, log), task, worker=w, epoch_ns=t0,
                       stop=stop.is_set, error_pause_s=retry_pause_s)


# -- the fault ------------------------------------------------------------------------------------------------

@dataclass
class _Fault:
    kill_ns: int | None = None
    killed_pid: int | None = None
    killed_procs: int = 0
    restart_rc: int | None = None
    healthy_ns: int | None = None
    snapshot: dict[int, tuple[np.ndarray | None, int]] = field(default_factory=dict)  # key -> (vector, read end ns)
    snapshot_error: str | None = None
    notes: list[str] = field(default_factory=list)
    # bench fault interrupted: the controller neither kills nor restarts any more; whoever restarts says so here
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    abort: bool = False
    restart_started: bool = False


def _controller(req: FaultRequest, cls: type[Backend], options: Any, collection: CollectionSpec, workdir: str,
                target: _Target, t0: int, logs: list[_Log], fault: _Fault, say) -> None:
    pc = time.perf_counter_ns
    wait = t0 + int(req.kill_at_s * 1e9) - pc()
    if wait > 0:
        time.sleep(wait / 1e9)
    with fault.lock:  # an interrupt waits for a kill under way, then knows whether the server is down
        if fault.abort:
            return
        stopped = _stop_node(target.node, t0, fault, say) if target.node else _kill_local(req, target, t0, fault, say)
    if not stopped:
        return
    if req.restart_delay_s > 0:
        time.sleep(req.restart_delay_s)
    log_path = Path(workdir) / "restart.log"
    with fault.lock:
        if fault.abort:  # interrupted during the outage: the interrupt restarts the server
            return
        fault.restart_started = True
        proc = _start_restart(target, log_path)
    deadline = pc() + int(req.recovery_timeout_s * 1e9)
    while pc() < deadline:
        if cls.check_available(options) is None and (target.node is None or target.node.healthy()):
            fault.healthy_ns = pc() - t0
            break
        rc = proc.poll()
        if rc not in (None, 0):
            fault.restart_rc = rc
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            fault.notes.append(f"the restart command exited {rc}: {' / '.join(tail)}")
            return
        time.sleep(0.05)
    fault.restart_rc = proc.poll()
    if fault.healthy_ns is None:
        fault.notes.append(f"the server was not healthy {req.recovery_timeout_s:g} s after the kill")
        return
    say(f"server healthy again after {(fault.healthy_ns - fault.kill_ns) / 1e9:.2f} s")
    _snapshot(cls, options, collection, workdir, t0, logs, fault, deadline)


def _start_restart(target: _Target, log_path: Path) -> subprocess.Popen:
    with open(log_path, "ab") as out:
        return subprocess.Popen(target.restart, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=str(REPO_ROOT))


def _restore_on_interrupt(req: FaultRequest, ctx: RunContext, target: _Target, fault: _Fault, say) -> None:
    """bench fault interrupted (Ctrl-C, SIGTERM): the server it stopped is started again before the run ends
    (so the run's table can be dropped), or bench says it could not and how to; further signals wait."""
    with deferred_signals():
        with fault.lock:
            fault.abort = True
            if fault.kill_ns is None:
                return  # nothing stopped yet, and now nothing will be
            started_here = not fault.restart_started
            if started_here:
                _start_restart(target, Path(ctx.workdir) / "restart.log")
                fault.restart_started = True
        how = req.restart_cmd or shlex.join(target.restart)
        ctx.rep.warn(f"interrupted while the {req.backend} server was down: " + (
            f"restarting it (`{redact_command(how)}`)" if started_here else "waiting for its restart"))
        limit = min(req.recovery_timeout_s, 120.0)
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if ctx.cls.check_available(ctx.options) is None and (target.node is None or target.node.healthy()):
                ctx.rep.warn(f"the {req.backend} server bench fault stopped answers again")
                return
            time.sleep(0.1)
    msg = (f"the {req.backend} server bench fault stopped did not answer within {limit:g} s of its restart: "
           f"start it with `{redact_command(how)}`")
    ctx.warnings.append(msg)
    ctx.rep.warn(msg)


def _stop_node(node: ComposeNode | LocalNode, t0: int, fault: _Fault, say) -> bool:
    """Stop one cluster node (a compose service, or a local server of a replicated engine); the time of the fault
    is when the command was issued."""
    say(f"stopping {node.describe()}")
    fault.kill_ns = time.perf_counter_ns() - t0
    why = node.stop()
    if why is not None:
        fault.notes.append(why)
        fault.kill_ns = None
        return False
    if isinstance(node, LocalNode):  # the time of the signal itself
        fault.killed_pid, fault.killed_procs = node.killed_pid, node.killed_procs
        fault.kill_ns = (node.killed_ns or t0) - t0
    say(f"stopped {node.service} at {fault.kill_ns / 1e9:.2f} s")
    return True


def _kill_local(req: FaultRequest, target: _Target, t0: int, fault: _Fault, say) -> bool:
    """SIGKILL the local server's process tree (found by its port)."""
    port, server_pid = target.port, target.pid
    procs = process_tree(server_pid) if listens(server_pid, port) else []
    if not procs:  # it restarted by itself since the start? look it up again (slower: scans every socket)
        pid = pid_on_port(port)
        procs = process_tree(pid) if pid is not None else []
    if not procs:
        fault.notes.append(f"no process listened on port {port} at the kill time")
        return False
    try:
        say(f"killing {identify_engine(req.backend, procs[0].pid)} and its {len(procs) - 1} child processes")
    except UserError as e:  # another process took the port since the start: it is not ours to kill
        fault.notes.append(e.sentence())
        return False
    fault.kill_ns = time.perf_counter_ns() - t0
    signal_tree(procs, signal.SIGKILL)
    fault.killed_pid, fault.killed_procs = procs[0].pid, len(procs)
    wait_gone(procs, 10)  # a supervisor restarts a server once its processes are gone
    say(f"killed the server (pid {procs[0].pid}, {len(procs)} processes) at {fault.kill_ns / 1e9:.2f} s")
    return True


def _snapshot(cls, options, collection, workdir, t0, logs, fault: _Fault, deadline: int) -> None:
    """Read back every key written (acknowledged) before the kill, right after recovery, on its own client."""
    assert fault.kill_ns is not None
    keys = sorted({int(key) for lg in logs for key, _, _, end, ok in lg.write_rows() if ok and end < fault.kill_ns})
    pc = time.perf_counter_ns
    reader = None
    while reader is None and pc() < deadline:
        try:
            reader = cls(options, workdir)
            reader.connect()
            reader.attach(collection)
        except Exception as e:  # noqa: BLE001 - the server may still be warming up
            fault.snapshot_error = f"{type(e).__name__}: {e}"
            reader = None
            time.sleep(0.1)
    if reader is None:
        return
    fault.snapshot_error = None
    try:
        for key in keys:
            while True:
                try:
                    rec = reader.get(key)
                    break
                except Exception as e:  # noqa: BLE001
                    if pc() > deadline:
                        fault.snapshot_error = f"read-back of key {key} failed: {type(e).__name__}: {e}"
                        return
                    time.sleep(0.05)
            vec = None if rec is None or rec.vector is None else np.asarray(rec.vector, dtype=np.float32)
            fault.snapshot[key] = (vec, pc() - t0)
    finally:
        try:
            reader.close()
        except Exception:  # noqa: BLE001
            pass


# -- analysis -------------------------------------------------------------------------------------------------

def _p99(lat_us: np.ndarray) -> float | None:
    return float(np.percentile(lat_us, 99, method="higher")) if len(lat_us) else None


def analyse(start: np.ndarray, end: np.ndarray, kind: np.ndarray, ok: np.ndarray, kill_ns: int | None,
            duration_ns: int, window_s: float, p99_factor: float,
            labels: dict[int, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Recovery figures and the sliding-window timeline from per-operation arrays (ns since the phase start)."""
    lat = (end - start) / 1e3
    w = int(window_s * 1e9)
    out: dict[str, Any] = {"operations": int(len(start)), "ok": int(ok.sum()), "errors": int((~ok).sum()),
                           "errors_by_op": {labels[k]: int(((kind == k) & ~ok).sum()) for k in np.unique(kind)}}
    before = ok & (end < kill_ns) if kill_ns is not None else ok
    out["p99_before_us"] = _p99(lat[before])
    out["p50_before_us"] = float(np.percentile(lat[before], 50)) if before.any() else None
    timeline = []
    order = np.argsort(end, kind="stable")
    end_s, ok_s, lat_s = end[order], ok[order], lat[order]
    for t in range(0, duration_ns - w + 1, int(STEP_S * 1e9)):
        lo, hi = np.searchsorted(end_s, [t, t + w])
        sel_ok = ok_s[lo:hi]
        p99 = _p99(lat_s[lo:hi][sel_ok])
        timeline.append({"t_s": t / 1e9, "window_s": window_s, "ok": int(sel_ok.sum()),
                         "errors": int((~sel_ok).sum()), "p99_us": p99,
                         "p50_us": float(np.percentile(lat_s[lo:hi][sel_ok], 50)) if sel_ok.any() else None})
    out.update(first_ok_s=None, p99_recovered_s=None, fault_window_errors=None, fault_window_errors_by_op=None,
               first_ok_s_by_op=None, errors_end_s=None)
    if kill_ns is None:
        return out, timeline
    after = ok & (start >= kill_ns)
    if after.any():
        out["first_ok_s"] = float((end[after].min() - kill_ns) / 1e9)
    # per operation kind: with read replicas, searches may never stop while writes wait for the failover
    out["first_ok_s_by_op"] = {labels[k]: float((end[after & (kind == k)].min() - kill_ns) / 1e9)
                               if (after & (kind == k)).any() else None for k in np.unique(kind)}
    failed_after = ~ok & (end >= kill_ns)
    out["errors_end_s"] = float((end[failed_after].max() - kill_ns) / 1e9) if failed_after.any() else 0.0
    base = out["p99_before_us"]
    if base is not None:
        for row in timeline:
            t = int(row["t_s"] * 1e9)
            if t >= kill_ns and row["errors"] == 0 and row["ok"] >= MIN_WINDOW_OPS and row["p99_us"] <= p99_factor * base:
                out["p99_recovered_s"] = max(float((t - kill_ns) / 1e9), out["first_ok_s"] or 0.0)
                break
    stop_ns = kill_ns + int((out["p99_recovered_s"] if out["p99_recovered_s"] is not None else duration_ns) * 1e9)
    in_window = (start >= kill_ns) & (start < stop_ns) | ((start < kill_ns) & (end >= kill_ns))
    out["fault_window_errors"] = int((in_window & ~ok).sum())
    out["fault_window_errors_by_op"] = {labels[k]: int((in_window & ~ok & (kind == k)).sum()) for k in np.unique(kind)}
    out.update(_before_after(start, end, ok, lat, kill_ns, stop_ns, duration_ns))
    return out, timeline


def _before_after(start: np.ndarray, end: np.ndarray, ok: np.ndarray, lat: np.ndarray, kill_ns: int, back_ns: int,
                  duration_ns: int) -> dict[str, Any]:
    """Throughput and latency before the kill and after recovery (from the P99's recovery, else the end)."""
    before = ok & (end < kill_ns)
    after = ok & (start >= back_ns)
    span = (duration_ns - back_ns) / 1e9
    return {"qps_before": float(before.sum() / (kill_ns / 1e9)) if kill_ns > 0 else None,
            "qps_after": float(after.sum() / span) if span > 0 and after.any() else None,
            "p50_after_us": float(np.percentile(lat[after], 50)) if after.any() else None,
            "p99_after_us": _p99(lat[after])}


def durability(writes: list[tuple[int, int, int, int, bool]], snapshot: dict[int, tuple[np.ndarray | None, int]],
               kill_ns: int, holdout, rtol: float = 1e-5, atol: float = 1e-6) -> dict[str, Any]:
    """Which acknowledged pre-kill writes the read-back after recovery does not show.

    For each key, a* is its last write acknowledged before the kill. The value read back may be a*'s vector or
    that of any other write to the key that could have landed after it: one that overlapped a* or started after
    it, and began before the read finished (acknowledged or failed: a failed write may still have committed).
    Anything else (an older vector, the originally loaded one, no record) is a lost acknowledged write."""
    by_key: dict[int, list[tuple[int, int, int, bool]]] = {}
    for key, row, s, e, ok in writes:
        by_key.setdefault(key, []).append((row, s, e, ok))
    acked_before = sum(1 for *_, e, ok in writes if ok and e < kill_ns)
    in_flight = sum(1 for _, _, s, e, ok in writes if s < kill_ns <= e)
    lost_keys: list[int] = []
    unread = 0
    for key, attempts in by_key.items():
        pre = [a for a in attempts if a[3] and a[2] < kill_ns]
        if not pre:
            continue
        if key not in snapshot:
            unread += 1
            continue
        vec, read_end = snapshot[key]
        last = max(pre, key=lambda a: a[2])
        allowed = {last[0]} | {a[0] for a in attempts if a is not last and a[2] > last[1] and a[1] < read_end}
        if vec is None or not any(np.allclose(vec, holdout[r], rtol=rtol, atol=atol) for r in allowed):
            lost_keys.append(key)
    return {"acknowledged_writes_before_kill": acked_before, "writes_in_flight_at_kill": in_flight,
            "keys_checked": sum(1 for k in by_key if k in snapshot), "keys_not_read": unread,
            "lost_acknowledged_writes": len(lost_keys), "lost_keys_sample": lost_keys[:10]}


# -- the command ----------------------------------------------------------------------------------------------

@dataclass
class _Target:
    """The local server process a fault run kills, and how it is started again."""

    port: int
    pid: int
    restart: list[str]
    described: str  # the process, as identified: what will be killed
    node: ComposeNode | LocalNode | None = None  # --node: a cluster node stopped instead (pid and port unused)


def _find_target(req: FaultRequest, cls: type[Backend], options: Any) -> _Target:
    """Ask the engine where its server is (before anything of the run is written): it must be on this machine.
    With --node, the target is that compose service, wherever the engine's entry point is."""
    if req.node:
        servers = cls.server_nodes(options)
        if servers:  # a replicated engine whose configuration names its servers: kill one here, by its pid
            def probe(n: Any) -> bool:
                return cls.check_available(options.model_copy(update=dict(n.probe_options))) is None

            node: ComposeNode | LocalNode = local_node(req.node, servers, req.backend, req.node_action,
                                                       req.restart_cmd, probe)
        else:
            node = compose_node(req.node, req.compose_file, req.node_action, REPO_ROOT)
        return _Target(0, 0, node.start_command(), node.describe(), node)
    probe = cls(options, tempfile.gettempdir())
    probe.connect()
    try:
        address = probe.info().server_address
    finally:
        probe.close()
    if address is None:
        raise UserError(f"Backend '{req.backend}' does not report its server's address", "bench fault needs it")
    host, port = address
    if host not in LOOPBACK:
        raise UserError(f"The {req.backend} server is at {host}:{port}, not on this machine",
                        "bench fault kills a local server: point the backend at 127.0.0.1")
    pid = pid_on_port(port)
    if pid is None:
        raise UserError(f"No process on this machine listens on port {port} for {req.backend}",
                        "bench fault kills the server by its pid; run it here, not in a container it cannot see")
    return _Target(port, pid, _restart_command(req, port), identify_engine(req.backend, pid))


def run_fault(req: FaultRequest, say=None) -> FaultOutcome:
    """Load through the run context (as `bench run` does), then one timed YCSB phase with the kill in it."""
    rr = RunRequest(backend=req.backend, workload=req.workload, overrides=list(req.overrides), config=req.config,
                    results_dir=req.results_dir, cache_dir=req.cache_dir, concurrency=req.concurrency,
                    quiet=req.quiet, command=req.command)
    found: list[_Target] = []

    def extra_check(c: Checked) -> None:
        _check(req, c.spec, c.cls)
        found.append(_find_target(req, c.cls, c.options))
        rr.run_id = req.run_id or new_run_id(f"fault-{req.backend}-{c.spec.name}")

    summary: dict[str, Any] = {}
    timeline: list[dict[str, Any]] = []
    with RunContext.open(rr, extra_check) as ctx:
        target = found[0]
        ctx.extra_json.update(kind="fault", fault=_settings(req, target))
        (say or ctx.rep.say)(f"will kill the {req.backend} server at {req.kill_at_s:g} s: {target.described}")
        summary, timeline = _measure(req, ctx, target, say or ctx.rep.say)
        recovered = summary["first_ok_s"] is not None and summary["lost_acknowledged_writes"] is not None
        ctx.status = "complete" if recovered else "failed"
        write_parquet(_timeline_table(timeline), ctx.path("timeline.parquet"), checked=True)
        write_json(ctx.path("fault.json"), {"run_id": ctx.run_id, "backend": req.backend, "workload": ctx.spec.name,
                                            "status": ctx.status, **_settings(req, target), **summary,
                                            "provenance": env.provenance()}, checked=True)
    return FaultOutcome(ctx.run_id, ctx.run_dir, {"status": ctx.status, **summary}, timeline, ctx.status)


def _settings(req: FaultRequest, target: _Target) -> dict[str, Any]:
    return {"kill_at_s": req.kill_at_s, "duration_s": req.duration_s, "p99_factor": req.p99_factor,
            "window_s": req.window_s, "restart_command": redact_command(shlex.join(target.restart)),
            "restart_delay_s": req.restart_delay_s, "retry_pause_s": req.retry_pause_s,
            "node": req.node, "stop_command": redact_command(shlex.join(target.node.stop_command()))
            if target.node else None}


def _measure(req: FaultRequest, ctx: RunContext, target: _Target, say) -> tuple[dict[str, Any], list[dict]]:
    """Workers (one client each) run the mix for the whole duration while the controller kills and restarts."""
    spec, ds = ctx.spec, ctx.ds
    W = spec.run.concurrency
    logs = [_Log() for _ in range(W)]
    workers: list[Backend] = []
    for _ in range(W):
        b = ctx.cls(ctx.options, ctx.workdir)
        ctx.on_close(b.close)
        b.connect()
        b.attach(ctx.collection)
        workers.append(b)
    stop = threading.Event()
    t0 = time.perf_counter_ns() + int(spec.run.warmup_s * 1e9)
    threads = [threading.Thread(target=_worker, args=(workers[w], spec, ds, w, W, t0, req.duration_s, stop,
                                                      req.retry_pause_s, logs[w]), name=f"bench-fault-{w}",
                                daemon=True)
               for w in range(W)]
    fault = _Fault()
    ctl = threading.Thread(target=_controller, args=(req, ctx.cls, ctx.options, ctx.collection, ctx.workdir,
                                                     target, t0, logs, fault, say),
                           name="bench-fault-ctl", daemon=True)
    try:
        for t in [*threads, ctl]:
            t.start()
        end_at = t0 + int(req.duration_s * 1e9)
        while time.perf_counter_ns() < end_at:
            time.sleep(0.05)
        stop.set()
        ctl.join(timeout=req.recovery_timeout_s + 30)
    except BaseException:
        stop.set()
        _restore_on_interrupt(req, ctx, target, fault, say)
        raise
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    summary, timeline = _summarise(req, logs, fault, ds)
    summary["reconnects"] = sum(getattr(b, "reconnects", 0) for b in workers)
    assert ctx.info is not None
    summary["server_version"], summary["client_version"] = ctx.info.server_version, ctx.info.client_version
    return summary, timeline


def _summarise(req: FaultRequest, logs: list[_Log], fault: _Fault, ds: Any) -> tuple[dict[str, Any], list[dict]]:
    from bench.ops.stream import OpKind

    arrays = _arrays(logs)
    keep = arrays["start"] >= 0  # warm-up excluded
    labels = {int(k): k.label for k in OpKind}
    summary, timeline = analyse(arrays["start"][keep], arrays["end"][keep], arrays["kind"][keep],
                                arrays["ok"][keep], fault.kill_ns, int(req.duration_s * 1e9), req.window_s,
                                req.p99_factor, labels)
    writes = np.concatenate([lg.write_rows() for lg in logs]).tolist()
    summary["restart_s"] = ((fault.healthy_ns - fault.kill_ns) / 1e9
                            if fault.healthy_ns is not None and fault.kill_ns is not None else None)
    summary["killed_pid"], summary["killed_processes"] = fault.killed_pid, fault.killed_procs
    summary["kill_s"] = fault.kill_ns / 1e9 if fault.kill_ns is not None else None
    if fault.kill_ns is not None and fault.healthy_ns is not None and fault.snapshot_error is None:
        summary.update(durability(writes, fault.snapshot, fault.kill_ns, ds.holdout))
    else:
        summary.update({"acknowledged_writes_before_kill": None, "lost_acknowledged_writes": None})
    summary["durability_error"] = fault.snapshot_error
    summary["error_samples"] = [e for lg in logs if lg.result for e in lg.result.error_samples][:5]
    summary["notes"] = fault.notes
    return summary, timeline


def _arrays(logs: list[_Log]) -> dict[str, np.ndarray]:
    """Every logged operation's start, end, kind and ok, all workers together (whole rows only)."""
    parts = []
    for lg in logs:
        spans = np.frombuffer(lg.spans.tobytes(), dtype=np.int64)
        n = min(len(spans) // 2, len(lg.kind), len(lg.ok))
        parts.append((spans[: 2 * n].reshape(-1, 2), np.frombuffer(lg.kind, dtype=np.int8)[:n].copy(),
                      np.frombuffer(lg.ok, dtype=np.int8)[:n].astype(bool)))
    return {"start": np.concatenate([p[0][:, 0] for p in parts]), "end": np.concatenate([p[0][:, 1] for p in parts]),
            "kind": np.concatenate([p[1] for p in parts]), "ok": np.concatenate([p[2] for p in parts])}


def _timeline_table(rows: list[dict[str, Any]]) -> pa.Table:
    schema = pa.schema([("t_s", pa.float64()), ("window_s", pa.float64()), ("ok", pa.int64()),
                        ("errors", pa.int64()), ("p99_us", pa.float64()), ("p50_us", pa.float64())])
    return pa.Table.from_pylist(rows, schema=schema)


def format_summary(s: dict[str, Any]) -> str:
    def f(v: Any, unit: str = "") -> str:
        return "never" if v is None else (f"{v:.2f}{unit}" if isinstance(v, float) else f"{v}{unit}")

    lines = [f"status: {s.get('status')}",
             f"killed pid {s.get('killed_pid')} at {f(s.get('kill_s'), ' s')}; healthy again after "
             f"{f(s.get('restart_s'), ' s')}",
             f"first successful operation after the kill: {f(s.get('first_ok_s'), ' s')} "
             f"{json.dumps(s.get('first_ok_s_by_op'))}; last error {f(s.get('errors_end_s'), ' s')} after it",
             f"P99 back within the factor after: {f(s.get('p99_recovered_s'), ' s')} (P99 before "
             f"{f(s.get('p99_before_us'), ' us')}, after {f(s.get('p99_after_us'), ' us')}; ops/s before "
             f"{f(s.get('qps_before'))}, after {f(s.get('qps_after'))})",
             f"errors in the fault window: {s.get('fault_window_errors')} {json.dumps(s.get('fault_window_errors_by_op'))}; "
             f"in the run: {s.get('errors')} of {s.get('operations')} operations",
             f"acknowledged writes before the kill: {s.get('acknowledged_writes_before_kill')}; lost: "
             f"{s.get('lost_acknowledged_writes')}"]
    if s.get("durability_error"):
        lines.append(f"durability check failed: {s['durability_error']}")
    lines += [f"note: {n}" for n in s.get("notes", [])]
    return "\n".join(lines)


def outcome_json(o: FaultOutcome) -> str:
    return json.dumps({"run_id": o.run_id, "results": str(o.run_dir), **o.summary}, indent=2, default=str)

