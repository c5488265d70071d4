"""The harness's memory over a long trial ("never the bottleneck", item 4): one YCSB-A trial per backend through
`bench run`'s own code, with the harness process's RSS (plus any worker processes it started) sampled every
second. Prints RSS at the trial's start, its peak and its end, and the slope (least squares, MB per minute) over
the whole trial and over its second half, and the same for the anonymous part of RSS (the heap; file-backed
pages of memory-mapped files left out). Flat means a slope near 0: nothing kept per operation.

    .venv/bin/python benchmarks/memory_flat.py [--backend null --backend qdrant-edge] [--duration 60] [--n 10000]
    .venv/bin/python benchmarks/memory_flat.py --duration 600      # the 10-minute figure

An in-process engine (qdrant-edge) lives in the harness process, so its own memory (and its growth as updates
replace vectors) is part of the figure; the null backend stores nothing, so there the figure is the harness's.

--python-heap separates the two inside one process: it starts tracemalloc before the run and also samples the
memory allocated through Python's allocators (every Python object the harness keeps, and numpy's arrays, which
numpy reports to tracemalloc). Every run also samples the count of Python's small-object blocks
(sys.getallocatedblocks, free to read): a tuple or int kept per operation shows there, at full speed. An
engine written in Rust or C++ (qdrant-edge, faiss) allocates with the system allocator, so its memory is not in
that figure. tracemalloc slows every allocation, so QPS with it is lower than without; the figure is about
memory, and a trial of the same length then runs fewer operations.

    .venv/bin/python benchmarks/memory_flat.py --backend qdrant-edge --duration 600 --python-heap
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import _smoke
import numpy as np
import psutil

from bench.runner import RunRequest, run


class RssSampler:
    """RSS of this process and its children, and its anonymous part (RSS less file-backed and shared pages: the
    heap, not the pages of memory-mapped files such as an engine's segments or WAL), every `every_s` seconds."""

    def __init__(self, every_s: float = 1.0):
        # (time, rss, anon, bytes tracemalloc traced (0 when it is off), Python's small-object blocks) per sample
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
            self.samples.append((time.time(), rss, anon, tracemalloc.get_traced_memory()[0], sys.getallocatedblocks()))
            self._stop.wait(self.every_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class _Phases:
    """When each phase's loop ran (wall clock): the worker's `_Run` starts its clock and ends its loop, so the
    window excludes what the runner does after a trial (its rows, summaries and the libraries they import)."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float, float | None]] = []  # (start, end, the phase's duration_s)

    def __enter__(self) -> _Phases:
        from bench.load import driver

        self._driver, self._orig = driver, (driver._Run.start_clock, driver._Run.end)
        start_clock, end = self._orig
        started: dict[int, float] = {}

        def timed_start(run: Any, *a: Any, **kw: Any) -> Any:
            started[id(run)] = time.time()
            return start_clock(run, *a, **kw)

        def timed_end(run: Any, *a: Any, **kw: Any) -> Any:
            self.spans.append((started.pop(id(run)), time.time(), run.task.duration_s))
            return end(run, *a, **kw)

        driver._Run.start_clock, driver._Run.end = timed_start, timed_end
        return self

    def __exit__(self, *exc: object) -> None:
        self._driver._Run.start_clock, self._driver._Run.end = self._orig

    def trial(self, duration_s: float) -> tuple[float, float]:
        """(start, end) of the timed trial: the last phase that ran for `duration_s`."""
        return next((a, b) for a, b, d in reversed(self.spans) if d == duration_s)


def _slope_mb_per_min(t: np.ndarray, rss: np.ndarray) -> float | None:
    if len(t) < 3:
        return None
    return float(np.polyfit(t / 60.0, rss / 2**20, 1)[0])


def measure(backend: str, duration_s: float, n: int, workload: str, python_heap: bool = False) -> dict:
    if python_heap:
        tracemalloc.start(1)
    try:
        with tempfile.TemporaryDirectory() as d, RssSampler() as s, _Phases() as phases:
            out = run(RunRequest(backend=backend, workload=workload, trials=1, quiet=True,
                                 overrides=[f"dataset.n={n}", f"run.duration_s={duration_s}", "run.warmup_s=1"],
                                 results_dir=Path(d)))
    finally:
        tracemalloc.stop()
    begin, end = phases.trial(duration_s)
    dur = end - begin
    a = np.array(s.samples, dtype=np.float64)
    a = a[(a[:, 0] >= begin) & (a[:, 0] <= end)]
    t, rss, anon, traced, blocks = a[:, 0] - a[0, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4]
    half = t >= t[-1] / 2
    total = next(r for r in out.trial_rows if r["op"] == "total")
    ops = int(total["count"] + total["errors"])
    return {"backend": backend, "duration_s": dur, "operations": ops, "qps": total["qps"], "samples": len(t),
            "start_mb": rss[0] / 2**20, "peak_mb": rss.max() / 2**20, "end_mb": rss[-1] / 2**20,
            "slope_mb_per_min": _slope_mb_per_min(t, rss),
            "slope_second_half_mb_per_min": _slope_mb_per_min(t[half], rss[half]),
            "bytes_per_op": (rss[-1] - rss[0]) / max(1, ops),
            "anon_start_mb": anon[0] / 2**20, "anon_end_mb": anon[-1] / 2**20,
            "anon_slope_mb_per_min": _slope_mb_per_min(t, anon), **_heap(t, traced, blocks, ops)}


def _heap(t: np.ndarray, traced: np.ndarray, blocks: np.ndarray, ops: int) -> dict:
    """Python's small-object blocks at the trial's start and end, and with --python-heap the traced MB at start,
    peak and end, its slope and bytes per operation."""
    out = {"blocks_start": int(blocks[0]), "blocks_end": int(blocks[-1]), "blocks_per_op": (blocks[-1] - blocks[0]) / max(1, ops)}
    if not traced.any():
        return out
    return {**out, "heap_start_mb": traced[0] / 2**20, "heap_peak_mb": traced.max() / 2**20, "heap_end_mb": traced[-1] / 2**20,
            "heap_slope_mb_per_min": _slope_mb_per_min(t, traced), "heap_bytes_per_op": (traced[-1] - traced[0]) / max(1, ops)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", action="append", default=None, help="repeatable; default: null and qdrant-edge")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of the timed trial")
    ap.add_argument("--n", type=int, default=10_000, help="records loaded")
    ap.add_argument("--workload", default="ycsb-a")
    ap.add_argument("--python-heap", action="store_true",
                    help="also trace the Python heap (tracemalloc): the harness's own memory, without the engine's")
    ap.add_argument("--json", action="store_true")
    _smoke.add(ap, backend=["null"], duration=1.0, n=500)
    a = _smoke.parse(ap)
    rows = [measure(b, a.duration, a.n, a.workload, a.python_heap) for b in a.backend or ["null", "qdrant-edge"]]
    if a.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'backend':12} {'trial s':>7} {'ops':>11} {'QPS':>9} {'start MB':>9} {'peak MB':>8} {'end MB':>7} "
          f"{'MB/min':>7} {'MB/min 2nd half':>15} {'B/op':>6} {'anon MB start-end':>18} {'anon MB/min':>11} "
          f"{'Python blocks start-end':>24}")
    def f(v: float | None, digits: int = 1) -> str:
        return "-" if v is None else f"{v:.{digits}f}"

    for r in rows:
        print(f"{r['backend']:12} {r['duration_s']:>7.0f} {r['operations']:>11,} {r['qps']:>9,.0f} "
              f"{r['start_mb']:>9.0f} {r['peak_mb']:>8.0f} {r['end_mb']:>7.0f} {f(r['slope_mb_per_min']):>7} "
              f"{f(r['slope_second_half_mb_per_min']):>15} {r['bytes_per_op']:>6.1f} "
              f"{r['anon_start_mb']:>8.0f}-{r['anon_end_mb']:<9.0f} {f(r['anon_slope_mb_per_min']):>11} "
              f"{r['blocks_start']:>11,}-{r['blocks_end']:<12,}")
    heap = [r for r in rows if "heap_start_mb" in r]
    if heap:
        print("\nPython heap (tracemalloc: what the harness and the Python side of the client allocate; not the engine)")
        print(f"{'backend':12} {'start MB':>9} {'peak MB':>8} {'end MB':>7} {'MB/min':>7} {'B/op':>6}")
        for r in heap:
            print(f"{r['backend']:12} {r['heap_start_mb']:>9.1f} {r['heap_peak_mb']:>8.1f} {r['heap_end_mb']:>7.1f} "
                  f"{f(r['heap_slope_mb_per_min'], 2):>7} {r['heap_bytes_per_op']:>6.2f}")


if __name__ == "__main__":
    main()
