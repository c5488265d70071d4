"""kind = "capacity": insert until the engine refuses, a memory or disk cap is reached, or a time limit passes.

After the dataset is loaded and indexed, one writer inserts batches (closed loop) of new vectors (the dataset's
rows again, each pass shifted by a small seeded jitter so no two vectors are equal) under new ids. Once per
`check_every_s` the engine's resident memory and disk are read (bench.scenarios._cases.footprint: in-process
engines, this process and their data folder; a server on loopback whose pid is known, its process tree, and
pgvector's table size or a local server's data folder); the loop ends at the first refused insert, at
`max_rss_bytes` or `max_disk_bytes`, after `time_limit_s`, or after `max_vectors`. One row: op `insert` (the
batch latency histogram) with vectors held, RSS and disk at the end, their growth per million vectors inserted by
the loop, and what ended it.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from pydantic import Field

from bench.errors import UserError
from bench.load.driver import Op, drive
from bench.load.task import PhaseTask
from bench.results.figures import Figure
from bench.results.worker import WorkerResult
from bench.scenarios import register
from bench.scenarios._cases import Footprint, footprint, rows
from bench.scenarios.base import KindScenario, RunFlags
from bench.scenarios.context import RunContext
from bench.spec import Strict


class CapacityOptions(Strict):
    batch: int = Field(1000, ge=1, le=1_000_000, description="vectors per insert call")
    time_limit_s: float = Field(60.0, gt=0, le=7 * 86_400, description="stop inserting after this long")
    max_rss_bytes: int | None = Field(None, ge=1, description="stop when the engine's RSS reaches this")
    max_disk_bytes: int | None = Field(None, ge=1, description="stop when the engine's data on disk reaches this")
    max_vectors: int | None = Field(None, ge=1, description="stop when the collection holds this many vectors")
    check_every_s: float = Field(1.0, gt=0, le=600, description="how often memory and disk are read")
    jitter: float = Field(0.01, ge=0, le=1, description="noise added to each repeated pass over the dataset")


MIB = 1024 * 1024


@register
class CapacityScenario(KindScenario):
    core_charts = ("latency",)  # no ef_search sweep, no concurrency sweep
    figures = (
        Figure("vectors_held", "capacity: vectors acknowledged in the collection when the insert loop ended",
               "vectors held", ",.0f", legend="vectors held = acknowledged when the capacity loop ended (see ended "
               "by)"),
        Figure("rss_bytes", "capacity: the engine's resident memory at the end (see memory_from)", "RSS MiB", ",.1f",
               MIB),
        Figure("disk_bytes", "capacity: the engine's data on disk at the end (see disk_from)", "disk MiB", ",.1f",
               MIB),
        Figure("rss_per_million_bytes", "capacity: RSS growth per million vectors inserted by the capacity loop",
               "RSS MiB/M vec", ",.0f", MIB),
        Figure("disk_per_million_bytes", "capacity: disk growth per million vectors inserted by the capacity loop",
               "disk MiB/M vec", ",.0f", MIB),
        Figure("ended_by", "capacity: what ended the insert loop (refused, memory cap, disk cap, time limit, vector "
               "limit)", "ended by", "s", text=True),
        Figure("memory_from", "capacity: which process(es) the RSS is of", text=True),
        Figure("disk_from", "capacity: where the disk size is read", text=True),
    )
    kind = "capacity"
    mode = "insert"
    Options = CapacityOptions

    @classmethod
    def validate_spec(cls, options: Any, spec: Any) -> None:
        if spec.features:
            raise ValueError(f"kind = 'capacity' inserts plain vectors; remove the [{next(iter(spec.features))}] "
                             "table")
        if options is not None and options.max_vectors is not None and options.max_vectors <= spec.dataset.n:
            raise ValueError(f"capacity.max_vectors {options.max_vectors} must be above dataset.n "
                             f"{spec.dataset.n}, which is loaded first")

    def check(self, backend: Any, options: Any, flags: RunFlags) -> list[str]:
        if flags.rate_sweep:
            raise UserError("kind = 'capacity' inserts as fast as the engine takes them, so --rate-sweep does not "
                            "apply", "drop --rate-sweep")
        return []

    def needs_reference(self) -> bool:
        return False

    @property
    def opts(self) -> CapacityOptions:
        return self.options or CapacityOptions()

    def measure(self, ctx: RunContext) -> bool:
        o = self.opts
        fp = footprint(ctx, ctx.backend)
        for cap, have, what in ((o.max_rss_bytes, fp.memory_from, "memory"), (o.max_disk_bytes, fp.disk_from, "disk")):
            if cap is not None and have is None:
                raise UserError(f"capacity has a {what} cap but bench cannot read {ctx.req.backend}'s {what} here "
                                "(a server not on loopback, or whose process is not visible)",
                                f"remove capacity.max_{'rss' if what == 'memory' else 'disk'}_bytes or run the "
                                "server on this machine")
        ctx.backend.set_op_timeout(ctx.spec.run.op_timeout_s)
        src = _Source(ctx.backend, ctx.ds, o)
        watch = _Watch(fp, ctx.backend, o, ctx.ds.n, src)
        task = PhaseTask(mode="search", trial=0, seed=ctx.spec.dataset.seed, k=ctx.spec.search.k, ef_search=None,
                         duration_s=o.time_limit_s, interval_s=o.check_every_s,
                         operations=(-(-(o.max_vectors - ctx.ds.n) // o.batch)) if o.max_vectors else None)
        ctx.rep.say(f"inserting until refused, a cap or {o.time_limit_s:g} s")
        res = drive(src, task, stop=watch.stop)
        ctx.add_rows(self.rows(ctx, res, src, watch))
        return True

    def rows(self, ctx: RunContext, res: WorkerResult, src: _Source, watch: _Watch) -> list[dict]:
        o = self.opts
        inserted = src.acked
        if watch.ended is None:
            watch.ended = "vector limit" if o.max_vectors and ctx.ds.n + inserted >= o.max_vectors else "time limit"
        rss, disk = watch.fp.rss(), watch.fp.disk(ctx.backend)

        def per_million(end: int | None, start: int | None) -> float | None:
            return (end - start) / inserted * 1e6 if end is not None and start is not None and inserted else None

        figures = {"vectors_held": float(ctx.ds.n + inserted), "rss_bytes": rss, "disk_bytes": disk,
                   "rss_per_million_bytes": per_million(rss, watch.rss0),
                   "disk_per_million_bytes": per_million(disk, watch.disk0), "ended_by": watch.ended,
                   "memory_from": watch.fp.memory_from, "disk_from": watch.fp.disk_from}
        out = rows(ctx, [res], [("insert", ["insert"])], {"insert": figures}, {"trial": 0}, pool_kind="thread")
        ctx.rep.say(f"held {ctx.ds.n + inserted:,} vectors; ended by {watch.ended}")
        return out


class _Source:
    """Batches of new vectors under new ids (from dataset.n up): the dataset's rows, each pass jittered."""

    labels = ("insert",)

    def __init__(self, backend: Any, ds: Any, o: CapacityOptions):
        self.insert, self.ds, self.o = backend.insert, ds, o
        self.next_id = ds.n
        self.acked = 0
        self.refused: str | None = None
        self.cur = 0

    def next(self) -> Op:
        n, b = self.ds.n, self.o.batch
        lo = self.next_id
        self.next_id += b
        rows = (np.arange(lo, lo + b) - n) % n
        vecs = np.take(self.ds.base, rows, axis=0).astype(np.float32)
        rng = np.random.default_rng([self.ds.n, lo])
        vecs = vecs + rng.normal(0.0, self.o.jitter, size=vecs.shape).astype(np.float32)
        self.cur = b
        return 0, self.insert, (np.arange(lo, lo + b, dtype=np.int64), vecs), self._acked

    def _acked(self, out: Any, t0: int, t1: int) -> int:
        self.acked += self.cur
        return t1

    def failed(self, kind: int, t0: int, t1: int) -> None:
        self.refused = self.refused or "refused"

    def finish(self, res: WorkerResult, start_ns: int, wall0_ns: int) -> None:
        pass


class _Watch:
    """Reads memory and disk once per interval; says when the loop must end, and why."""

    def __init__(self, fp: Footprint, backend: Any, o: CapacityOptions, n0: int, src: _Source):
        self.fp, self.backend, self.o, self.n0, self.src = fp, backend, o, n0, src
        self.rss0, self.disk0 = fp.rss(), fp.disk(backend)
        self.ended: str | None = None
        self.t0 = time.monotonic()

    def stop(self) -> bool:
        o = self.o
        if self.src.refused:
            self.ended = "refused (the engine failed an insert; see error_samples)"
            return True
        rss = self.fp.rss() if o.max_rss_bytes else None
        if rss is not None and o.max_rss_bytes is not None and rss >= o.max_rss_bytes:
            self.ended = f"memory cap ({rss:,} >= {o.max_rss_bytes:,} bytes)"
            return True
        disk = self.fp.disk(self.backend) if o.max_disk_bytes else None
        if disk is not None and o.max_disk_bytes is not None and disk >= o.max_disk_bytes:
            self.ended = f"disk cap ({disk:,} >= {o.max_disk_bytes:,} bytes)"
            return True
        return False
