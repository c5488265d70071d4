"""What the kinds that measure in their own way share (streaming ingest, capacity, searchable-after): a fresh
collection on its own adapter, worker pools over it, trial rows from worker results, and the engine's memory
and disk as this machine sees them."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import psutil

from bench.backends.base import Backend, CollectionSpec
from bench.load.pool import ProcessPool, ProcessSetup, ThreadPool
from bench.load.worker import WorkerData
from bench.metrics.resources import ResourceStats
from bench.processes import LOOPBACK, pid_on_port, process_tree
from bench.results import trial as trial_rows
from bench.results.worker import WorkerResult
from bench.scenarios.context import RunContext, connected


def pool_for(ctx: RunContext, backend: Backend, collection: CollectionSpec, workdir: str, n: int) -> Any:
    """n workers over `collection`: threads sharing `backend` (in-process engines), else processes each with its
    own client; every engine call has run.op_timeout_s, and a silent worker ends the phase (as the runner's)."""
    ds, r = ctx.ds, ctx.spec.run
    stall_s = r.op_timeout_s + r.phase_margin_s
    if ctx.cls.capabilities.in_process:
        backend.set_op_timeout(r.op_timeout_s)
        return ThreadPool(backend, WorkerData(ds.queries, ds.base, ds.holdout), n, stall_s=stall_s)
    setup = ProcessSetup(ctx.req.backend, ctx.options.model_dump(), workdir, collection, ctx.spec.dataset,
                         str(ctx.cache_dir), r.op_timeout_s)
    return ProcessPool(setup, n, stall_s=stall_s)


@dataclasses.dataclass
class Fresh:
    """A collection of its own (name suffixed), on a new adapter instance, holding base rows [0, n0)."""

    backend: Backend
    collection: CollectionSpec
    workdir: str
    load_s: float
    build_s: float


@contextlib.contextmanager
def fresh_collection(ctx: RunContext, suffix: str, n0: int) -> Iterator[Fresh]:
    """Create, load rows [0, n0) and wait until indexed; drop and close at the end."""
    workdir = tempfile.mkdtemp(prefix="fresh-", dir=ctx.workdir)
    backend = ctx.cls(ctx.options, workdir)
    _, main = connected(ctx)
    coll = dataclasses.replace(main, name=f"{main.name[:50]}_{suffix}")
    created = False
    try:
        backend.connect()
        backend.create(coll)
        created = True
        t0 = time.perf_counter()
        size = backend.load_batch_size(ctx.spec.run.batch_size)
        for lo in range(0, n0, size):
            hi = min(n0, lo + size)
            backend.insert(*_rows(ctx.ds, lo, hi))
        t1 = time.perf_counter()
        backend.wait_indexed(ctx.spec.run.index_timeout_s)
        yield Fresh(backend, coll, workdir, t1 - t0, time.perf_counter() - t1)
    finally:
        with contextlib.suppress(Exception):
            if created:
                backend.drop()
        with contextlib.suppress(Exception):
            backend.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _rows(ds: Any, lo: int, hi: int) -> tuple[Any, Any]:
    import numpy as np

    return np.arange(lo, hi, dtype=np.int64), ds.base_rows.read(lo, hi)


def rows(ctx: RunContext, results: list[WorkerResult], groups: list[tuple[str, list[str]]],
         scored: Mapping[str, Mapping[str, Any]], base: Mapping[str, Any], *, pool_kind: str,
         resources: ResourceStats | None = None, scheduled_s: float | None = None,
         cpu_s: float | None = None) -> list[dict[str, Any]]:
    """The rows of one trial (bench.results.trial), with the run's provenance."""
    full = {**ctx.base_row, "ef_search": ctx.plan.kind.ef_values()[0], "target_rate": None, "arrival": None,
            "ids_file": None, **base}
    return trial_rows.rows(trial_rows.TrialInput(
        results, groups, scored, full, cpu_s, pool_kind, resources or ResourceStats(), ctx.spec.run.error_threshold,
        scheduled_s is not None, scheduled_s))


# -- the engine's memory and disk ----------------------------------------------------------------------------

@dataclasses.dataclass
class Footprint:
    """Where the engine's memory and disk are read from on this machine, or why they are not."""

    pid: int | None  # the server process (tree) whose RSS is the engine's; None: this process (in-process)
    memory_from: str | None  # a sentence: what the RSS is of; None: unknown
    disk_dir: Path | None  # a folder whose size is the engine's data (embedded engines, a local server's data)
    disk_from: str | None

    def rss(self) -> int | None:
        if self.memory_from is None:
            return None
        procs = process_tree(self.pid) if self.pid else [psutil.Process()]
        total = 0
        for p in procs:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total or None

    def disk(self, backend: Backend) -> int | None:
        if self.disk_dir is not None:
            return dir_bytes(self.disk_dir)
        if self.disk_from is not None:  # the engine's own figure (pgvector: the table with its indexes)
            extra = backend.info().extra
            v = extra.get("table_total_bytes")
            return int(v) if v is not None else None
        return None


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, f)).st_size
    return total


def footprint(ctx: RunContext, backend: Backend) -> Footprint:
    """How to read the engine's RSS and disk here: in-process engines are this process and their work folder; a
    server on loopback whose pid is known, that process tree (and its data folder when its command line names
    one); pgvector, its table's total relation size."""
    if ctx.cls.capabilities.in_process:
        return Footprint(None, "this process (the engine runs in it)", Path(backend.workdir),
                         "the engine's data folder")
    info = backend.info()
    pid = info.server_pid
    addr = info.server_address
    if pid is None and addr is not None and addr[0] in LOOPBACK:
        pid = pid_on_port(addr[1])
    memory = f"the server process tree (pid {pid})" if pid else None
    if "table_total_bytes" in info.extra:
        return Footprint(pid, memory, None, "pg_total_relation_size of the collection's table")
    data = _data_dir(pid) if pid else None
    return Footprint(pid, memory, data, f"the server's data folder {data}" if data else None)


def _data_dir(pid: int) -> Path | None:
    """The data folder a local server's command line names (`--path DIR`: chroma run; `--data DIR`: milvus-server,
    the parent of the process that listens)."""
    with contextlib.suppress(psutil.Error):
        me = psutil.Process(pid)
        procs = [me, *me.parents()[:2], *me.children(recursive=True)]
        for p in procs:
            args = p.cmdline()
            for flag in ("--path", "--data"):
                if flag in args[:-1]:
                    d = Path(args[args.index(flag) + 1])
                    if not d.is_absolute():
                        d = Path(p.cwd()) / d
                    if d.is_dir():
                        return d
    return None
