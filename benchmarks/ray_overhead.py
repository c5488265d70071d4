"""Ray overhead (issue 13): the same YCSB-A workload through the local pool and through Ray actors on 1 and 2 Ray
nodes, on the null backend (the harness' ceiling) and on a real pgvector server; and what crossing Ray costs.

Everything runs inside a private network namespace (bench.load.ray_netns): a Ray head (1 CPU), later a second
node (1 CPU), and a private pgvector server, all on 127.0.0.1 there. Measured with the real `bench run` command:

    local      --concurrency W                     (null: threads in one process; pgvector: W processes)
    ray 1 node --cluster 127.0.0.1:6379 --concurrency W   with only the head node up
    ray 2 nodes  the same after `ray start --address ...` added the second node (workers spread, 1 per node at W=2)

Per operation, Ray adds nothing to the timed loop (each actor runs bench.load.driver.drive on its own clock); it
costs once per phase: sending the task, the barrier, returning the encoded histograms. So the figures printed are

- QPS per worker and P50 of each path, and the per-operation difference (1/QPS per worker, in us) against the
  local pool: what Ray costs per operation, measured;
- the phase round trip: a phase of one operation per worker through RayPool.run, timed on the driver (the fixed
  cost per warm-up or trial, which a trial's seconds amortise).

    .venv/bin/python benchmarks/ray_overhead.py [--duration 3] [--trials 3] [--rounds 20]

Root is needed (unshare -n). The machine this runs on may be shared: the table says how busy it was.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import psutil

from bench.load import ray_netns

PHASE_PROBE = r'''
import json, sys, time
import numpy as np
from bench import __version__
from bench.backends.base import CollectionSpec, IndexSpec
from bench.load.ray_pool import RayPool, RaySetup
from bench.load.task import PhaseTask
from bench.load.worker import WorkerData
n, rounds = int(sys.argv[1]), int(sys.argv[2])
col = CollectionSpec(name="probe", dim=8, metric="l2", index=IndexSpec(kind="flat"))
data = WorkerData(np.zeros((16, 8), np.float32), np.zeros((16, 8), np.float32), np.zeros((16, 8), np.float32))
pool = RayPool("127.0.0.1:6379", RaySetup("null", {}, col, __version__), data, n)
task = PhaseTask(mode="search", trial=0, seed=1, k=10, ef_search=None, duration_s=None, operations=1)
pool.run(task)
times = []
for _ in range(rounds):
    t0 = time.perf_counter()
    pool.run(task)
    times.append(time.perf_counter() - t0)
pool.close()
print(json.dumps(times))
'''


def bench_run(c: ray_netns.NetnsRayCluster, backend: str, extra: list[str], a: argparse.Namespace,
              overrides: list[str], results: str) -> dict:
    cmd = [sys.executable, "-m", "bench.cli", "run", "-b", backend, "-w", "ycsb-a", "--trials", str(a.trials),
           "--set", f"run.duration_s={a.duration}", "--set", "run.warmup_s=1", "--set", "dataset.n=5000",
           "--set", "dataset.dim=32", "--set", "dataset.holdout=5000", "--results-dir", results, "-q", "--json",
           *[x for o in overrides for x in ("--set", o)], *extra]
    r = c.run(cmd, timeout=900)
    if r.returncode not in (0, 1):
        raise SystemExit(f"bench run failed ({r.returncode}): {r.stderr[-2000:]}")
    return {row["op"]: row for row in json.loads(r.stdout)["summary"]}


def phase_probe(c: ray_netns.NetnsRayCluster, n: int, rounds: int) -> list[float]:
    r = c.run([sys.executable, "-c", PHASE_PROBE, str(n), str(rounds)], timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"phase probe failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=20)
    a = ap.parse_args()
    why = ray_netns.usable()
    if why:
        raise SystemExit(f"cannot run: {why}")
    load0 = os.getloadavg()[0]
    results = tempfile.mkdtemp(prefix="bench-ray-overhead-")
    rows: list[tuple[str, str, int, dict]] = []
    probes: dict[str, list[float]] = {}
    with ray_netns.NetnsRayCluster(nodes=1, cpus=1) as c:
        pg = c.private_server("pgvector")
        cases = [("null", [], 1), ("pgvector", pg["overrides"], 2)]
        for backend, ov, w in cases:
            rows.append(("local", backend, w, bench_run(c, backend, ["--concurrency", str(w)], a, ov, results)))
        for backend, ov, w in cases:
            rows.append(("ray, 1 node", backend, w,
                         bench_run(c, backend, ["--cluster", c.address, "--concurrency", str(w)], a, ov, results)))
        probes["1 node, 1 worker"] = phase_probe(c, 1, a.rounds)
        c.add_node()
        for backend, ov, w in [("null", [], 2), ("pgvector", pg["overrides"], 2)]:
            rows.append(("ray, 2 nodes", backend, w,
                         bench_run(c, backend, ["--cluster", c.address, "--concurrency", str(w)], a, ov, results)))
        probes["2 nodes, 2 workers"] = phase_probe(c, 2, a.rounds)
    load1 = os.getloadavg()[0]
    report(rows, probes, a, (load0, load1))


def report(rows, probes, a, loads) -> None:
    print(f"YCSB-A (50% read, 50% update), 5,000 records x 32 dims, {a.trials} trials x {a.duration:g} s, closed loop; "
          f"trimmed medians. Machine: {psutil.cpu_count()} cores, shared, load average {loads[0]:.1f} before and "
          f"{loads[1]:.1f} after.\n")
    local = {(b, w): r for path, b, w, r in rows if path == "local"}
    print("| path | backend | workers | QPS (total) | QPS per worker | P50 read us | P99 read us | client CPU cores "
          "| us/op vs local, per worker |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path, backend, w, r in rows:
        t, rd = r["total"], r["read"]
        per_worker = t["qps"] / w
        base = local.get((backend, 1 if backend == "null" else 2))
        base_pw = base["total"]["qps"] / (1 if backend == "null" else 2) if base else None
        delta = (1e6 / per_worker - 1e6 / base_pw) if base_pw and path != "local" else None
        cpu = t.get("client_cpu_cores")
        print(f"| {path} | {backend} | {w} | {t['qps']:,.0f} | {per_worker:,.0f} | {_f(rd.get('p50_us'))} | "
              f"{_f(rd.get('p99_us'))} | {_f(cpu, '.2f')} | {_f(delta, '+.2f')} |")
    print("\nPhase round trip through RayPool.run (one operation per worker; the fixed cost of a warm-up or trial):")
    print("| cluster | median ms | min ms | max ms |")
    print("|---|---|---|---|")
    for name, times in probes.items():
        ms = sorted(t * 1e3 for t in times)
        print(f"| {name} | {ms[len(ms) // 2]:.1f} | {ms[0]:.1f} | {ms[-1]:.1f} |")


def _f(v, spec=",.0f") -> str:
    return "-" if v is None else format(v, spec)


if __name__ == "__main__":
    t0 = time.time()
    main()
    print(f"\n(took {time.time() - t0:.0f} s)")
