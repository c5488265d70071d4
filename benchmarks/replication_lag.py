"""Replication lag as users see it: under a write stream on the primary (YCSB search-under-writes: updates on the
primary, searches on one replica), how long until an acknowledged write is found by a search on that replica
(visibility lag: every Nth update is probed by searching its own vector until the id comes back), how many
probes' first search missed it (stale reads), the recall of the replica's searches against what the primary had
acknowledged when each began, and what the replication mode costs the writes (update P50/P99).

For each mode a PRIVATE primary with two hot standbys is started (bench.pgcluster, free ports, a temporary
folder, stopped by pid at the end), and each standby is measured in turn (backend.replica_dsns = [that one]):

    async          synchronous_standby_names = ''; a commit waits for its own WAL flush only
    sync           FIRST 1 (replica1, replica2), synchronous_commit = on: a commit waits for replica1's flush
    remote_apply   the same, synchronous_commit = remote_apply: a commit waits until replica1 has applied it

    python benchmarks/replication_lag.py
    python benchmarks/replication_lag.py --modes async,remote_apply --set run.trials=3 --json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.faults.servers import free_port  # noqa: E402
from bench.pgcluster import PgCluster  # noqa: E402

MODES = {"async": (False, "on"), "sync": (True, "on"), "remote_apply": (True, "remote_apply")}
DEFAULT_SETS = ["dataset.n=5000", "dataset.dim=64", "dataset.holdout=5000", "run.trials=3", "run.duration_s=4",
                "run.warmup_s=0.5", "run.visibility_sample_every=5", "index.ef_construction=64"]


def measure_node(cluster: PgCluster, node: str, sets: list[str], concurrency: int, out: Path) -> dict[str, Any]:
    """One `bench run` with the searches on `node`; the medians over its ok trials."""
    over = [o for o in cluster.overrides() if not o.startswith("backend.replica_dsns=")]
    over.append(f"backend.replica_dsns={json.dumps([cluster.node(node).dsn()])}")
    args = [sys.executable, "-m", "bench.cli", "run", "--backend", "pgvector", "--workload",
            "ycsb-search-under-writes", "--concurrency", str(concurrency), "--results-dir", str(out), "--quiet",
            *[a for s in [*over, *sets] for a in ("--set", s)]]
    p = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    if p.returncode != 0:
        raise SystemExit(f"bench run on {node} failed ({p.returncode}): {p.stderr[-2000:]}")
    (run_dir,) = sorted(out.iterdir())[-1:]
    rows = [r for r in pq.read_table(run_dir / "trials.parquet").to_pylist() if r["status"] == "ok"]

    def med(op: str, col: str) -> float | None:
        vals = [r[col] for r in rows if r["op"] == op and r[col] is not None]
        return statistics.median(vals) if vals else None

    total = [r for r in rows if r["op"] == "total"]
    probes = sum((r["visibility_probes"] or 0) + (r["visibility_missed"] or 0) for r in total)
    return {"visibility_p50_us": med("total", "visibility_p50_us"), "visibility_p99_us": med("total", "visibility_p99_us"),
            "probes": probes, "stale": sum(r["visibility_stale"] or 0 for r in total),
            "missed": sum(r["visibility_missed"] or 0 for r in total), "recall": med("search", "recall"),
            "update_p50_us": med("update", "p50_us"), "update_p99_us": med("update", "p99_us"),
            "search_qps": med("search", "qps"), "trials": len(total)}


def measure_mode(mode: str, sets: list[str], concurrency: int, results: Path) -> dict[str, dict[str, Any]]:
    sync, commit = MODES[mode]
    folder = Path(tempfile.mkdtemp(prefix="bench-lag-"))
    folder.chmod(0o755)
    cluster = None
    try:
        cluster = PgCluster.create(folder / "cluster", [free_port(), free_port(), free_port()], sync=sync,
                                   synchronous_commit=commit)
        return {node: measure_node(cluster, node, sets, concurrency, results / mode / node)
                for node in ("replica1", "replica2")}
    finally:
        if cluster is not None:
            cluster.down()
        shutil.rmtree(folder, ignore_errors=True)


def table(got: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    def f(v: float | None, spec: str = ",.0f") -> str:
        return "-" if v is None else format(v, spec)

    lines = [f"{'mode':<13} {'node':<9} {'vis P50 us':>10} {'vis P99 us':>10} {'stale':>11} {'recall':>7} "
             f"{'upd P50 us':>10} {'upd P99 us':>10}"]
    for mode, nodes in got.items():
        for node, r in nodes.items():
            stale = f"{r['stale']}/{r['probes']}"
            lines.append(f"{mode:<13} {node:<9} {f(r['visibility_p50_us']):>10} {f(r['visibility_p99_us']):>10} "
                         f"{stale:>11} {f(r['recall'], '.3f'):>7} {f(r['update_p50_us']):>10} "
                         f"{f(r['update_p99_us']):>10}")
    lines.append("vis: from the update's acknowledgement on the primary until a search on the node found it; stale: "
                 "probes whose first search missed it; recall: against what the primary had acknowledged")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--modes", default="async,sync,remote_apply")
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--set", dest="sets", action="append", default=[], help="section.key=value (after the defaults)")
    ap.add_argument("--results-dir", type=Path, default=Path("results/replication-lag"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    modes = args.modes.split(",")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise SystemExit(f"unknown mode(s) {unknown}; choose from {', '.join(MODES)}")
    got = {m: measure_mode(m, [*DEFAULT_SETS, *args.sets], args.concurrency, args.results_dir) for m in modes}
    print(json.dumps(got, indent=2) if args.json else "\n".join(table(got)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
