"""The one timed loop every load generator runs (`bench run`'s workers and `bench fault`'s): the only code on
the hot path.

The driver owns the clock (`time.perf_counter_ns`) and everything measured around an operation; an op source
owns what the operations are and what becomes of their results:

    source.labels                   the operation kinds: an Op of kind i is recorded under labels[i]
    source.next() -> Op             (kind, call, args, after): the next operation, prepared before its clock
                                    starts; the driver times call(*args) and nothing else
    after(result, t0, t1) -> int    when not None, runs after a success, outside the timing; returns the time
                                    the driver takes as the operation's end for pacing, intervals and the
                                    deadline: t1, or later when it did work of its own (a visibility probe)
    source.failed(kind, t0, t1)     after a failure, which the driver has already counted and recorded
    source.finish(res, start_ns, wall0_ns)   puts what the source kept into the worker's result; perf-counter
                                    times t convert to wall-clock ns as wall0_ns + (t - start_ns)

Closed loop: the next operation is issued when the last returns. Open loop: operation i has an intended start
from a seeded schedule (constant or Poisson gaps); latency counts from it (coordinated omission corrected), the
service time from the real send goes to its own histogram, and sends late by more than the threshold are
counted, apart those late while the worker was free in time (the generator, not the engine, fell behind).

Per operation the loop reads the clock twice and records one value, into the current interval's histogram of
its kind. When an interval (one second) ends, each kind's interval histogram is encoded for the interval log
and added into that kind's phase histogram, so the phase histogram holds exactly the recorded values at half
the per-operation cost of recording both. Failed operations are counted per kind, with a few sample messages,
and their latency goes to a histogram of their own. The phase ends after its operation budget or at its
deadline (checked after each operation), or when `stop()` says so (checked once per interval).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from bench.load.task import PhaseTask
from bench.metrics import hdr
from bench.results.worker import WorkerResult

After = Callable[[Any, int, int], int]
Op = tuple[int, Callable[..., Any], tuple[Any, ...], After | None]  # (kind, call, args, after)

MAX_ERROR_SAMPLES = 5
SPIN_NS = 200_000  # open loop: sleep until this close to the intended start, then spin
SCHEDULE_CHUNK = 16_384  # open loop: intended starts are drawn this many at a time
NEVER = 1 << 62  # no deadline (perf_counter_ns never gets there)
SCHEDULE_STREAM = 0x5C4ED  # seeds the open-loop schedule apart from the sources' own draws


class OpSource(Protocol):
    labels: tuple[str, ...]

    def next(self) -> Op: ...

    def failed(self, kind: int, t0: int, t1: int) -> None: ...

    def finish(self, res: WorkerResult, start_ns: int, wall0_ns: int) -> None: ...


def schedule_offsets_ns(n: int, rate: float, arrival: str, rng: np.random.Generator) -> np.ndarray:
    """Intended start offsets (ns from the phase start) of n operations offered at `rate` per second."""
    if arrival == "poisson":
        gaps = rng.exponential(1e9 / rate, size=n)
        return np.cumsum(gaps).astype(np.int64) - np.int64(gaps[0])
    return (np.arange(n, dtype=np.float64) * (1e9 / rate)).astype(np.int64)


class Schedule:
    """The offsets of `schedule_offsets_ns`, the same values from the same generator, drawn a chunk at a time as
    the loop reaches them, so a long phase holds no array of every operation's start."""

    def __init__(self, rate: float, arrival: str, rng: np.random.Generator, chunk: int = SCHEDULE_CHUNK):
        self.gap, self.poisson, self.rng, self.chunk = 1e9 / rate, arrival == "poisson", rng, chunk
        self.lo = self.hi = 0
        self.offsets: list[int] = []
        self.total = 0.0  # poisson: the sum of the gaps drawn so far
        self.first: np.int64 | None = None  # poisson: the first gap (the schedule starts at 0)
        self._fill()

    def offset(self, i: int) -> int:
        """Offset of operation i; i only grows (by one) from call to call."""
        if i >= self.hi:
            self._fill()
        return self.offsets[i - self.lo]

    def _fill(self) -> None:
        n = self.chunk
        if self.poisson:
            gaps = self.rng.exponential(self.gap, size=n)
            if self.first is None:
                self.first = np.int64(gaps[0])
            gaps[0] += self.total  # carried so the running sum adds in the same order as one cumsum would
            sums = np.cumsum(gaps)
            self.total = float(sums[-1])
            offs = sums.astype(np.int64) - self.first
        else:
            offs = (np.arange(self.hi, self.hi + n, dtype=np.float64) * self.gap).astype(np.int64)
        self.lo, self.hi = self.hi, self.hi + n
        self.offsets = offs.tolist()


class _Pacer:
    """Open loop: waits for each operation's intended start (sleep, then spin the last stretch) and counts late
    sends, and those late while the worker was free in time: there the generator, not the engine, fell behind."""

    def __init__(self, schedule: Schedule, start: int, late_threshold_us: int):
        self.offset, self.start = schedule.offset, start
        self.late_ns = late_threshold_us * 1000
        self.late = 0
        self.lag = 0

    def send(self, i: int, prev_end: int) -> tuple[int, int]:
        """(intended start, real send time) of operation i, returning at its intended start."""
        intended = self.start + self.offset(i)
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


def _budget(task: PhaseTask) -> tuple[int, int | None]:
    """(maximum operations, deadline length in ns or None)."""
    if task.duration_s is not None:
        return task.operations or NEVER, int(task.duration_s * 1e9)
    return int(task.operations or 0), None


def drive(source: OpSource, task: PhaseTask, *, worker: int = 0, wait: Callable[[], Any] | None = None,
          epoch_ns: int | None = None, stop: Callable[[], bool] | None = None,
          error_pause_s: float = 0.0) -> WorkerResult:
    """Run `source`'s operations for one phase, paced and budgeted by `task` (operations, duration_s,
    target_rate, arrival, late_threshold_us, interval_s), and return the worker's result.

    wait: the start barrier, passed before the clock starts. epoch_ns: the perf-counter time the duration counts
    from (default: this worker's start). stop: asked once per interval whether to end early. error_pause_s:
    sleep after each failed operation, outside any timing, as a client's retry pause would."""
    run = _Run(source, task, worker, stop, error_pause_s)
    if wait is not None:
        wait()
    run.start_clock(epoch_ns)
    issued = run.loop()
    return run.end(issued)


class _Run:
    """The state of one phase of one worker; `loop` is the hot path."""

    def __init__(self, source: OpSource, task: PhaseTask, worker: int, stop: Callable[[], bool] | None,
                 error_pause_s: float):
        self.source, self.task, self.stop, self.pause = source, task, stop, error_pause_s
        self.labels = tuple(source.labels)
        self.rec = hdr.Recorder()
        self.whole = [self.rec.histogram(lbl) for lbl in self.labels]
        self.fail = [self.rec.histogram(lbl, failed=True) for lbl in self.labels]
        self.cur = [hdr.new_histogram() for _ in self.labels]  # the current interval's, per kind
        self.svc = [hdr.new_histogram() for _ in self.labels] if task.target_rate else None
        self.res = WorkerResult(worker=worker, started_wall=0.0, ended_wall=0.0)
        self.interval_ns = max(1, int(task.interval_s * 1e9))
        self.schedule = (Schedule(task.target_rate, task.arrival,
                                  np.random.default_rng([task.seed, task.trial + 1, worker, SCHEDULE_STREAM]))
                         if task.target_rate else None)
        self.pacer: _Pacer | None = None
        self.start = self.int_start = 0
        self.deadline, self.n_max = NEVER, 0

    def start_clock(self, epoch_ns: int | None) -> None:
        self.res.started_wall = time.time()
        self.start = self.int_start = start = time.perf_counter_ns()
        n_max, length = _budget(self.task)
        if length is not None:
            self.deadline = (start if epoch_ns is None else epoch_ns) + length
        if self.schedule is not None:
            if length is not None:
                n_max = min(n_max, int(self.task.target_rate * max(0, self.deadline - start) / 1e9) + 1)
            self.pacer = _Pacer(self.schedule, start, self.task.late_threshold_us)
        self.n_max = n_max

    def loop(self) -> int:
        """Run operations until the budget, the deadline or a stop; return how many were issued."""
        pc = time.perf_counter_ns
        nxt, cur, svc, pacer, record = self.source.next, self.cur, self.svc, self.pacer, self.rec.record
        top, n_max, deadline, step = hdr.HIGHEST_US, self.n_max, self.deadline, self.interval_ns
        next_int = self.start + step
        prev_end = self.start
        i = 0
        while i < n_max:
            kind, call, args, after = nxt()
            if pacer is None:
                t0 = intended = pc()
            else:
                intended, t0 = pacer.send(i, prev_end)
            try:
                out = call(*args)
            except Exception as e:  # noqa: BLE001 - every failure is counted, never raised out of the loop
                t1 = self.failed(kind, e, intended, t0)
            else:
                t1 = pc()
                us = (t1 - intended) // 1000
                if us > top:
                    record(cur[kind], us)  # clamped and counted out of range
                else:
                    cur[kind].record_value(us or 1)
                if svc is not None:
                    record(svc[kind], (t1 - t0) // 1000)
                if after is not None:
                    t1 = after(out, t0, t1)
            prev_end = t1
            i += 1
            if t1 >= next_int:
                if self.flush(t1):
                    break
                next_int = t1 + step
            if t1 >= deadline:
                break
        return i

    def failed(self, kind: int, e: Exception, intended: int, t0: int) -> int:
        t1 = time.perf_counter_ns()
        self.rec.record(self.fail[kind], (t1 - intended) // 1000)
        res, label = self.res, self.labels[kind]
        res.errors[label] = res.errors.get(label, 0) + 1
        if len(res.error_samples) < MAX_ERROR_SAMPLES:
            res.error_samples.append(f"{label}: {type(e).__name__}: {e}".strip()[:500])
        self.source.failed(kind, t0, t1)
        if self.pause > 0:
            time.sleep(self.pause)
        return t1

    def flush(self, t: int) -> bool:
        """End the current interval at t: log each kind's interval histogram and add it into the phase's.
        True when asked to stop."""
        w0, start = self.res.started_wall, self.start
        a, b = w0 + (self.int_start - start) / 1e9, w0 + (t - start) / 1e9
        for kind, h in enumerate(self.cur):
            if h.get_total_count():
                self.res.intervals.append((a, b, self.labels[kind], hdr.encode(h)))
                self.whole[kind].add(h)
                hdr.clear(h)
        self.int_start = t
        return self.stop is not None and bool(self.stop())

    def end(self, issued: int) -> WorkerResult:
        end = time.perf_counter_ns()
        res = self.res
        res.ended_wall = res.started_wall + (end - self.start) / 1e9
        self.flush(end)
        if self.pacer is not None:
            res.scheduled, res.late, res.generator_lag = issued, self.pacer.late, self.pacer.lag
        res.hist = {k: hdr.encode(v) for k, v in self.rec.ok.items() if v.get_total_count()}
        res.failed = {k: hdr.encode(v) for k, v in self.rec.failed.items() if v.get_total_count()}
        if self.svc is not None:
            res.service = {self.labels[i]: hdr.encode(h) for i, h in enumerate(self.svc) if h.get_total_count()}
        res.out_of_range = self.rec.out_of_range
        self.source.finish(res, self.start, int(res.started_wall * 1e9))
        return res
