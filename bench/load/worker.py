"""One worker's phase: the op source its task asks for (a search phase or a YCSB mix, bench.load.sources),
run by the one timed loop (bench.load.driver). Every worker has its own seeded stream.

The harness' own cost per operation is measured by `bench calibrate` and benchmarks/harness_overhead.py with
the null backend.
"""

from __future__ import annotations

import contextlib
import gc
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from bench.backends.base import Backend
from bench.load.driver import MAX_ERROR_SAMPLES, SPIN_NS, drive, schedule_offsets_ns
from bench.load.sources import InsertSource, SearchSource, YcsbSource
from bench.load.task import PhaseTask
from bench.results.worker import WorkerResult

__all__ = ["MAX_ERROR_SAMPLES", "SPIN_NS", "WorkerData", "format_exception", "run_phase", "schedule_offsets_ns",
           "settled_heap"]


@dataclass
class WorkerData:
    """The vectors a worker needs; memory-mapped where the dataset is on disk. A phase's own queries (a named
    vector's, say) travel in its task."""

    queries: np.ndarray
    base: np.ndarray
    holdout: np.ndarray


@contextlib.contextmanager
def settled_heap() -> Iterator[None]:
    """Around one phase of a process: collect the last phase's garbage before the clock starts, and freeze
    what survives (the dataset, the engine's client, its objects) out of the collector's reach, so a full
    collection during the timed loop walks only what the loop itself allocated. Without it, whether a
    gen-2 pass over the loaded engine's heap lands in 0.8% or 1.2% of the operations decides a P99, and
    that differs from run to run. The collector stays on: the loop's own garbage is collected as usual."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def run_phase(backend: Backend, data: WorkerData, task: PhaseTask, worker: int, workers: int,
              wait: Callable[[], Any] | None = None, beat: Callable[[int], bool] | None = None) -> WorkerResult:
    """Run one phase (a warm-up or a timed trial) of one worker. `wait` is the start barrier; `beat(worker)`
    is called past it and then once per interval of the timed loop (the pool's watchdog, bench.load.pool).
    Where the engine spreads searches over several nodes, the phase's searches per node go into
    `extra["served_by"]`."""
    before = backend.served_by()
    res = _phase(backend, data, task, worker, workers, wait, beat)
    after = backend.served_by()
    if after:
        res.extra["served_by"] = {n: c - before.get(n, 0) for n, c in after.items() if c - before.get(n, 0)}
    return res


def _phase(backend: Backend, data: WorkerData, task: PhaseTask, worker: int, workers: int,
           wait: Callable[[], Any] | None, beat: Callable[[int], bool] | None) -> WorkerResult:
    rng = np.random.default_rng([task.seed, task.trial + 1, worker])
    queries = task.queries if task.queries is not None else data.queries
    if task.mode == "ingest" and task.inserts is not None and worker < task.inserts.writers:
        plan = task.inserts  # a writer: its batches, open loop at its share of the rate, until all are acked
        ranges = plan.batches(worker)
        paced = replace(task, operations=len(ranges), duration_s=None,
                        target_rate=plan.rate / plan.writers / plan.batch, recall_sample_every=0)
        return drive(InsertSource(backend, data.base, ranges), paced, worker=worker, wait=wait)
    if task.mode in ("search", "ingest"):
        source: SearchSource | YcsbSource = SearchSource(backend, queries, task, rng)
    else:
        source = YcsbSource(backend, task, queries, data.base, data.holdout, worker, workers, rng)
    if beat is None:
        return drive(source, task, worker=worker, wait=wait)

    def started() -> None:
        if wait is not None:
            wait()
        beat(worker)

    return drive(source, task, worker=worker, wait=started, stop=lambda: beat(worker))


def format_exception(e: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(e), e)).strip()
