"""The op sources of `bench run`'s workers: a search phase and a YCSB mix. Each prepares the next operation for
the driver (bench.load.driver), before its clock starts, and keeps what the figures need of the results: the
ids of sampled searches (recall) and, when asked, one compact row per acknowledged write (ground truth under
writes). Nothing is kept per operation beyond that.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from bench.backends.base import Backend, SearchParams
from bench.load.driver import Op
from bench.load.task import PhaseTask
from bench.ops.stream import OpKind, OpStream
from bench.results.worker import WorkerResult

BATCH = 4096  # YCSB operations drawn from the stream at a time
READ, UPDATE, INSERT, SCAN, RMW, SEARCH, FSEARCH = (int(OpKind.READ), int(OpKind.UPDATE), int(OpKind.INSERT),
                                                   int(OpKind.SCAN), int(OpKind.RMW), int(OpKind.SEARCH),
                                                   int(OpKind.FILTERED_SEARCH))


def search_params(task: PhaseTask, n_queries: int, with_filter: bool = True) -> list[SearchParams] | SearchParams:
    """The SearchParams of every search of a phase: one object, or one per query when the task has per_query
    rows (built here, before the clock starts). without the filter: a YCSB phase's plain searches and scans."""
    base = dict(task.params) if with_filter else {k: v for k, v in task.params.items() if k != "filter"}
    if task.per_query is None:
        return SearchParams(ef_search=task.ef_search, **base)
    if len(task.per_query) != n_queries:
        raise ValueError(f"per_query has {len(task.per_query)} rows for {n_queries} queries: it needs one per query")
    return [SearchParams(ef_search=task.ef_search, **{**base, **row}) for row in task.per_query]


def _per_query(p: list[SearchParams] | SearchParams, n_queries: int) -> list[SearchParams]:
    """One SearchParams per query index (the same object n times when every query shares it)."""
    return [p] * n_queries if isinstance(p, SearchParams) else p


class _Kept:
    """The results of sampled searches: query index, returned ids, start time, filtered or not."""

    def __init__(self) -> None:
        self.q: list[int] = []
        self.ids: list[Any] = []
        self.t: list[int] = []
        self.filtered: list[bool] = []

    def into(self, res: WorkerResult, k: int, start_ns: int, wall0_ns: int, mixed: bool) -> None:
        """mixed: a YCSB phase, whose kept searches are filtered or not (res.search_filtered)."""
        res.search_queries = np.asarray(self.q, dtype=np.int64)
        res.search_ids = _pad(self.ids, k)
        res.search_started = (np.asarray(self.t, dtype=np.int64) - start_ns) + wall0_ns
        res.search_filtered = np.asarray(self.filtered, dtype=bool) if mixed else None


def _pad(rows: list[Any], k: int) -> np.ndarray:
    out = np.full((len(rows), k), -1, dtype=np.int64)
    for r, ids in enumerate(rows):
        m = min(len(ids), k)
        if m:
            out[r, :m] = np.fromiter(ids, dtype=np.int64, count=len(ids))[:m]
    return out


class SearchSource:
    """A search phase: the queries in a seeded order, round and round; every search's ids are kept (or every
    recall_sample_every-th)."""

    labels = ("search",)

    def __init__(self, backend: Backend, queries: np.ndarray, task: PhaseTask, rng: np.random.Generator):
        nq = len(queries)
        self.vecs = backend.prepare_queries(queries)  # converted once, so a search costs no conversion
        self.order = rng.permutation(nq).tolist()
        self.nq, self.k, self.search = nq, task.k, backend.search
        self.params = _per_query(search_params(task, nq), nq)
        self.keep_every = task.recall_sample_every or 1
        self.i = 0
        self.qi = 0
        self.kept = _Kept()

    def next(self) -> Op:
        i = self.i
        self.i = i + 1
        qi = self.order[i % self.nq]
        if i % self.keep_every:
            return 0, self.search, (self.vecs[qi], self.k, self.params[qi]), None
        self.qi = qi
        return 0, self.search, (self.vecs[qi], self.k, self.params[qi]), self._keep

    def _keep(self, ids: Any, t0: int, t1: int) -> int:
        kept = self.kept
        kept.q.append(self.qi)
        kept.ids.append(ids)
        kept.t.append(t0)
        return t1

    def failed(self, kind: int, t0: int, t1: int) -> None:
        pass

    def finish(self, res: WorkerResult, start_ns: int, wall0_ns: int) -> None:
        self.kept.into(res, self.k, start_ns, wall0_ns, mixed=False)


class _Writes:
    """The vectors one worker writes: held-out rows dealt round-robin between workers (so the ground truth can
    follow them), or random base rows when the dataset has no held-out vectors."""

    def __init__(self, holdout: np.ndarray, base: np.ndarray, worker: int, workers: int, rng: np.random.Generator):
        self.holdout, self.base, self.rng = holdout, base, rng
        self.next_row = worker  # holdout rows are dealt round-robin between workers
        self.workers = workers

    def next_holdout(self) -> int:
        nh = len(self.holdout)
        if nh == 0:
            return -1
        row = self.next_row % nh
        self.next_row += self.workers
        return row

    def vector_for_write(self, row: int) -> np.ndarray:
        if row >= 0:
            return self.holdout[row]
        return self.base[int(self.rng.integers(len(self.base)))]


class _KeyRows:
    """Which held-out row this worker last wrote to each key, in one int32 slot per key: the initial records,
    then this worker's own inserts (ids record_count + worker + i * workers) as they come."""

    def __init__(self, record_count: int, worker: int, workers: int):
        self.n, self.worker, self.workers = record_count, worker, workers
        self.rows = array("i", [-1]) * record_count

    def _slot(self, key: int) -> int:
        return key if key < self.n else self.n + (key - self.n - self.worker) // self.workers

    def get(self, key: int) -> int:
        s = self._slot(key)
        return self.rows[s] if s < len(self.rows) else -1

    def set(self, key: int, row: int) -> None:
        s = self._slot(key)
        if s >= len(self.rows):
            self.rows.extend(array("i", [-1]) * (s + 1 - len(self.rows)))
        self.rows[s] = row


class YcsbSource:
    """A YCSB mix: the worker's seeded OpStream. Writes carry held-out vectors (and the key's payload fields);
    scans search near the vector stored for their key, as far as this worker knows it; searches and filtered
    searches take the queries in a seeded order, each kind its own way round."""

    labels = tuple(k.label for k in OpKind)

    def __init__(self, backend: Backend, task: PhaseTask, queries: np.ndarray, base: np.ndarray,
                 holdout: np.ndarray, worker: int, workers: int, rng: np.random.Generator):
        assert task.ycsb is not None
        self.stream = OpStream(task.ycsb, task.record_count, seed=task.seed * 1009 + task.trial + 1,
                               worker=worker, workers=workers)
        self.writes = _Writes(holdout, base, worker, workers, rng)
        self.rows = _KeyRows(task.record_count, worker, workers)
        self.get, self.upsert, self.search = backend.get, backend.upsert, backend.search
        self.k, self.base, self.holdout, self.nb = task.k, base, holdout, len(base)
        nq = len(queries)
        self.vecs, self.nq, self.q_order = backend.prepare_queries(queries), nq, rng.permutation(nq).tolist()
        self.plain = _per_query(search_params(task, nq, with_filter=False), nq)
        self.filt = _per_query(search_params(task, nq), nq)
        unfiltered = search_params(replace(task, per_query=None), nq, with_filter=False)
        assert isinstance(unfiltered, SearchParams)
        self.scan_params = unfiltered  # scans and visibility probes: no query row, no filter
        self.payload_of = _payload_of(task)
        self.sample_every, self.vis_every = task.recall_sample_every, task.visibility_every
        self.log: array | None = array("q") if task.track_writes else None  # (ack ns, key, row) per write
        self.visibility: list[int] = []
        self.stale = 0  # probes whose first search did not return the id just written (a stale read)
        self.kept = _Kept()
        self.kinds: list[int] = []
        self.keys: list[int] = []
        self.lens: list[int] = []
        self.j = BATCH
        self.n_search = self.n_fsearch = self.n_update = 0
        self.key = self.row = self.op = self.qi = 0
        self.vec: Any = None

    def next(self) -> Op:
        j = self.j
        if j >= BATCH:
            b = self.stream.next_batch(BATCH)
            self.kinds, self.keys, self.lens = b.kinds.tolist(), b.keys.tolist(), b.scan_lengths.tolist()
            j = 0
        self.j = j + 1
        op, key = self.kinds[j], self.keys[j]
        if op == READ:
            return op, self.get, (key,), None
        if op == SEARCH or op == FSEARCH:
            return self._search(op)
        if op == SCAN:
            w = self.rows.get(key)
            vec = self.holdout[w] if w >= 0 else self.base[key % self.nb]
            return op, self.search, (vec, self.lens[j], self.scan_params), None
        row = self.writes.next_holdout()
        vec = self.writes.vector_for_write(row)
        self.key, self.row, self.op, self.vec = key, row, op, vec
        return (op, self._rmw if op == RMW else self.upsert, (key, vec, self.payload_of(key)),
                self._wrote if row >= 0 else None)

    def _search(self, op: int) -> Op:
        if op == SEARCH:
            n = self.n_search
            self.n_search = n + 1
        else:
            n = self.n_fsearch
            self.n_fsearch = n + 1
        qi = self.q_order[n % self.nq]
        args = (self.vecs[qi], self.k, (self.plain if op == SEARCH else self.filt)[qi])
        if self.sample_every and n % self.sample_every == 0:
            self.qi, self.op = qi, op
            return op, self.search, args, self._keep
        return op, self.search, args, None

    def _rmw(self, key: int, vec: np.ndarray, payload: Any) -> None:
        self.get(key)
        self.upsert(key, vec, payload)

    def _keep(self, ids: Any, t0: int, t1: int) -> int:
        kept = self.kept
        kept.q.append(self.qi)
        kept.ids.append(ids)
        kept.t.append(t0)
        kept.filtered.append(self.op == FSEARCH)
        return t1

    def _wrote(self, out: Any, t0: int, t1: int) -> int:
        """An acknowledged write of a held-out row: remember it (scans, ground truth), probe its visibility."""
        key, row = self.key, self.row
        self.rows.set(key, row)
        if self.log is not None:
            self.log.extend((t1, key, row))
        if self.op == RMW:
            return t1
        self.n_update += 1
        if not self.vis_every or self.n_update % self.vis_every:
            return t1
        lag, stale = _visibility_lag(self.search, self.vec, key, self.scan_params, t1)
        self.visibility.append(lag)
        self.stale += stale
        return time.perf_counter_ns()

    def failed(self, kind: int, t0: int, t1: int) -> None:
        pass

    def finish(self, res: WorkerResult, start_ns: int, wall0_ns: int) -> None:
        self.kept.into(res, self.k, start_ns, wall0_ns, mixed=True)
        res.visibility_us = self.visibility
        res.visibility_stale = self.stale
        if self.log is not None:
            upd = np.frombuffer(self.log, dtype=np.int64).reshape(-1, 3).copy()
            upd[:, 0] += wall0_ns - start_ns
            res.updates = upd


def _payload_of(task: PhaseTask) -> Callable[[int], dict[str, int] | None]:
    """The payload an upsert of a key carries: the key's fixed selectivity fields when the workload has them (so
    engines that replace the whole record keep them), else None."""
    if not task.payload_cases:
        return lambda key: None
    from bench.datasets.filtered import key_payloads

    return key_payloads(task.record_count, tuple(task.payload_cases), task.seed).payload


def _visibility_lag(search, vec, key, params, acked_ns: int, timeout_s: float = 5.0) -> tuple[int, bool]:
    """Microseconds from an acknowledged upsert until a search for its own vector returns its id (-1: never), and
    whether the first search after the acknowledgement missed it (a stale read: a read replica behind the
    primary, or an index that had not taken the write in yet)."""
    deadline = acked_ns + int(timeout_s * 1e9)
    first = True
    while True:
        try:
            ids = search(vec, 10, params)
        except Exception:  # noqa: BLE001
            ids = ()
        now = time.perf_counter_ns()
        if key in ids:
            return (now - acked_ns) // 1000, not first
        if now > deadline:
            return -1, True
        first = False


class InsertSource:
    """Inserts of row ranges of `base` (ids = row numbers), one batch per operation, prepared before the clock;
    every acknowledged batch is kept as (ack wall ns, first id, count) in `res.extra["acks"]`."""

    labels = ("insert",)

    def __init__(self, backend: Backend, base: np.ndarray, ranges: list[tuple[int, int]]):
        self.insert, self.base, self.ranges = backend.insert, base, ranges
        self.i = 0
        self.cur = (0, 0)
        self.log = array("q")

    def next(self) -> Op:
        lo, hi = self.ranges[self.i % len(self.ranges)]
        self.i += 1
        self.cur = (lo, hi)
        ids = np.arange(lo, hi, dtype=np.int64)
        return 0, self.insert, (ids, np.ascontiguousarray(self.base[lo:hi], dtype=np.float32)), self._acked

    def _acked(self, out: Any, t0: int, t1: int) -> int:
        lo, hi = self.cur
        self.log.extend((t1, lo, hi - lo))
        return t1

    def failed(self, kind: int, t0: int, t1: int) -> None:
        pass

    def finish(self, res: WorkerResult, start_ns: int, wall0_ns: int) -> None:
        acks = np.frombuffer(self.log, dtype=np.int64).reshape(-1, 3).copy()
        acks[:, 0] += wall0_ns - start_ns
        res.extra["acks"] = acks
