"""Self-check: the harness' own ceiling (null backend) and its accuracy against a known service time
(the fake-slow backend). Used by `bench calibrate` and benchmarks/harness_overhead.py."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

from bench.backends.base import Backend, BackendOptions
from bench.backends.fake_slow import FakeSlowBackend, FakeSlowOptions
from bench.backends.null import NullBackend
from bench.load.pool import ThreadPool
from bench.load.task import PhaseTask
from bench.load.worker import WorkerData
from bench.metrics import hdr
from bench.ops.mix import YcsbSpec


@dataclass
class Calibration:
    backend: str
    mode: str
    workers: int
    ops: int
    seconds: float
    ops_per_s: float
    per_op_us: float  # wall time per operation per worker: the loop's whole cost with a no-op engine
    p50_us: float | None
    p99_us: float | None


def _data(dim: int = 768, n: int = 1000) -> WorkerData:
    rng = np.random.default_rng(0)
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return WorkerData(queries=v[:200], base=v, holdout=v[:100])


def measure(backend: Backend, mode: Literal["search", "ycsb"] = "search", operations: int = 200_000, workers: int = 1,
            ycsb: YcsbSpec | None = None) -> Calibration:
    data = _data()
    task = PhaseTask(mode=mode, trial=0, seed=1, k=10, ef_search=64, duration_s=None,
                     operations=max(1, operations // workers),
                     ycsb=ycsb or YcsbSpec(read_proportion=0.5, update_proportion=0.5), record_count=len(data.base))
    pool = ThreadPool(backend, data, workers)
    pool.run(PhaseTask(**{**task.__dict__, "operations": min(20_000, task.operations or 1), "trial": -1}))  # warm-up
    t0 = time.perf_counter()
    results, _ = pool.run(task)
    secs = time.perf_counter() - t0
    merged = hdr.merge(e for r in results for e in r.hist.values())
    st = hdr.stats(merged)
    n = merged.get_total_count()
    return Calibration(backend.name, mode, workers, n, secs, n / secs, secs * workers / n * 1e6, st["p50_us"], st["p99_us"])


@dataclass
class Verdict:
    """Can this machine measure at the resolution a run needs? From the fake-slow backend of known latency."""

    asked_us: float
    error_p50_us: float  # recorded P50 minus the latency asked: the harness's and the OS's own error
    error_p99_us: float
    floor_us: float  # the shortest latency measured within 10% at P99: ten times the P99 error
    ok: bool  # the P99 error is below 10% of the latency asked

    def sentence(self) -> str:
        state = "can" if self.ok else "cannot"
        return (f"this machine {state} measure {self.asked_us:,.0f} us operations within 10%: the harness and the "
                f"OS add {self.error_p50_us:+,.0f} us at P50 and {self.error_p99_us:+,.0f} us at P99, so latencies "
                f"from about {self.floor_us:,.0f} us up are measured within 10% at P99"
                + ("" if self.ok else "; a run whose operations are faster than that measures the machine, not "
                   "the engine (close other programs, pin the harness to a core, or use a quieter host)"))


def verdict(slow: Calibration, asked_us: float) -> Verdict:
    e50 = (slow.p50_us or 0.0) - asked_us
    e99 = (slow.p99_us or 0.0) - asked_us
    floor = 10 * max(e99, 1.0)
    return Verdict(asked_us, e50, e99, floor, abs(e99) <= 0.1 * asked_us)


def calibrate(operations: int = 200_000, slow_latency_us: float = 1000.0,
              slow_operations: int | None = None) -> list[Calibration]:
    """The null backend's search and YCSB loops (`operations` each), then the fake-slow backend's searches
    (`slow_operations`; by default about 2 s of them)."""
    slow_ops = slow_operations or max(200, int(2e6 / max(slow_latency_us, 1)))
    with tempfile.TemporaryDirectory(prefix="bench-calibrate-") as wd:  # removed after, like every work folder
        null = NullBackend(BackendOptions(), wd)
        slow = FakeSlowBackend(FakeSlowOptions(latency_us=slow_latency_us), wd)
        out = [measure(null, "search", operations), measure(null, "ycsb", operations)]
        out.append(measure(slow, "search", slow_ops))
    return out
