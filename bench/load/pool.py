"""Worker pools. In-process engines: N threads sharing one adapter. Client-server engines: N processes, each
with its own adapter (and client), started once per run and reused for every phase. Workers start each
phase together at a barrier; each sends its encoded histograms back, and the parent merges them.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.backends.base import Backend, CollectionSpec
from bench.load.task import PhaseTask, WorkerResult
from bench.load.worker import WorkerData, format_exception, run_phase, settled_heap


class WorkerFailed(RuntimeError):
    pass


class WorkerLost(WorkerFailed):
    """Workers were lost during a phase (a Ray actor or node, bench.load.ray_pool): that trial fails, the run goes
    on. Carries the survivors' results and CPU seconds."""

    def __init__(self, message: str, results: list[WorkerResult], cpu_s: float | None):
        super().__init__(message)
        self.results, self.cpu_s = results, cpu_s


class ThreadPool:
    """N threads in this process, all driving the same in-process adapter."""

    kind = "thread"

    def __init__(self, backend: Backend, data: WorkerData, n: int):
        self.backend, self.data, self.n = backend, data, n

    def run(self, task: PhaseTask) -> tuple[list[WorkerResult], float | None]:
        barrier = threading.Barrier(self.n)
        results: list[WorkerResult | None] = [None] * self.n
        errors: list[str] = []

        def target(w: int) -> None:
            try:
                results[w] = run_phase(self.backend, self.data, task, w, self.n, barrier.wait)
            except BaseException as e:  # noqa: BLE001 - reported to the parent below
                errors.append(format_exception(e))
                barrier.abort()

        threads = [threading.Thread(target=target, args=(w,), name=f"bench-worker-{w}") for w in range(self.n)]
        with settled_heap():
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        if errors:
            raise WorkerFailed(errors[0])
        return [r for r in results if r is not None], None

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class ProcessSetup:
    """Everything a worker process needs to build its own adapter and open the loaded collection."""

    backend_name: str
    options: dict[str, Any]
    workdir: str
    collection: CollectionSpec
    dataset_spec: Any
    cache_dir: str


def _process_main(setup: ProcessSetup, w: int, n: int, barrier: Any, conn: Any) -> None:
    import signal

    from bench import datasets
    from bench.backends import registry

    # Ctrl-C reaches the whole process group: the parent handles it (writes what finished, closes the pool);
    # a worker that took it too would die mid-phase with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    try:
        cls = registry.get(setup.backend_name)
        backend = cls(cls.Options.model_validate(setup.options), setup.workdir)
        backend.connect()
        backend.attach(setup.collection)
        ds = datasets.load(setup.dataset_spec, Path(setup.cache_dir), progress=False)
        data = WorkerData(ds.queries, ds.base, ds.holdout)
        conn.send(("ready", None))
    except BaseException as e:  # noqa: BLE001
        conn.send(("error", format_exception(e)))
        return
    proc = psutil.Process()
    while True:
        task = conn.recv()
        if task is None:
            break
        try:
            with settled_heap():
                c0 = proc.cpu_times()
                r = run_phase(backend, data, task, w, n, barrier.wait)
                c1 = proc.cpu_times()
            r.cpu_s = (c1.user - c0.user) + (c1.system - c0.system)
            conn.send(("ok", r))
        except BaseException as e:  # noqa: BLE001
            try:
                barrier.abort()
            except Exception:  # noqa: BLE001
                pass
            conn.send(("error", format_exception(e)))
    backend.close()


class ProcessPool:
    """N worker processes, each with its own adapter; persistent for the whole run."""

    kind = "process"

    def __init__(self, setup: ProcessSetup, n: int, on_ready: Callable[[int], None] | None = None):
        ctx = mp.get_context("spawn")
        self.n = n
        self.barrier = ctx.Barrier(n)
        self.conns = []
        self.procs = []
        for w in range(n):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_process_main, args=(setup, w, n, self.barrier, child), daemon=True,
                            name=f"bench-worker-{w}")
            p.start()
            self.conns.append(parent)
            self.procs.append(p)
        for w, c in enumerate(self.conns):
            status, payload = c.recv()
            if status != "ok" and status != "ready":
                self.close()
                raise WorkerFailed(f"worker {w} could not start: {payload}")
            if on_ready:
                on_ready(w)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def run(self, task: PhaseTask) -> tuple[list[WorkerResult], float | None]:
        if self.barrier.broken:
            self.barrier.reset()
        for c in self.conns:
            c.send(task)
        results, errors, cpu = [], [], 0.0
        for c in self.conns:
            status, payload = c.recv()
            if status == "ok":
                results.append(payload)
                cpu += payload.cpu_s or 0.0
            else:
                errors.append(payload)
        if errors:
            raise WorkerFailed(errors[0])
        return results, cpu

    def close(self) -> None:
        for c in self.conns:
            try:
                c.send(None)
            except (OSError, BrokenPipeError):
                pass
        for p in self.procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=2)
