"""kind = "searchable": how soon inserted vectors are found, and the first query after a restart.

The run loads all but the last `new_vectors` rows of the dataset and waits until they are indexed. Then:

1. Searchable after: the last rows are inserted in batches (closed loop, the `insert` row), and from the last
   acknowledged insert every inserted id is searched for by its own vector, pass after pass over the ids not yet
   found, until all are found or `timeout_s` passes. `searchable_after_s` is the time from the last ack to the
   end of the search that found the last of them (resolution: one pass over the ids still missing);
   `searchable_found` the share found. Unlike the sampled visibility lag of a YCSB run, every id is checked.
2. Warm, then cold: `queries` searches on the warm engine (`search-warm`); then the engine is restarted (a
   server on loopback: stopped by its pid, SIGINT to PostgreSQL, SIGTERM otherwise, and started again with
   `restart_cmd`, default `python -m bench.services up NAME` for the servers bench's services run) or reopened
   (an embedded engine: `Backend.reopen`, from its files); `restart_s` is from the stop until the engine answers,
   `first_query_us` the first search after it, and `search-cold` the `queries` searches that follow.
   The operating system's file cache stays warm across the restart: this is a process restart, not a cold host.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from bench.backends.base import SearchParams
from bench.errors import UserError
from bench.load.driver import drive
from bench.load.sources import InsertSource, SearchSource
from bench.load.task import PhaseTask
from bench.processes import LOOPBACK, identify_engine, kill_tree, pid_on_port
from bench.results.figures import Figure
from bench.scenarios import register
from bench.scenarios._cases import rows
from bench.scenarios.base import KindScenario, RunFlags
from bench.scenarios.context import RunContext
from bench.spec import Strict

SERVICE_OF = {"pgvector": "pgvector", "chroma-server": "chroma", "milvus": "milvus"}  # bench.services names
STOP_SIGNAL = {"pgvector": signal.SIGINT}  # PostgreSQL's fast shutdown; others: SIGTERM


class SearchableOptions(Strict):
    new_vectors: int = Field(1000, ge=1, description="rows of the dataset inserted after the load")
    batch: int = Field(100, ge=1, le=100_000, description="vectors per insert call")
    timeout_s: float = Field(60.0, gt=0, le=86_400, description="give up waiting for the inserted ids after this")
    cold: bool = Field(True, description="measure the first query after a restart (server) or reopen (embedded)")
    queries: int = Field(200, ge=1, description="searches measured warm, and cold after the restart")
    restart_cmd: str | None = Field(None, description="shell command that starts the server again after bench "
                                    "stops it (default: python -m bench.services up NAME)")
    restart_timeout_s: float = Field(120.0, gt=0, le=3600, description="give up waiting for the restarted "
                                     "server after this many seconds")


@register
class SearchableScenario(KindScenario):
    core_charts = ("latency",)  # no ef_search sweep, no concurrency sweep
    figures = (
        Figure("searchable_after_s", "searchable: seconds from the last acknowledged insert until every inserted id "
               "was found by its own vector (null: not all within the timeout)", "all found after s", ",.3f",
               legend="all found after s = from the last acknowledged insert until every inserted id was found"),
        Figure("searchable_found", "searchable: share of the inserted ids found by their own vector by the end",
               "found", ".1%"),
        Figure("first_query_us", "searchable: latency of the first search after the restart or reopen, "
               "microseconds", "first query us", ",.0f"),
        Figure("restart_s", "searchable: seconds from the restart's start until the engine answered again",
               "restart s", ",.2f"),
    )
    kind = "searchable"
    mode = "search"
    Options = SearchableOptions

    @classmethod
    def validate_spec(cls, options: Any, spec: Any) -> None:
        if spec.features:
            raise ValueError(f"kind = 'searchable' inserts plain vectors; remove the [{next(iter(spec.features))}] "
                             "table")
        o = options or SearchableOptions()
        if o.new_vectors >= spec.dataset.n - spec.search.k:
            raise ValueError(f"searchable.new_vectors {o.new_vectors} must leave at least search.k of dataset.n "
                             f"{spec.dataset.n} rows loaded before it")

    @property
    def opts(self) -> SearchableOptions:
        return self.options or SearchableOptions()

    def check(self, backend: Any, options: Any, flags: RunFlags) -> list[str]:
        if flags.rate_sweep:
            raise UserError("kind = 'searchable' measures single searches, so --rate-sweep does not apply",
                            "drop --rate-sweep")
        if not self.opts.cold:
            return []
        caps = backend.capabilities
        if caps.in_process and not caps.reopen:
            raise UserError(f"Backend '{backend.name}' cannot be closed and reopened from its files through bench, "
                            "so there is no cold first query to measure",
                            "set searchable.cold = false, or use qdrant-edge")
        if not caps.in_process and self.opts.restart_cmd is None and backend.name not in SERVICE_OF:
            raise UserError(f"bench does not know how to start the {backend.name} server again",
                            "give searchable.restart_cmd, or set searchable.cold = false")
        return []

    def needs_reference(self) -> bool:
        return False

    def prepare(self, prep: Any) -> None:
        self._head = _Head(prep.ds, prep.ds.n - self.opts.new_vectors)

    def source(self) -> Any:
        return getattr(self, "_head", None)

    def measure(self, ctx: RunContext) -> bool:
        o = self.opts
        ctx.backend.set_op_timeout(ctx.spec.run.op_timeout_s)
        n0 = ctx.ds.n - o.new_vectors
        ranges = [(a, min(a + o.batch, ctx.ds.n)) for a in range(n0, ctx.ds.n, o.batch)]
        res = drive(InsertSource(ctx.backend, ctx.ds.base, ranges), self._task(len(ranges)))
        acks = res.extra["acks"]
        figures = self.searchable_after(ctx, n0, int(acks[:, 0].max()) if len(acks) else None)
        out = rows(ctx, [res], [("insert", ["insert"])], {"insert": figures}, {"trial": 0}, pool_kind="thread")
        if o.cold:
            out += self.cold_warm(ctx)
        ctx.add_rows(out)
        return True

    def _task(self, operations: int) -> PhaseTask:
        return PhaseTask(mode="search", trial=0, seed=self.spec.dataset.seed, k=self.spec.search.k,
                         ef_search=self.ef_values()[0], duration_s=None, operations=operations)

    def searchable_after(self, ctx: RunContext, n0: int, last_ack_wall_ns: int | None) -> dict[str, Any]:
        """Search every inserted id by its own vector until all are found; seconds from the last ack."""
        o, k = self.opts, self.spec.search.k
        params = SearchParams(ef_search=self.ef_values()[0])
        if last_ack_wall_ns is None:
            return {"searchable_found": 0.0}
        t_ack = time.perf_counter() - (time.time_ns() - last_ack_wall_ns) / 1e9
        missing = list(range(n0, ctx.ds.n))
        base, total = ctx.ds.base, len(missing)
        last_found = None
        while missing and time.perf_counter() - t_ack < o.timeout_s:
            still = []
            for i in missing:
                try:
                    hit = i in ctx.backend.search(base[i], k, params)
                except Exception:  # noqa: BLE001 - not found yet (the engine may refuse while it catches up)
                    hit = False
                if hit:
                    last_found = time.perf_counter()
                else:
                    still.append(i)
            missing = still
        found = 1 - len(missing) / total
        after = (last_found - t_ack) if not missing and last_found is not None else None
        ctx.rep.say(f"{total - len(missing):,} of {total:,} inserted ids found by their own vector"
                    + (f", the last {after:.3f} s after the last ack" if after is not None else ""))
        return {"searchable_after_s": after, "searchable_found": found}

    def cold_warm(self, ctx: RunContext) -> list[dict]:
        o = self.opts
        warm = drive(SearchSource(ctx.backend, ctx.ds.queries, self._task(o.queries), np.random.default_rng(1)),
                     self._task(o.queries))
        out = rows(ctx, [warm], [("search-warm", ["search"])], {}, {"trial": 0}, pool_kind="thread")
        backend, restart_s = _restart(ctx, o)
        q = ctx.ds.queries[0]
        t0 = time.perf_counter_ns()
        backend.search(q, self.spec.search.k, SearchParams(ef_search=self.ef_values()[0]))
        first_us = (time.perf_counter_ns() - t0) / 1000
        cold = drive(SearchSource(backend, ctx.ds.queries, self._task(o.queries), np.random.default_rng(1)),
                     self._task(o.queries))
        more = rows(ctx, [cold], [("search-cold", ["search"])], {"search-cold": {"first_query_us": first_us,
                                                                                 "restart_s": restart_s}},
                    {"trial": 0}, pool_kind="thread")
        ctx.rep.say(f"first query after the restart: {first_us:,.0f} us (restart {restart_s:.1f} s)")
        return out + more


class _Head:
    """The first n rows of the dataset: what the run loads before the inserts it times."""

    def __init__(self, ds: Any, n: int):
        self.ds, self.n, self.name = ds, n, f"{ds.name} (first {n:,} rows)"

    def batches(self, size: int) -> Any:
        for lo in range(0, self.n, size):
            hi = min(self.n, lo + size)
            yield np.arange(lo, hi, dtype=np.int64), self.ds.base_rows.read(lo, hi)


def _restart(ctx: RunContext, o: SearchableOptions) -> tuple[Any, float]:
    """Restart the server (or reopen the embedded engine); the adapter to search with after, and the seconds."""
    t0 = time.perf_counter()
    if ctx.cls.capabilities.in_process:
        ctx.backend.reopen()
        return ctx.backend, time.perf_counter() - t0
    addr = ctx.info.server_address if ctx.info is not None else None
    if addr is None or addr[0] not in LOOPBACK:
        raise UserError(f"the {ctx.req.backend} server is not on loopback, so bench cannot restart it",
                        "run it on this machine, or set searchable.cold = false")
    pid = pid_on_port(addr[1])
    if pid is None:
        raise UserError(f"no process of this machine listens on port {addr[1]}, so bench cannot restart the "
                        f"{ctx.req.backend} server", "set searchable.cold = false")
    ctx.rep.say(f"restarting {identify_engine(ctx.req.backend, pid)} (pid {pid})")
    kill_tree(pid, STOP_SIGNAL.get(ctx.req.backend, signal.SIGTERM), wait_s=60)
    cmd = (["/bin/sh", "-c", o.restart_cmd] if o.restart_cmd else
           [sys.executable, "-m", "bench.services", "up", SERVICE_OF[ctx.req.backend]])
    log = Path(ctx.workdir) / "restart.log"
    with open(log, "ab") as f:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
    backend = _reconnect(ctx, o, proc, log)
    return backend, time.perf_counter() - t0


def _reconnect(ctx: RunContext, o: SearchableOptions, proc: subprocess.Popen, log: Path) -> Any:
    """A new adapter on the restarted server, attached to the run's collection (dropped at the run's end)."""
    deadline = time.monotonic() + o.restart_timeout_s
    while time.monotonic() < deadline:
        if ctx.cls.check_available(ctx.options) is None:
            backend = ctx.cls(ctx.options, ctx.workdir)
            try:
                backend.connect()
                backend.attach(ctx.collection)
                backend.set_op_timeout(ctx.spec.run.op_timeout_s)
            except Exception:  # noqa: BLE001 - not ready yet
                time.sleep(0.1)
                continue
            ctx.on_close(backend.close)
            ctx.on_close(backend.drop)  # the old adapter's connection died with the server
            return backend
        if proc.poll() not in (None, 0):
            tail = log.read_text(errors="replace").strip().splitlines()[-2:]
            raise UserError(f"the restart command exited {proc.returncode}: {' / '.join(tail)}",
                            "check searchable.restart_cmd")
        time.sleep(0.1)
    raise UserError(f"the {ctx.req.backend} server did not answer within {o.restart_timeout_s:g} s of its restart",
                    "raise searchable.restart_timeout_s or check the server's log")
