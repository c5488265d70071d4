"""The worker loop: the only code on the hot path.

Closed loop: the next operation is issued when the last returns. Open loop: operation i has an intended
start time from the schedule; latency is counted from it (coordinated omission corrected) and the service
time (from the real send) goes to its own histogram. Every worker has its own seeded stream.

Per operation the loop reads the clock twice and records into two histograms (the whole-trial one and the
current one-second interval); the harness' own cost is measured by `bench calibrate` with the null backend.
"""

from __future__ import annotations

import contextlib
import gc
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.backends.base import Backend, SearchParams
from bench.load.task import PhaseTask, WorkerResult
from bench.metrics import hdr

MAX_ERROR_SAMPLES = 5
SPIN_NS = 200_000  # open loop: sleep until this close to the intended start, then spin


@dataclass
class WorkerData:
    """The vectors a worker needs; memory-mapped where the dataset is on disk."""

    queries: np.ndarray
    base: np.ndarray
    holdout: np.ndarray
    named_queries: dict[str, np.ndarray] | None = None  # multi-vector records: the queries of each named vector


def schedule_offsets_ns(n: int, rate: float, arrival: str, rng: np.random.Generator) -> np.ndarray:
    """Intended start offsets (ns from the phase start) of n operations offered at `rate` per second."""
    if arrival == "poisson":
        gaps = rng.exponential(1e9 / rate, size=n)
        return np.cumsum(gaps).astype(np.int64) - np.int64(gaps[0])
    return (np.arange(n, dtype=np.float64) * (1e9 / rate)).astype(np.int64)


class _Writes:
    """The vectors one worker writes: held-out rows dealt round-robin between workers (so the ground truth can
    follow them), or random base rows when the dataset has no held-out vectors."""

    def __init__(self, data: WorkerData, worker: int, workers: int, rng):
        self.data = data
        self.rng = rng
        self.holdout_next = worker  # holdout rows are dealt round-robin between workers
        self.workers = workers

    def next_holdout(self) -> int:
        h = self.data.holdout
        if len(h) == 0:
            return -1
        row = self.holdout_next % len(h)
        self.holdout_next += self.workers
        return row

    def vector_for_write(self, row: int) -> np.ndarray:
        if row >= 0:
            return self.data.holdout[row]
        return self.data.base[int(self.rng.integers(len(self.data.base)))]


def _record_error(res: WorkerResult, label: str, e: BaseException) -> None:
    res.errors[label] = res.errors.get(label, 0) + 1
    if len(res.error_samples) < MAX_ERROR_SAMPLES:
        res.error_samples.append(f"{label}: {type(e).__name__}: {e}".strip()[:500])


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
              wait: Callable[[], Any] | None = None) -> WorkerResult:
    """Run one phase (a warm-up or a timed trial) of one worker. `wait` is the start barrier."""
    rng = np.random.default_rng([task.seed, task.trial + 1, worker])
    if task.mode == "search":
        return _run_search(backend, data, task, worker, workers, rng, wait)
    return _run_ycsb(backend, data, task, worker, workers, rng, wait)


def _schedule(task: PhaseTask, n_max: int, window: int | None, rng) -> tuple[int, np.ndarray | None]:
    """Open loop: the intended start offsets of the phase's operations (and their number); closed loop: None."""
    if not task.target_rate:
        return n_max, None
    if window is not None:
        n_max = min(n_max, int(task.target_rate * window / 1e9) + 1)
    return n_max, schedule_offsets_ns(n_max, task.target_rate, task.arrival, rng)


def _budget(task: PhaseTask) -> tuple[int, int | None]:
    """(maximum operations, deadline length in ns or None)."""
    if task.duration_s is not None:
        n = task.operations or 1 << 62
        return n, int(task.duration_s * 1e9)
    return int(task.operations or 0), None


def _run_search(backend, data, task, worker, workers, rng, wait) -> WorkerResult:
    queries = data.queries if task.queries is None else task.queries
    nq = len(queries)
    order = rng.permutation(nq)
    n_max, window = _budget(task)
    params = SearchParams(ef_search=task.ef_search, **task.params)
    k, search = task.k, backend.search
    per_query = None
    if task.per_query is not None:  # built before the clock starts: one SearchParams per query
        if len(task.per_query) != nq:
            raise ValueError(f"a phase with per-query parameters needs one per query ({len(task.per_query)} for {nq})")
        per_query = [SearchParams(ef_search=task.ef_search, **{**task.params, **pq}) for pq in task.per_query]
    rec = hdr.Recorder()
    h_ok, h_fail = rec.histogram("search"), rec.histogram("search", failed=True)
    h_svc = hdr.new_histogram() if task.target_rate else None
    h_int = hdr.new_histogram()
    record = rec.record
    res = WorkerResult(worker=worker, started_wall=0.0, ended_wall=0.0)
    keep_every = task.recall_sample_every or 1
    kept_q: list[int] = []
    kept_ids: list[Any] = []
    kept_t: list[int] = []
    n_max, offsets = _schedule(task, n_max, window, rng)
    pc = time.perf_counter_ns
    interval_ns = int(task.interval_s * 1e9)
    if wait is not None:
        wait()
    res.started_wall = time.time()
    start = pc()
    wall0 = res.started_wall
    deadline = start + window if window is not None else None
    next_int = start + interval_ns
    int_start = start
    prev_end = start
    pacer = _Pacer(task.late_threshold_us) if offsets is not None else None
    i = 0
    while i < n_max:
        qi = int(order[i % nq])
        vec = queries[qi]
        if pacer is not None:
            intended, t0 = pacer.send(start + int(offsets[i]), prev_end)
        else:
            t0 = intended = pc()
        try:
            ids = search(vec, k, params if per_query is None else per_query[qi])
            t1 = pc()
            us = (t1 - intended) // 1000
            record(h_ok, us)
            record(h_int, us)
            if h_svc is not None:
                record(h_svc, (t1 - t0) // 1000)
            if i % keep_every == 0:
                kept_q.append(qi)
                kept_ids.append(ids)
                kept_t.append(t0)
        except Exception as e:  # noqa: BLE001 - every failure is counted, never raised out of the loop
            t1 = pc()
            record(h_fail, (t1 - intended) // 1000)
            _record_error(res, "search", e)
        prev_end = t1
        i += 1
        if t1 >= next_int:
            res.intervals.append((wall0 + (int_start - start) / 1e9, wall0 + (t1 - start) / 1e9, "search",
                                  hdr.encode(h_int)))
            h_int.reset()
            int_start = t1
            next_int = t1 + interval_ns
        if deadline is not None and t1 >= deadline:
            break
    end = pc()
    res.ended_wall = wall0 + (end - start) / 1e9
    if h_int.get_total_count():
        res.intervals.append((wall0 + (int_start - start) / 1e9, res.ended_wall, "search", hdr.encode(h_int)))
    if pacer is not None:
        res.scheduled, res.late, res.generator_lag = i, pacer.late, pacer.lag
    _finish(res, rec, {"search": h_svc} if h_svc is not None else {})
    res.search_queries = np.asarray(kept_q, dtype=np.int64)
    res.search_ids = _pad(kept_ids, k)
    res.search_started = (np.asarray(kept_t, dtype=np.int64) - start) + int(wall0 * 1e9)
    return res


class _Pacer:
    """Open loop: waits for each operation's intended start (sleep, then spin the last stretch) and counts late
    sends, and those late while the worker was free in time: there the generator, not the engine, fell behind."""

    def __init__(self, late_threshold_us: int):
        self.late_ns = late_threshold_us * 1000
        self.late = 0
        self.lag = 0

    def send(self, intended: int, prev_end: int) -> tuple[int, int]:
        pc = time.perf_counter_ns
        now = pc()
        if intended - now > SPIN_NS:
            time.sleep((intended - now - SPIN_NS) / 1e9)
        while pc() < intended:
            pass
        t0 = pc()
        if t0 - intended > self.late_ns:
            self.late += 1
            if prev_end <= intended:
                self.lag += 1
        return intended, t0


def _pad(rows: list[Any], k: int) -> np.ndarray:
    out = np.full((len(rows), k), -1, dtype=np.int64)
    for r, ids in enumerate(rows):
        m = min(len(ids), k)
        if m:
            out[r, :m] = np.fromiter(ids, dtype=np.int64, count=len(ids))[:m]
    return out


def _finish(res: WorkerResult, rec: hdr.Recorder, service: dict[str, Any]) -> None:
    res.hist = {k: hdr.encode(v) for k, v in rec.ok.items() if v.get_total_count()}
    res.failed = {k: hdr.encode(v) for k, v in rec.failed.items() if v.get_total_count()}
    res.service = {k: hdr.encode(v) for k, v in service.items() if v is not None and v.get_total_count()}
    res.out_of_range = rec.out_of_range


def _run_ycsb(backend, data, task, worker, workers, rng, wait) -> WorkerResult:  # noqa: C901 - one hot loop
    from bench.ops.stream import OpKind, OpStream

    assert task.ycsb is not None
    stream = OpStream(task.ycsb, task.record_count, seed=task.seed * 1009 + task.trial + 1,
                      worker=worker, workers=workers)
    ops = _Writes(data, worker, workers, rng)
    n_max, window = _budget(task)
    unfiltered = {name: value for name, value in task.params.items() if name != "filter"}
    k, params = task.k, SearchParams(ef_search=task.ef_search, **unfiltered)
    params_f = SearchParams(ef_search=task.ef_search, **task.params)
    payload_of = _payload_of(task)
    queries, base = (data.queries if task.queries is None else task.queries), data.base
    nq, nb = len(queries), len(base)
    q_order = rng.permutation(nq)
    labels = {int(op): op.label for op in OpKind}
    rec = hdr.Recorder()
    h_ok = {op: rec.histogram(lbl) for op, lbl in labels.items()}
    h_fail = {op: rec.histogram(lbl, failed=True) for op, lbl in labels.items()}
    h_int = {op: hdr.new_histogram() for op in labels}
    h_svc = {op: hdr.new_histogram() for op in labels} if task.target_rate else None
    record = rec.record
    res = WorkerResult(worker=worker, started_wall=0.0, ended_wall=0.0)
    get, upsert, search = backend.get, backend.upsert, backend.search
    READ, UPDATE, INSERT, SCAN, RMW, SEARCH = (int(OpKind.READ), int(OpKind.UPDATE), int(OpKind.INSERT),
                                              int(OpKind.SCAN), int(OpKind.RMW), int(OpKind.SEARCH))
    FSEARCH = int(OpKind.FILTERED_SEARCH)
    sample_every = task.recall_sample_every
    vis_every = task.visibility_every
    kept_q: list[int] = []
    kept_ids: list[Any] = []
    kept_t: list[int] = []
    kept_f: list[bool] = []
    n_search = n_fsearch = n_update = 0
    written: dict[int, int] = {}  # key -> holdout row this worker last wrote to it
    n_max, offsets = _schedule(task, n_max, window, rng)
    batch = 4096
    pc = time.perf_counter_ns
    interval_ns = int(task.interval_s * 1e9)
    if wait is not None:
        wait()
    res.started_wall = time.time()
    start = pc()
    wall0 = res.started_wall
    wall0_ns = int(wall0 * 1e9)
    deadline = start + window if window is not None else None
    next_int = start + interval_ns
    int_start = start
    prev_end = start
    pacer = _Pacer(task.late_threshold_us) if offsets is not None else None
    i = 0
    kinds = keys = lens = None
    j = batch
    while i < n_max:
        if j >= batch:
            b = stream.next_batch(batch)
            kinds, keys, lens = b.kinds.tolist(), b.keys.tolist(), b.scan_lengths.tolist()
            j = 0
        op, key = kinds[j], keys[j]
        slen = lens[j]
        j += 1
        row = -1
        if op == UPDATE or op == INSERT or op == RMW:
            row = ops.next_holdout()
            vec = ops.vector_for_write(row)
        elif op == SCAN:  # near the vector stored for that key, as far as this worker knows it
            w = written.get(key)
            vec = data.holdout[w] if w is not None else base[key % nb]
        elif op == SEARCH:
            qi = int(q_order[n_search % nq])
            vec = queries[qi]
        elif op == FSEARCH:
            qi = int(q_order[n_fsearch % nq])
            vec = queries[qi]
        if pacer is not None:
            intended, t0 = pacer.send(start + int(offsets[i]), prev_end)
        else:
            t0 = intended = pc()
        try:
            if op == READ:
                get(key)
            elif op == UPDATE or op == INSERT:
                upsert(key, vec, payload_of(key))
            elif op == SEARCH:
                ids = search(vec, k, params)
            elif op == FSEARCH:
                ids = search(vec, k, params_f)
            elif op == SCAN:
                search(vec, slen, params)
            else:  # RMW
                get(key)
                upsert(key, vec, payload_of(key))
            t1 = pc()
            us = (t1 - intended) // 1000
            record(h_ok[op], us)
            record(h_int[op], us)
            if h_svc is not None:
                record(h_svc[op], (t1 - t0) // 1000)
            if op == SEARCH or op == FSEARCH:
                if sample_every and (n_search if op == SEARCH else n_fsearch) % sample_every == 0:
                    kept_q.append(qi)
                    kept_ids.append(ids)
                    kept_t.append(t0)
                    kept_f.append(op == FSEARCH)
                if op == SEARCH:
                    n_search += 1
                else:
                    n_fsearch += 1
            elif row >= 0 and op != RMW:
                written[key] = row
                res.updates.append((wall0_ns + (t1 - start), key, row))
                n_update += 1
                if vis_every and n_update % vis_every == 0:
                    res.visibility_us.append(_visibility_lag(search, vec, key, params, t1))
                    t1 = pc()
            elif row >= 0:
                written[key] = row
                res.updates.append((wall0_ns + (t1 - start), key, row))
        except Exception as e:  # noqa: BLE001 - every failure is counted, never raised out of the loop
            t1 = pc()
            record(h_fail[op], (t1 - intended) // 1000)
            _record_error(res, labels[op], e)
        prev_end = t1
        i += 1
        if t1 >= next_int:
            _flush_intervals(res, h_int, labels, wall0 + (int_start - start) / 1e9, wall0 + (t1 - start) / 1e9)
            int_start = t1
            next_int = t1 + interval_ns
        if deadline is not None and t1 >= deadline:
            break
    end = pc()
    res.ended_wall = wall0 + (end - start) / 1e9
    _flush_intervals(res, h_int, labels, wall0 + (int_start - start) / 1e9, res.ended_wall)
    if pacer is not None:
        res.scheduled, res.late, res.generator_lag = i, pacer.late, pacer.lag
    _finish(res, rec, {labels[o]: h for o, h in h_svc.items()} if h_svc is not None else {})
    res.search_queries = np.asarray(kept_q, dtype=np.int64)
    res.search_ids = _pad(kept_ids, k)
    res.search_started = (np.asarray(kept_t, dtype=np.int64) - start) + wall0_ns
    res.search_filtered = np.asarray(kept_f, dtype=bool)
    return res


def _payload_of(task: PhaseTask) -> Callable[[int], dict[str, int] | None]:
    """The payload an upsert of a key carries: the key's fixed selectivity fields when the workload has them (so
    engines that replace the whole record keep them), else None."""
    if not task.payload_cases:
        return lambda key: None
    from bench.datasets.filtered import key_payloads

    return key_payloads(task.record_count, tuple(task.payload_cases), task.seed).payload


def _flush_intervals(res: WorkerResult, h_int: dict, labels: dict, t0: float, t1: float) -> None:
    for op, h in h_int.items():
        if h.get_total_count():
            res.intervals.append((t0, t1, labels[op], hdr.encode(h)))
            h.reset()


def _visibility_lag(search, vec, key, params, acked_ns: int, timeout_s: float = 5.0) -> int:
    """Microseconds from an acknowledged upsert until a search for its own vector returns its id (-1: never)."""
    deadline = acked_ns + int(timeout_s * 1e9)
    while True:
        try:
            ids = search(vec, 10, params)
        except Exception:  # noqa: BLE001
            ids = ()
        now = time.perf_counter_ns()
        if key in ids:
            return (now - acked_ns) // 1000
        if now > deadline:
            return -1


def format_exception(e: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(e), e)).strip()
