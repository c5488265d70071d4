"""Fault recovery of the server engines: `bench fault` on workload fault-ycsb-a against a private
loopback server of each engine (its own port and data folder, so the shared test servers are never killed).

For each engine and repeat: SIGKILL of the server's process tree at --kill-at, immediate restart, then the time to
the first successful operation, the time until the 1 s sliding-window P99 is back within --p99-factor of the level
before the fault, the errors in the fault window, and the acknowledged writes lost. Results go to results/<run-id>/
like any `bench fault` run; a table is printed at the end.

    .venv/bin/python benchmarks/fault_recovery.py [--engines pgvector chroma] [--kill-at 5] [--duration 20]
                                                  [--p99-factor 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import _smoke

from bench.faults import FaultRequest, run_fault
from bench.faults.servers import PrivateServer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engines", nargs="+", default=["pgvector", "chroma"], choices=["pgvector", "chroma"])
    ap.add_argument("--workload", default="fault-ycsb-a")
    ap.add_argument("--kill-at", type=float, default=5.0)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--p99-factor", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--results-dir", type=Path, default=Path("results"))
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="section.key=value")
    _smoke.add(ap, engines=["pgvector"], kill_at=1.0, duration=3.0, repeats=1, results_dir=_smoke.temp_dir,
               overrides=["dataset.n=1000", "dataset.holdout=2000", "dataset.dim=16", "dataset.queries=20",
                          "run.min_operations=1", "index.ef_construction=32"])
    a = _smoke.parse(ap)

    rows = []
    for kind in a.engines:
        for rep in range(a.repeats):
            with PrivateServer.start_new(kind) as srv:  # a fresh server and data folder for every repeat
                req = FaultRequest(backend=srv.backend, workload=a.workload, overrides=[*a.overrides, *srv.overrides],
                                   kill_at_s=a.kill_at, duration_s=a.duration, p99_factor=a.p99_factor,
                                   restart_cmd=srv.restart_shell, results_dir=a.results_dir, quiet=True,
                                   command="benchmarks/fault_recovery.py")
                out = run_fault(req, say=lambda m: None)
            s = out.summary
            rows.append({"engine": srv.backend, "repeat": rep, **s, "run_dir": str(out.run_dir)})
            print(f"{srv.backend:14s} #{rep}: {s['status']}, restart {_f(s.get('restart_s'))} s, first ok "
                  f"{_f(s.get('first_ok_s'))} s, P99 back {_f(s.get('p99_recovered_s'))} s, fault-window errors "
                  f"{s.get('fault_window_errors')}, acked writes before kill {s.get('acknowledged_writes_before_kill')},"
                  f" lost {s.get('lost_acknowledged_writes')}  ({out.run_dir})", flush=True)

    print(f"\n== fault recovery: {a.workload}, SIGKILL at {a.kill_at:g} s of {a.duration:g} s, P99 factor "
          f"{a.p99_factor:g}, median [min-max] of {a.repeats} ==")
    head = ("engine", "restart s", "first ok s", "P99 back s", "errors in window", "P99 before ms", "acked writes",
            "lost writes")
    print("  ".join(f"{h:>16s}" for h in head))
    for engine in dict.fromkeys(r["engine"] for r in rows):
        mine = [r for r in rows if r["engine"] == engine]
        cells = [engine]
        for key, scale in (("restart_s", 1), ("first_ok_s", 1), ("p99_recovered_s", 1), ("fault_window_errors", 1),
                           ("p99_before_us", 1e-3), ("acknowledged_writes_before_kill", 1),
                           ("lost_acknowledged_writes", 1)):
            vals = [r[key] * scale for r in mine if r.get(key) is not None]
            cells.append(_spread(vals) if len(vals) == len(mine) else f"{_spread(vals)} ({len(mine) - len(vals)} never)")
        print("  ".join(f"{c:>16s}" for c in cells))


def _f(v: float | None) -> str:
    return "never" if v is None else f"{v:.2f}"


def _spread(vals: list[float]) -> str:
    if not vals:
        return "-"
    fmt = (lambda v: f"{v:.0f}") if all(float(v).is_integer() for v in vals) else (lambda v: f"{v:.2f}")
    return f"{fmt(statistics.median(vals))} [{fmt(min(vals))}-{fmt(max(vals))}]"


if __name__ == "__main__":
    main()
