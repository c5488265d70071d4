"""Ray overhead: the same YCSB workload (A by default, --workload) through the local pool and through Ray actors on 1 and 2 Ray
nodes, on the null backend (the harness' ceiling) and on real servers (pgvector; `--servers pgvector,chroma,milvus`
for more); and what crossing Ray costs.

Everything runs inside a private network namespace (bench.load.ray_netns): a Ray head (1 CPU), later a second
node (1 CPU), and the private servers (bench.faults.servers.PrivateServer), all on 127.0.0.1 there. Measured with the real `bench run` command:

    local      --concurrency W                     (null: threads in one process; pgvector: W processes)
    ray 1 node --cluster 127.0.0.1:6379 --concurrency W   with only the head node up
    ray 2 nodes  the same after `ray start --address ...` added the second node (workers spread, 1 per node at W=2)

Per operation, Ray adds nothing to the timed loop (each actor runs bench.load.driver.drive on its own clock); it
costs once per phase: sending the task, the barrier, returning the encoded histograms. So the figures printed are

- QPS, P50 and the client CPU per operation of each path, each Ray run right after its local twin, and the
  Ray / local QPS ratio of each pair: what Ray costs per operation, measured (null: the harness' ceiling);
- the phase round trip: a phase of one operation per worker through RayPool.run, timed on the driver (the fixed
  cost per warm-up or trial, which a trial's seconds amortise).

    .venv/bin/python benchmarks/ray_overhead.py [--duration 3] [--trials 3] [--repeats 2] [--rounds 20]
        [--servers pgvector,milvus] [--workload ycsb-c]

Root is needed (unshare -n). The machine this runs on may be shared: the table says how busy it was.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import _smoke
import psutil

from bench.faults.servers import BACKEND_OF
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
    cmd = [sys.executable, "-m", "bench.cli", "run", "-b", backend, "-w", a.workload, "--trials", str(a.trials),
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
    ap.add_argument("--repeats", type=int, default=2, help="local / ray pairs per case, interleaved")
    ap.add_argument("--max-nodes", type=int, choices=(1, 2), default=2, help="1: the one-node stage only")
    ap.add_argument("--rounds", type=int, default=20, help="phase round trips timed")
    ap.add_argument("--workload", default="ycsb-a", help="a YCSB workload: ycsb-a (50%% read, 50%% update), "
                    "ycsb-c (reads only), ...")
    ap.add_argument("--servers", default="pgvector", help="private engine servers measured beside null, "
                    f"comma-separated: {', '.join(BACKEND_OF)}")
    _smoke.add(ap, duration=0.5, trials=1, repeats=1, rounds=2, servers="", max_nodes=1)
    a = _smoke.parse(ap)
    servers = tuple(k.strip() for k in a.servers.split(",") if k.strip())
    if not set(servers) <= set(BACKEND_OF):
        raise SystemExit(f"--servers: choose from {', '.join(BACKEND_OF)}")
    why = ray_netns.usable()
    if why:
        raise SystemExit(f"cannot run: {why}")
    load0 = os.getloadavg()[0]
    results = tempfile.mkdtemp(prefix="bench-ray-overhead-")
    rows: list[tuple[str, str, int, int, dict]] = []  # (path, backend, workers, pair, summary by op)
    probes: dict[str, list[float]] = {}
    with ray_netns.NetnsRayCluster(nodes=1, cpus=1, servers=servers) as c:
        for stage, nodes in (("ray, 1 node", 1), ("ray, 2 nodes", 2))[:a.max_nodes]:
            if nodes == 2:
                c.add_node()
            cases = [("null", [], nodes), *((BACKEND_OF[k], c.servers[k]["overrides"], 2) for k in servers)]
            for backend, ov, w in cases:
                for pair in range(a.repeats):  # local and Ray back to back, so the machine's drift hits both
                    rows.append(("local", backend, w, pair + 10 * nodes,
                                 bench_run(c, backend, ["--concurrency", str(w)], a, ov, results)))
                    rows.append((stage, backend, w, pair + 10 * nodes,
                                 bench_run(c, backend, ["--cluster", c.address, "--concurrency", str(w)], a, ov,
                                           results)))
            probes[f"{nodes} node(s), {nodes} worker(s)"] = phase_probe(c, nodes, a.rounds)
    load1 = os.getloadavg()[0]
    report(rows, probes, a, (load0, load1))


def report(rows, probes, a, loads) -> None:
    print(f"{a.workload}, 5,000 records x 32 dims, {a.trials} trials x {a.duration:g} s, closed "
          f"loop; trimmed medians per run; each Ray run right after its local twin. Machine: {psutil.cpu_count()} "
          f"cores, shared, load average {loads[0]:.1f} before and {loads[1]:.1f} after.\n")
    print("| pair | path | backend | workers | QPS (total) | QPS per worker | P50 read us | P50 update us | client CPU "
          "cores | client CPU us/op | Ray / local QPS |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    twins = {(b, w, pair): r for path, b, w, pair, r in rows if path == "local"}
    ratios: dict[tuple[str, str], list[float]] = {}
    for path, backend, w, pair, r in rows:
        t, rd, up = r["total"], r.get("read", {}), r.get("update", {})
        cpu = t.get("client_cpu_cores")
        cpu_us = (cpu / t["qps"] * 1e6) if cpu and t["qps"] else None
        ratio = None
        if path != "local":
            ratio = t["qps"] / twins[(backend, w, pair)]["total"]["qps"]
            ratios.setdefault((path, backend), []).append(ratio)
        print(f"| {pair} | {path} | {backend} | {w} | {t['qps']:,.0f} | {t['qps'] / w:,.0f} | {_f(rd.get('p50_us'))} "
              f"| {_f(up.get('p50_us'))} | {_f(cpu, '.2f')} | {_f(cpu_us, '.1f')} | {_f(ratio, '.2f')} |")
    print("\nRay against the local pool, QPS ratio per pair:")
    for (path, backend), rs in ratios.items():
        print(f"- {path}, {backend}: {', '.join(f'{x:.2f}' for x in rs)}")
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
