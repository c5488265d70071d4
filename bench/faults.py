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
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa

from bench import datasets
from bench.backends.base import Backend, CollectionSpec, SearchParams
from bench.backends.secrets import public_options, redact_command
from bench.errors import UserError
from bench.fault_servers import identify_engine, pid_on_port, process_tree, signal_tree, wait_gone
from bench.results import env
from bench.results.writer import make_run_dir, new_run_id, write_json, write_parquet
from bench.runner import RunRequest, prepare
from bench.spec import REPO_ROOT, WorkloadSpec

SERVICE_OF = {"pgvector": ("pgvector", 5432), "chroma-server": ("chroma", 8000)}  # scripts/services.py names
LOOPBACK = ("127.0.0.1", "localhost", "::1")
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
    if spec.filter is not None:
        raise UserError(f"bench fault does not run filtered searches, and workload '{spec.name}' has a [filter] table",
                        "use a workload without [filter] and filtered_search_proportion")
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
    return [sys.executable, str(REPO_ROOT / "scripts" / "services.py"), "up", svc[0]]


# -- the workers ----------------------------------------------------------------------------------------------

@dataclass
class _Log:
    start: list[int] = field(default_factory=list)  # ns since t0
    end: list[int] = field(default_factory=list)
    kind: list[int] = field(default_factory=list)
    ok: list[bool] = field(default_factory=list)
    writes: list[tuple[int, int, int, int, bool]] = field(default_factory=list)  # key, holdout row, start, end, ok
    errors: list[str] = field(default_factory=list)


def _worker(backend: Backend, spec: WorkloadSpec, ds, w: int, W: int, t0: int, stop: threading.Event,
            retry_pause_s: float, log: _Log) -> None:
    from bench.ops.stream import OpKind, OpStream

    assert spec.ycsb is not None
    stream = OpStream(spec.ycsb, ds.n, seed=spec.dataset.seed * 1009 + 7, worker=w, workers=W)
    params = SearchParams(ef_search=spec.search.ef_search[0])
    k = spec.search.k
    holdout, base, queries = ds.holdout, ds.base, ds.queries
    nh = len(holdout)
    next_row = w
    pc = time.perf_counter_ns
    READ, UPDATE, INSERT, SCAN, RMW = (int(OpKind.READ), int(OpKind.UPDATE), int(OpKind.INSERT), int(OpKind.SCAN),
                                       int(OpKind.RMW))
    qi = w
    while not stop.is_set():
        b = stream.next_batch(1024)
        for op, key, slen in zip(b.kinds.tolist(), b.keys.tolist(), b.scan_lengths.tolist(), strict=True):
            if stop.is_set():
                return
            row = -1
            if op in (UPDATE, INSERT, RMW):
                row = next_row % nh
                next_row += W
                vec = holdout[row]
            s = pc()
            try:
                if op == READ:
                    backend.get(key)
                elif op in (UPDATE, INSERT):
                    backend.upsert(key, vec)
                elif op == RMW:
                    backend.get(key)
                    backend.upsert(key, vec)
                elif op == SCAN:
                    backend.search(base[key % len(base)], slen, params)
                else:
                    backend.search(queries[qi % len(queries)], k, params)
                    qi += W
                ok = True
            except Exception as e:  # noqa: BLE001 - every failure is counted, never raised
                ok = False
                if len(log.errors) < 5:
                    log.errors.append(f"{OpKind(op).label}: {type(e).__name__}: {str(e).strip()[:300]}")
            e_ = pc()
            log.start.append(s - t0)
            log.end.append(e_ - t0)
            log.kind.append(op)
            log.ok.append(ok)
            if row >= 0:
                log.writes.append((key, row, s - t0, e_ - t0, ok))
            if not ok and retry_pause_s > 0:
                time.sleep(retry_pause_s)


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


def _listens(pid: int, port: int) -> bool:
    try:
        return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                   for c in psutil.Process(pid).net_connections(kind="inet"))
    except psutil.Error:
        return False


def _controller(req: FaultRequest, cls: type[Backend], options: Any, collection: CollectionSpec, workdir: str,
                port: int, server_pid: int, restart: list[str], t0: int, logs: list[_Log], fault: _Fault,
                say) -> None:
    pc = time.perf_counter_ns
    wait = t0 + int(req.kill_at_s * 1e9) - pc()
    if wait > 0:
        time.sleep(wait / 1e9)
    procs = process_tree(server_pid) if _listens(server_pid, port) else []
    if not procs:  # it restarted by itself since the start? look it up again (slower: scans every socket)
        pid = pid_on_port(port)
        procs = process_tree(pid) if pid is not None else []
    if not procs:
        fault.notes.append(f"no process listened on port {port} at the kill time")
        return
    try:
        say(f"killing {identify_engine(req.backend, procs[0].pid)} and its {len(procs) - 1} child processes")
    except UserError as e:  # another process took the port since the start: it is not ours to kill
        fault.notes.append(e.sentence())
        return
    fault.kill_ns = pc() - t0
    signal_tree(procs, signal.SIGKILL)
    fault.killed_pid, fault.killed_procs = procs[0].pid, len(procs)
    wait_gone(procs, 10)  # a supervisor restarts a server once its processes are gone
    say(f"killed the server (pid {procs[0].pid}, {len(procs)} processes) at {fault.kill_ns / 1e9:.2f} s")
    if req.restart_delay_s > 0:
        time.sleep(req.restart_delay_s)
    log_path = Path(workdir) / "restart.log"
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(restart, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=str(REPO_ROOT))
    deadline = pc() + int(req.recovery_timeout_s * 1e9)
    while pc() < deadline:
        if cls.check_available(options) is None:
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


def _snapshot(cls, options, collection, workdir, t0, logs, fault: _Fault, deadline: int) -> None:
    """Read back every key written (acknowledged) before the kill, right after recovery, on its own client."""
    assert fault.kill_ns is not None
    keys = sorted({key for lg in logs for key, _, _, end, ok in list(lg.writes) if ok and end < fault.kill_ns})
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
    out.update(first_ok_s=None, p99_recovered_s=None, fault_window_errors=None, fault_window_errors_by_op=None)
    if kill_ns is None:
        return out, timeline
    after = ok & (start >= kill_ns)
    if after.any():
        out["first_ok_s"] = float((end[after].min() - kill_ns) / 1e9)
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
    return out, timeline


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

def run_fault(req: FaultRequest, say=None) -> FaultOutcome:  # noqa: ANN001 - say: Callable[[str], None]
    from bench.ops.stream import OpKind
    from bench.runner import Reporter, _load

    rr = RunRequest(backend=req.backend, workload=req.workload, overrides=list(req.overrides), config=req.config,
                    concurrency=req.concurrency, quiet=req.quiet)
    spec, cls, options, _ = prepare(rr)
    _check(req, spec, cls)
    rep = Reporter(req.quiet)
    say = say or rep.say
    cache_dir = req.cache_dir or datasets.default_cache_dir()
    ds = datasets.load(spec.dataset, cache_dir, progress=not req.quiet)
    if ds.dim != spec.dataset.dim:
        raise UserError(f"Dataset '{ds.name}' has dimension {ds.dim} but the workload says dataset.dim = "
                        f"{spec.dataset.dim}", "fix dataset.dim or choose another dataset")
    workdir = tempfile.mkdtemp(prefix=f"bench-fault-{req.backend}-")
    backend = cls(options, workdir)
    backend.connect()
    info = backend.info()
    if info.server_address is None:
        raise UserError(f"Backend '{req.backend}' does not report its server's address", "bench fault needs it")
    host, port = info.server_address
    if host not in LOOPBACK:
        raise UserError(f"The {req.backend} server is at {host}:{port}, not on this machine",
                        "bench fault kills a local server: point the backend at 127.0.0.1")
    server_pid = pid_on_port(port)
    if server_pid is None:
        raise UserError(f"No process on this machine listens on port {port} for {req.backend}",
                        "bench fault kills the server by its pid; run it here, not in a container it cannot see")
    say(f"will kill the {req.backend} server at {req.kill_at_s:g} s: {identify_engine(req.backend, server_pid)}")
    restart = _restart_command(req, port)

    run_id = req.run_id or new_run_id(f"fault-{req.backend}-{spec.name}")
    run_dir = make_run_dir(req.results_dir, run_id)
    started = datetime.now(UTC)
    head = {"run_id": run_id, "kind": "fault", "backend": req.backend, "workload": spec.model_dump(mode="json"),
            "backend_options": public_options(options), "command": redact_command(req.command),
            "started_utc": started.isoformat(), "dataset": ds.describe(),
            "fault": {"kill_at_s": req.kill_at_s, "duration_s": req.duration_s, "p99_factor": req.p99_factor,
                      "window_s": req.window_s, "restart_command": redact_command(shlex.join(restart)),
                      "restart_delay_s": req.restart_delay_s, "retry_pause_s": req.retry_pause_s}}
    write_json(run_dir / "run.json", {**head, "status": "running"})
    status, summary, timeline = "failed", {}, []
    stop = threading.Event()
    threads: list[threading.Thread] = []
    workers: list[Backend] = []
    try:
        collection = CollectionSpec(name=f"bench_{spec.name}".replace("-", "_"), dim=ds.dim, metric=ds.metric,
                                    index=spec.index.to_spec())
        backend.create(collection)
        load_s = _load(backend, ds, spec.run.batch_size, rep)
        built = backend.wait_indexed(spec.run.index_timeout_s)
        say(f"loaded {ds.n} vectors in {load_s:.1f} s ({built.kind})")
        W = spec.run.concurrency
        logs = [_Log() for _ in range(W)]
        for _ in range(W):
            b = cls(options, workdir)
            b.connect()
            b.attach(collection)
            workers.append(b)
        warm_ns = int(spec.run.warmup_s * 1e9)
        t0 = time.perf_counter_ns() + warm_ns
        for w in range(W):
            t = threading.Thread(target=_worker, args=(workers[w], spec, ds, w, W, t0, stop, req.retry_pause_s,
                                                       logs[w]), name=f"bench-fault-{w}", daemon=True)
            t.start()
            threads.append(t)
        fault = _Fault()
        ctl = threading.Thread(target=_controller, args=(req, cls, options, collection, workdir, port, server_pid, restart, t0,
                                                         logs, fault, say), name="bench-fault-ctl", daemon=True)
        ctl.start()
        end_at = t0 + int(req.duration_s * 1e9)
        while time.perf_counter_ns() < end_at:
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        ctl.join(timeout=req.recovery_timeout_s + 30)

        arrays = _arrays(logs)
        keep = arrays["start"] >= 0  # warm-up excluded
        labels = {int(k): k.label for k in OpKind}
        summary, timeline = analyse(arrays["start"][keep], arrays["end"][keep], arrays["kind"][keep],
                                    arrays["ok"][keep], fault.kill_ns, int(req.duration_s * 1e9), req.window_s,
                                    req.p99_factor, labels)
        writes = [wr for lg in logs for wr in lg.writes]
        summary["restart_s"] = ((fault.healthy_ns - fault.kill_ns) / 1e9
                                if fault.healthy_ns is not None and fault.kill_ns is not None else None)
        summary["killed_pid"], summary["killed_processes"] = fault.killed_pid, fault.killed_procs
        summary["kill_s"] = fault.kill_ns / 1e9 if fault.kill_ns is not None else None
        if fault.kill_ns is not None and fault.healthy_ns is not None and fault.snapshot_error is None:
            summary.update(durability(writes, fault.snapshot, fault.kill_ns, ds.holdout))
        else:
            summary.update({"acknowledged_writes_before_kill": None, "lost_acknowledged_writes": None})
        summary["durability_error"] = fault.snapshot_error
        summary["reconnects"] = sum(getattr(b, "reconnects", 0) for b in workers)
        summary["error_samples"] = [e for lg in logs for e in lg.errors][:5]
        summary["notes"] = fault.notes
        summary["server_version"] = info.server_version
        summary["client_version"] = info.client_version
        recovered = summary["first_ok_s"] is not None and summary["lost_acknowledged_writes"] is not None
        status = "complete" if recovered else "failed"
        write_parquet(_timeline_table(timeline), run_dir / "timeline.parquet")
        write_json(run_dir / "fault.json", {"run_id": run_id, "backend": req.backend, "workload": spec.name,
                                            "status": status, **head["fault"], **summary,
                                            "provenance": env.provenance()})
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5)
        write_json(run_dir / "run.json", {**head, "status": status, "ended_utc": datetime.now(UTC).isoformat()})
        for b in [*workers, backend]:
            try:
                if b is backend:
                    b.drop()
                b.close()
            except Exception:  # noqa: BLE001 - cleanup must not hide the result
                pass
        shutil.rmtree(workdir, ignore_errors=True)
    return FaultOutcome(run_id, run_dir, {"status": status, **summary}, timeline, status)


def _arrays(logs: list[_Log]) -> dict[str, np.ndarray]:
    return {"start": np.concatenate([np.asarray(lg.start, dtype=np.int64) for lg in logs]),
            "end": np.concatenate([np.asarray(lg.end, dtype=np.int64) for lg in logs]),
            "kind": np.concatenate([np.asarray(lg.kind, dtype=np.int8) for lg in logs]),
            "ok": np.concatenate([np.asarray(lg.ok, dtype=bool) for lg in logs])}


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
             f"first successful operation after the kill: {f(s.get('first_ok_s'), ' s')}",
             f"P99 back within the factor after: {f(s.get('p99_recovered_s'), ' s')} (P99 before "
             f"{f(s.get('p99_before_us'), ' us')})",
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

