"""Read scaling over read replicas: search QPS and P99 with 0, 1 and 2 hot standbys serving the searches, at the
same concurrency sweep, through `bench run` (one run per replica count, on the same replicated PostgreSQL).

    0 replicas   backend.replica_dsns = []              every search on the primary
    1 replica    backend.replica_dsns = [replica1]       every search on replica1
    2 replicas   backend.replica_dsns = [replica1, replica2]   round robin over both

The scaling factor is QPS with N replicas over QPS with 0, at the same concurrency. The table shows the client's
CPU (client_cpu_cores: the worker processes) beside the servers' (server_cpu_mean_pct / 100: the primary and its
standbys together), other processes' (host_other_cores) and the machine's cores: on a machine where the clients and every server share a few cores,
the factor is bounded by the cores, not by the replicas, and the split says who had them.

    python scripts/services.py up pgvector-replicas
    python benchmarks/read_replicas.py --concurrency 2,4,8
    python benchmarks/read_replicas.py --config my-cluster.toml --set dataset.n=100000 --results-dir /tmp/rr
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent


def replica_dsns(config: Path, sets: list[str]) -> list[str]:
    """The replica DSNs of the configuration (a --set backend.replica_dsns=... wins)."""
    for s in sets:
        if s.startswith("backend.replica_dsns="):
            return list(json.loads(s.split("=", 1)[1]))
    return list(tomllib.loads(config.read_text()).get("replica_dsns", []))


def run(replicas: list[str], config: Path, workload: str, concurrency: str, sets: list[str],
        results: Path) -> Path:
    """One `bench run` with the searches on `replicas` (none: on the primary); returns its run folder."""
    out = results / f"replicas{len(replicas)}"
    args = [sys.executable, "-m", "bench.cli", "run", "--backend", "pgvector", "--config", str(config),
            "--workload", workload, "--concurrency", concurrency, "--results-dir", str(out), "--quiet",
            *[a for s in [*sets, f"backend.replica_dsns={json.dumps(replicas)}"] for a in ("--set", s)]]
    p = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    if p.returncode != 0:
        raise SystemExit(f"bench run with {len(replicas)} replicas failed ({p.returncode}): {p.stderr[-2000:]}")
    (run_dir,) = sorted(out.iterdir())[-1:]
    return run_dir


def figures(run_dir: Path) -> dict[int, dict[str, Any]]:
    """Per concurrency: median over the ok trials of QPS, P99, client cores, server cores; searches per node."""
    rows = [r for r in pq.read_table(run_dir / "trials.parquet").to_pylist()
            if r["op"] == "search" and r["status"] == "ok"]
    out: dict[int, dict[str, Any]] = {}
    for c in sorted({r["concurrency"] for r in rows}):
        mine = [r for r in rows if r["concurrency"] == c]

        def med(col: str, rs: list[dict] = mine) -> float | None:
            vals = [r[col] for r in rs if r[col] is not None]
            return statistics.median(vals) if vals else None

        served: dict[str, int] = {}
        for r in mine:
            for node, n in json.loads(r["served_by"] or "{}").items():
                served[node] = served.get(node, 0) + n
        server = med("server_cpu_mean_pct")
        out[c] = {"qps": med("qps"), "p99_us": med("p99_us"), "client_cores": med("client_cpu_cores"),
                  "server_cores": server / 100 if server is not None else None, "read_nodes": mine[0]["read_nodes"],
                  "other_cores": med("host_other_cores"), "served_by": served, "trials": len(mine),
                  "host_cores": mine[0]["host_cores"]}
    return out


def table(by_replicas: dict[int, dict[int, dict[str, Any]]]) -> list[str]:
    def f(v: float | None, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    lines = [f"{'replicas':>8} {'c':>3} {'QPS':>9} {'x vs 0':>7} {'P99 ms':>8} {'client cores':>12} "
             f"{'server cores':>12} {'other cores':>11}  searches per node"]
    for n, per_c in sorted(by_replicas.items()):
        for c, r in per_c.items():
            base = by_replicas.get(0, {}).get(c, {}).get("qps")
            factor = r["qps"] / base if base and r["qps"] else None
            lines.append(f"{n:>8} {c:>3} {f(r['qps'], ',.0f'):>9} {f(factor, '.2f'):>7} "
                         f"{f(r['p99_us'] and r['p99_us'] / 1000, '.1f'):>8} {f(r['client_cores'], '.2f'):>12} "
                         f"{f(r['server_cores'], '.2f'):>12} {f(r['other_cores'], '.2f'):>11}  {json.dumps(r['served_by']) if r['served_by'] else 'all on the primary'}")
    cores = next((r["host_cores"] for per_c in by_replicas.values() for r in per_c.values()), None)
    lines.append(f"this machine has {cores} cores, shared by the client workers and every server: the scaling "
                 "factor is bounded by them (client + server cores near that number means the cores were the limit, "
                 "not the replicas; other cores: what other processes took meanwhile)")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "pgvector-replicas.toml")
    ap.add_argument("--workload", default="read-replicas")
    ap.add_argument("--concurrency", default="2,4,8", help="the sweep every replica count runs")
    ap.add_argument("--replicas", default="0,1,2", help="replica counts to measure")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="section.key=value for every run")
    ap.add_argument("--results-dir", type=Path, default=Path("results/read-replicas"))
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    dsns = replica_dsns(args.config, args.sets)
    sets = [s for s in args.sets if not s.startswith("backend.replica_dsns=")]
    counts = [int(x) for x in args.replicas.split(",")]
    if max(counts) > len(dsns):
        raise SystemExit(f"{args.config} names {len(dsns)} replicas; --replicas asks for {max(counts)}")
    by_replicas = {n: figures(run(dsns[:n], args.config, args.workload, args.concurrency, sets, args.results_dir))
                   for n in counts}
    if args.json:
        print(json.dumps({str(n): {str(c): r for c, r in per.items()} for n, per in by_replicas.items()}, indent=2))
    else:
        print("\n".join(table(by_replicas)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
