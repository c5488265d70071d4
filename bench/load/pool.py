"""Worker pools. In-process engines: N threads sharing one adapter. Client-server engines: N processes, each
with its own adapter (and client), started once per run and reused for every phase. Workers start each
phase together at a barrier; each sends its encoded histograms back, and the parent merges them.

A watchdog bounds every phase: each worker beats once per interval of its timed loop (when an operation ends
past the interval's end), and a worker that has not beaten for `stall_s` (run.op_timeout_s + run.phase_margin_s)
has an operation stuck past any engine call's timeout. The phase then ends with `PhaseStalled`, naming the
worker and how long it was silent; worker processes are killed (threads cannot be: they are daemons, left to
the engine's call), and the run ends failed with every finished trial written, instead of hanging on a frozen
server forever.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_any
from pathlib import Path
from typing import Any

import psutil

from bench.backends.base import Backend, CollectionSpec
from bench.load.task import PhaseTask
from bench.load.worker import WorkerData, format_exception, run_phase, settled_heap
from bench.results.worker import WorkerResult


class WorkerFailed(RuntimeError):
    pass


class WorkerLost(WorkerFailed):
    """Workers were lost during a phase (a Ray actor or node, bench.load.ray_pool): that trial fails, the run goes
    on. Carries the survivors' results and CPU seconds."""

    def __init__(self, message: str, results: list[WorkerResult], cpu_s: float | None):
        super().__init__(message)
        self.results, self.cpu_s = results, cpu_s


class PhaseStalled(WorkerFailed):
    """A worker finished no operation for longer than the stall limit: the engine stopped answering."""


NO_STALL = float("inf")
START_S = 120.0  # a worker process not ready by then (connect, attach, open the dataset) failed to start
POLL_S = 0.5  # how often the parent looks at the heartbeats while a phase runs


class Heartbeat:
    """Each worker's last sign of life (time.monotonic(), system-wide on Linux), in a list for threads or a
    shared array for processes; `beat(w)` is the driver's once-per-interval `stop` hook, so it returns False."""

    def __init__(self, slots: Any):
        self.slots = slots

    def beat(self, w: int) -> bool:
        self.slots[w] = time.monotonic()
        return False

    def reset(self, n: int) -> None:
        now = time.monotonic()
        for w in range(n):
            self.slots[w] = now

    def stalled(self, workers: Sequence[int], limit_s: float) -> tuple[int, float] | None:
        """(worker, seconds silent) of the longest-silent worker past `limit_s`, or None."""
        now = time.monotonic()
        silent = [(w, now - self.slots[w]) for w in workers]
        worst = max(silent, key=lambda x: x[1], default=None)
        return worst if worst is not None and worst[1] > limit_s else None


def stall_message(w: int, silent_s: float, limit_s: float) -> str:
    return (f"worker {w} finished no operation for {silent_s:.0f} s, past the {limit_s:g} s limit "
            "(run.op_timeout_s + run.phase_margin_s): the engine stopped answering, so the trial ends failed")


class ThreadPool:
    """N threads in this process, all driving the same in-process adapter."""

    kind = "thread"

    def __init__(self, backend: Backend, data: WorkerData, n: int, stall_s: float = NO_STALL):
        self.backend, self.data, self.n, self.stall_s = backend, data, n, stall_s
        self.heart = Heartbeat([0.0] * n)
        self.broken: str | None = None

    def run(self, task: PhaseTask) -> tuple[list[WorkerResult], float | None]:
        if self.broken:  # a thread may still be inside the engine's stuck call: never drive the engine again
            raise WorkerFailed(f"an earlier phase stalled ({self.broken})")
        barrier = threading.Barrier(self.n)
        results: list[WorkerResult | None] = [None] * self.n
        errors: list[str] = []
        heart = self.heart

        def target(w: int) -> None:
            try:
                results[w] = run_phase(self.backend, self.data, task, w, self.n, barrier.wait, heart.beat)
            except BaseException as e:  # noqa: BLE001 - reported to the parent below
                errors.append(format_exception(e))
                barrier.abort()

        threads = [threading.Thread(target=target, args=(w,), name=f"bench-worker-{w}", daemon=True)
                   for w in range(self.n)]
        heart.reset(self.n)
        with settled_heap():
            for t in threads:
                t.start()
            self._join(threads)
        if errors:
            raise WorkerFailed(errors[0])
        return [r for r in results if r is not None], None

    def _join(self, threads: list[threading.Thread]) -> None:
        while alive := [w for w, t in enumerate(threads) if t.is_alive()]:
            threads[alive[0]].join(POLL_S)
            stuck = self.heart.stalled([w for w in alive if threads[w].is_alive()], self.stall_s)
            if stuck is not None:
                self.broken = stall_message(*stuck, self.stall_s)
                raise PhaseStalled(self.broken)

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
    op_timeout_s: float | None = None  # every engine call of a timed phase gives up after this (Backend.set_op_timeout)


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel SIGKILLs this worker when the harness dies (even by SIGKILL, which it cannot handle), so
    no worker goes on querying the engine for a run that is gone. Elsewhere a worker ends at its next receive."""
    import ctypes
    import os
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the harness died before the call above took effect
        os._exit(1)


def _process_main(setup: ProcessSetup, w: int, n: int, barrier: Any, conn: Any, beats: Any, parent: int) -> None:
    import signal

    from bench import datasets
    from bench.backends import registry

    # Ctrl-C reaches the whole process group: the parent handles it (writes what finished, closes the pool);
    # a worker that took it too would die mid-phase with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)

    try:
        cls = registry.get(setup.backend_name)
        backend = cls(cls.Options.model_validate(setup.options), setup.workdir)
        backend.connect()
        backend.attach(setup.collection)
        if setup.op_timeout_s is not None:
            backend.set_op_timeout(setup.op_timeout_s)
        ds = datasets.load(setup.dataset_spec, Path(setup.cache_dir), progress=False)
        data = WorkerData(ds.queries, ds.base, ds.holdout)
        conn.send(("ready", None))
    except BaseException as e:  # noqa: BLE001
        conn.send(("error", format_exception(e)))
        return
    proc = psutil.Process()
    heart = Heartbeat(beats)
    while True:
        task = conn.recv()
        if task is None:
            break
        try:
            with settled_heap():
                c0 = proc.cpu_times()
                r = run_phase(backend, data, task, w, n, barrier.wait, heart.beat)
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

    def __init__(self, setup: ProcessSetup, n: int, on_ready: Callable[[int], None] | None = None,
                 stall_s: float = NO_STALL):
        ctx = mp.get_context("spawn")
        self.n, self.stall_s = n, stall_s
        self.barrier = ctx.Barrier(n)
        self.heart = Heartbeat(ctx.RawArray("d", n))
        self.conns = []
        self.procs = []
        for w in range(n):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_process_main, args=(setup, w, n, self.barrier, child, self.heart.slots, os.getpid()),
                            daemon=True, name=f"bench-worker-{w}")
            p.start()
            self.conns.append(parent)
            self.procs.append(p)
        start_s = START_S if stall_s == NO_STALL else max(START_S, stall_s)
        for w, c in enumerate(self.conns):
            status, payload = c.recv() if c.poll(start_s) else ("error", f"not ready after {start_s:.0f} s")
            if status != "ok" and status != "ready":
                self.close()
                raise WorkerFailed(f"worker {w} could not start: {payload}")
            if on_ready:
                on_ready(w)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def run(self, task: PhaseTask) -> tuple[list[WorkerResult], float | None]:
        if not self.conns:
            raise WorkerFailed("the worker processes were stopped after an earlier phase stalled")
        if self.barrier.broken:
            self.barrier.reset()
        self.heart.reset(self.n)
        for c in self.conns:
            c.send(task)
        results, errors, cpu = [], [], 0.0
        pending = dict(enumerate(self.conns))
        while pending:
            for c in wait_any(list(pending.values()), timeout=POLL_S):
                w = self.conns.index(c)
                del pending[w]
                try:
                    status, payload = c.recv()
                except EOFError:
                    status, payload = "error", f"worker {w} exited (code {self.procs[w].exitcode}) mid-phase"
                if status == "ok":
                    results.append(payload)
                    cpu += payload.cpu_s or 0.0
                else:
                    errors.append(payload)
            stuck = self.heart.stalled(list(pending), self.stall_s)
            if stuck is not None:
                self.kill()
                raise PhaseStalled(stall_message(*stuck, self.stall_s))
        if errors:
            raise WorkerFailed(errors[0])
        return sorted(results, key=lambda r: r.worker), cpu

    def kill(self) -> None:
        """Stop every worker now (one is stuck inside an engine call): the pool cannot run another phase."""
        for p in self.procs:
            if p.is_alive():
                p.kill()
        for p in self.procs:
            p.join(timeout=2)
        for c in self.conns:
            c.close()
        self.conns = []

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
