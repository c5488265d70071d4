"""Client CPU against a server engine: N worker processes drive a server on this machine; the
harness records the CPU its workers used and the server's, so a reader can see which side was the limit.

    .venv/bin/python scripts/services.py up chroma pgvector
    .venv/bin/python benchmarks/client_cpu_server.py [--backend chroma-server] [--concurrency 2] [--workload ycsb-a]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import _smoke

from bench.runner import RunRequest, run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", action="append", default=None)
    ap.add_argument("--workload", default="ycsb-a")
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--trials", type=int, default=3)
    _smoke.add(ap, backend=["pgvector"], n=500, duration=0.5, trials=1, concurrency=1)
    a = _smoke.parse(ap)
    print(f"{'backend':14} {'op':8} {'QPS':>8} {'P50 us':>8} {'P99 us':>8} {'client cores':>13} {'per worker':>11} "
          f"{'client-limited':>15} {'server CPU %':>13} {'server RSS MB':>14}")
    for backend in a.backend or ["chroma-server", "pgvector"]:
        out = run(RunRequest(backend=backend, workload=a.workload, trials=a.trials, concurrency=a.concurrency,
                             overrides=[f"dataset.n={a.n}", f"run.duration_s={a.duration}", "run.warmup_s=1"],
                             results_dir=Path(tempfile.mkdtemp()), quiet=True))
        for r in out.summary_rows:
            if r["op"] != "total":
                continue
            trials = [t for t in out.trial_rows if t["op"] == "total"]
            limited = any(t["client_limited"] for t in trials)
            qps, p50, p99 = (_num(r[k]) for k in ("qps", "p50_us", "p99_us"))  # a P99 under its sample floor: None
            print(f"{backend:14} {r['op']:8} {qps:>8} {p50:>8} {p99:>8} "
                  f"{r['client_cpu_cores']:>13.2f} {r['client_cpu_cores'] / a.concurrency:>11.2f} {limited!s:>15} "
                  f"{sum(t['server_cpu_mean_pct'] or 0 for t in trials) / len(trials):>13.0f} "
                  f"{(r['server_rss_peak_bytes'] or 0) / 2**20:>14.0f}")


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


if __name__ == "__main__":
    main()
