"""The harness's memory over a long trial ("never the bottleneck", item 4): one YCSB-A trial per backend through
`bench run`'s own code, with the harness process's RSS (plus any worker processes it started) sampled every
second. Prints RSS at the trial's start, its peak and its end, and the slope (least squares, MB per minute) over
the whole trial and over its second half, and the same for the anonymous part of RSS (the heap; file-backed
pages of memory-mapped files left out). Flat means a slope near 0: nothing kept per operation.

    .venv/bin/python benchmarks/memory_flat.py [--backend null --backend qdrant-edge] [--duration 60] [--n 10000]
    .venv/bin/python benchmarks/memory_flat.py --duration 600      # the 10-minute figure

An in-process engine (qdrant-edge) lives in the harness process, so its own memory (and its growth as updates
replace vectors) is part of the figure; the null backend stores nothing, so there the figure is the harness's.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from bench.runner import RunRequest, run


class RssSampler:
    """RSS of this process and its children, and its anonymous part (RSS less file-backed and shared pages: the
    heap, not the pages of memory-mapped files such as an engine's segments or WAL), every `every_s` seconds."""

    def __init__(self, every_s: float = 1.0):
        self.every_s, self.samples, self._stop = every_s, [], threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            rss = anon = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    m = p.memory_info()
                except psutil.Error:
                    continue
                rss, anon = rss + m.rss, anon + m.rss - m.shared
            self.samples.append((time.time(), rss, anon))
            self._stop.wait(self.every_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class _TrialEnd:
    """The runner's live hook: when each timed trial ended (wall clock) and how long it ran."""

    def __init__(self) -> None:
        self.trials: list[tuple[float, float]] = []

    def trial_done(self, rows: list[dict]) -> None:
        self.trials.append((time.time(), float(rows[0]["duration_s"])))


def _slope_mb_per_min(t: np.ndarray, rss: np.ndarray) -> float | None:
    if len(t) < 3:
        return None
    return float(np.polyfit(t / 60.0, rss / 2**20, 1)[0])


def measure(backend: str, duration_s: float, n: int, workload: str) -> dict:
    hook = _TrialEnd()
    with tempfile.TemporaryDirectory() as d, RssSampler() as s:
        out = run(RunRequest(backend=backend, workload=workload, trials=1, live=hook, quiet=True,
                             overrides=[f"dataset.n={n}", f"run.duration_s={duration_s}", "run.warmup_s=1"],
                             results_dir=Path(d)))
    end, dur = hook.trials[0]
    a = np.array(s.samples, dtype=np.float64)
    a = a[(a[:, 0] >= end - dur) & (a[:, 0] <= end)]
    t, rss, anon = a[:, 0] - a[0, 0], a[:, 1], a[:, 2]
    half = t >= t[-1] / 2
    total = next(r for r in out.trial_rows if r["op"] == "total")
    ops = int(total["count"] + total["errors"])
    return {"backend": backend, "duration_s": dur, "operations": ops, "qps": total["qps"], "samples": len(t),
            "start_mb": rss[0] / 2**20, "peak_mb": rss.max() / 2**20, "end_mb": rss[-1] / 2**20,
            "slope_mb_per_min": _slope_mb_per_min(t, rss),
            "slope_second_half_mb_per_min": _slope_mb_per_min(t[half], rss[half]),
            "bytes_per_op": (rss[-1] - rss[0]) / max(1, ops),
            "anon_start_mb": anon[0] / 2**20, "anon_end_mb": anon[-1] / 2**20,
            "anon_slope_mb_per_min": _slope_mb_per_min(t, anon)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", action="append", default=None, help="repeatable; default: null and qdrant-edge")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of the timed trial")
    ap.add_argument("--n", type=int, default=10_000, help="records loaded")
    ap.add_argument("--workload", default="ycsb-a")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    rows = [measure(b, a.duration, a.n, a.workload) for b in a.backend or ["null", "qdrant-edge"]]
    if a.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'backend':12} {'trial s':>7} {'ops':>11} {'QPS':>9} {'start MB':>9} {'peak MB':>8} {'end MB':>7} "
          f"{'MB/min':>7} {'MB/min 2nd half':>15} {'B/op':>6} {'anon MB start-end':>18} {'anon MB/min':>11}")
    for r in rows:
        def f(v: float | None) -> str:
            return "-" if v is None else f"{v:.1f}"

        print(f"{r['backend']:12} {r['duration_s']:>7.0f} {r['operations']:>11,} {r['qps']:>9,.0f} "
              f"{r['start_mb']:>9.0f} {r['peak_mb']:>8.0f} {r['end_mb']:>7.0f} {f(r['slope_mb_per_min']):>7} "
              f"{f(r['slope_second_half_mb_per_min']):>15} {r['bytes_per_op']:>6.1f} "
              f"{r['anon_start_mb']:>8.0f}-{r['anon_end_mb']:<9.0f} {f(r['anon_slope_mb_per_min']):>11}")


if __name__ == "__main__":
    main()
