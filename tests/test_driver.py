"""The one timed-loop driver (bench.load.driver) and the sources that plug into it: budgets, deadlines, the
open-loop schedule and coordinated-omission-corrected latency, failures in their own histogram, what a task's
search parameters become, and that nothing is kept per write unless a figure needs it."""

from __future__ import annotations

import pickle
import tempfile
import time
from typing import Any

import numpy as np
import pytest

from bench.backends.base import BackendOptions, SearchParams
from bench.backends.fake_slow import FakeSlowBackend, FakeSlowOptions
from bench.backends.null import NullBackend
from bench.load.driver import Schedule, drive, schedule_offsets_ns
from bench.load.sources import YcsbSource
from bench.load.task import PhaseTask
from bench.load.worker import WorkerData, run_phase
from bench.metrics import hdr
from bench.ops.mix import YcsbSpec


def _data(n: int = 200, dim: int = 8, holdout: int = 50) -> WorkerData:
    v = np.random.default_rng(0).standard_normal((n + holdout + 20, dim)).astype(np.float32)
    return WorkerData(queries=v[n + holdout:], base=v[:n], holdout=v[n:n + holdout])


def _task(**kw: Any) -> PhaseTask:
    base: dict[str, Any] = dict(mode="search", trial=0, seed=1, k=10, ef_search=32, duration_s=None, operations=100)
    return PhaseTask(**{**base, **kw})


class FakeCountingSource:
    """A FAKE op source: a no-op call of one kind, counting what the driver hands back."""

    labels = ("noop",)

    def __init__(self, call=lambda: None) -> None:
        self.call, self.issued, self.done, self.failures = call, 0, 0, 0

    def next(self):
        self.issued += 1
        return 0, self.call, (), self._after

    def _after(self, out: Any, t0: int, t1: int) -> int:
        self.done += 1
        return t1

    def failed(self, kind: int, t0: int, t1: int) -> None:
        self.failures += 1

    def finish(self, res, start_ns: int, wall0_ns: int) -> None:
        res.extra["finished"] = True


def _count(encoded: str | None) -> int:
    return hdr.decode(encoded).get_total_count() if encoded else 0


# -- closed loop ---------------------------------------------------------------------------------------------

def test_closed_loop_runs_exactly_the_operation_budget():
    src = FakeCountingSource()
    res = drive(src, _task(operations=5000))
    assert src.issued == src.done == 5000 and src.failures == 0
    assert _count(res.hist["noop"]) == 5000 and not res.failed and not res.errors
    assert res.extra["finished"] and res.scheduled == 0  # closed loop: no schedule
    assert sum(_count(h) for _, _, lbl, h in res.intervals if lbl == "noop") == 5000


def test_closed_loop_stops_at_its_deadline():
    src = FakeCountingSource(lambda: time.sleep(0.002))
    t = time.perf_counter()
    res = drive(src, _task(duration_s=0.3, operations=None))
    took = time.perf_counter() - t
    assert 0.3 <= took < 0.6 and 0.29 <= res.ended_wall - res.started_wall < 0.6
    assert 20 < src.done < 160 and _count(res.hist["noop"]) == src.done


def test_epoch_and_stop_end_a_phase():
    src = FakeCountingSource(lambda: time.sleep(0.001))
    epoch = time.perf_counter_ns() - int(0.2e9)  # the duration counts from 0.2 s ago: 0.1 s are left
    t = time.perf_counter()
    drive(src, _task(duration_s=0.3, operations=None), epoch_ns=epoch)
    assert time.perf_counter() - t < 0.25
    src = FakeCountingSource(lambda: time.sleep(0.001))
    t = time.perf_counter()
    drive(src, _task(duration_s=10.0, operations=None, interval_s=0.05), stop=lambda: True)
    assert time.perf_counter() - t < 1.0  # asked at the first interval's end


def test_the_phase_histogram_holds_exactly_the_recorded_values():
    """Recorded once per operation into the interval histogram, then added into the phase one: the same
    counts, min, max and percentiles as recording each value directly."""
    rng = np.random.default_rng(3)
    delays = rng.choice([0, 50e-6, 300e-6, 2e-3], size=400, p=[0.4, 0.3, 0.2, 0.1])
    it = iter(delays)
    src = FakeCountingSource(lambda: time.sleep(next(it)))
    res = drive(src, _task(operations=400, interval_s=0.01))
    whole = hdr.decode(res.hist["noop"])
    assert len(res.intervals) > 5
    direct = hdr.new_histogram()
    for _, _, _, h in res.intervals:
        direct.add(hdr.decode(h))
    assert whole.get_total_count() == direct.get_total_count() == 400
    assert whole.get_min_value() == direct.get_min_value() and whole.get_max_value() == direct.get_max_value()
    for p in (50, 90, 99, 99.9):
        assert whole.get_value_at_percentile(p) == direct.get_value_at_percentile(p)


# -- failures ------------------------------------------------------------------------------------------------

def test_failed_operations_are_counted_in_their_own_histogram():
    b = FakeSlowBackend(FakeSlowOptions(latency_us=0, fail_every=4), tempfile.mkdtemp())
    res = run_phase(b, _data(), _task(operations=400), 0, 1)
    assert _count(res.failed["search"]) == res.errors["search"] == 100
    assert _count(res.hist["search"]) == 300  # the successes only
    assert sum(_count(h) for *_, h in res.intervals) == 300  # intervals hold successes only
    assert len(res.error_samples) == 5 and all("injected failure" in s for s in res.error_samples)
    assert len(res.search_queries) == 300  # only successful searches' ids are kept


def test_the_source_hears_of_each_failure_and_the_driver_pauses_after_it():
    def boom() -> None:
        raise OSError("down")

    src = FakeCountingSource(boom)
    t = time.perf_counter()
    res = drive(src, _task(operations=10), error_pause_s=0.02)
    assert time.perf_counter() - t >= 0.2
    assert src.failures == 10 and src.done == 0 and res.errors == {"noop": 10} and not res.hist


# -- open loop -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("arrival", ["constant", "poisson"])
def test_the_chunked_schedule_equals_the_whole_schedule(arrival):
    whole = schedule_offsets_ns(10_000, 250.0, arrival, np.random.default_rng(7))
    s = Schedule(250.0, arrival, np.random.default_rng(7), chunk=333)
    assert [s.offset(i) for i in range(10_000)] == whole.tolist()


def test_open_loop_counts_latency_from_the_intended_start():
    """Offered 100/s to an engine that serves 50/s: the queue grows, so each operation waits longer than the
    one before; the corrected latency shows it, the service time stays the engine's 20 ms."""
    b = FakeSlowBackend(FakeSlowOptions(latency_us=20_000), tempfile.mkdtemp())
    res = run_phase(b, _data(), _task(duration_s=1.0, operations=None, target_rate=100.0), 0, 1)
    corrected, service = hdr.decode(res.hist["search"]), hdr.decode(res.service["search"])
    n = corrected.get_total_count()
    assert 35 <= n <= 55 and res.scheduled == n  # ~50 served before the deadline, of 101 scheduled
    assert service.get_value_at_percentile(50) < 40_000 and service.get_max_value() < 100_000
    # operation i was meant to start at i * 10 ms and started at ~i * 20 ms: the last waited ~n * 10 ms
    assert corrected.get_max_value() > 0.7 * n * 10_000
    assert corrected.get_value_at_percentile(50) > 3 * service.get_value_at_percentile(50)
    assert res.late >= n - 3 and res.generator_lag <= 2  # late because the engine was busy, not the generator


def test_open_loop_keeps_its_rate_when_the_engine_keeps_up():
    src = FakeCountingSource()
    res = drive(src, _task(duration_s=0.5, operations=None, target_rate=400.0))
    assert 195 <= res.scheduled <= 201 and _count(res.hist["noop"]) == res.scheduled
    assert hdr.decode(res.service["noop"]).get_total_count() == res.scheduled
    assert res.generator_lag <= res.scheduled // 10  # a few late wake-ups on a busy machine, no more


# -- what the task's search parameters become ----------------------------------------------------------------

class FakeRecordingBackend(NullBackend):
    """A FAKE backend: records every search's vector, k and SearchParams, returns nothing."""

    def __init__(self) -> None:
        super().__init__(BackendOptions(), tempfile.mkdtemp())
        self.calls: list[tuple[np.ndarray, int, SearchParams]] = []

    def search(self, vector: np.ndarray, k: int, params: SearchParams):
        self.calls.append((np.asarray(vector), k, params))
        return ()


def _row_of(queries: np.ndarray, vec: np.ndarray) -> int:
    (rows,) = np.nonzero((queries == vec).all(axis=1))
    assert len(rows) == 1
    return int(rows[0])


def test_params_per_query_and_queries_reach_every_search():
    data = _data()
    own = np.random.default_rng(9).standard_normal((7, 8)).astype(np.float32)  # not WorkerData.queries
    flt = {"color": "red"}
    params = {"filter": flt, "vector_name": "img", "fusion": "rrf", "alpha": None, "candidates": 100}
    per_query = tuple({"text": f"query {i}"} for i in range(7))
    b = FakeRecordingBackend()
    run_phase(b, data, _task(operations=50, params=params, per_query=per_query, queries=own), 0, 1)
    assert len(b.calls) == 50
    for vec, k, p in b.calls:
        i = _row_of(own, vec)
        assert k == 10 and p == SearchParams(ef_search=32, text=f"query {i}", **params)
    with pytest.raises(ValueError, match="per_query"):
        run_phase(b, data, _task(operations=5, per_query=per_query[:3], queries=own), 0, 1)


def test_ycsb_filter_applies_to_filtered_searches_only():
    data = _data()
    flt = {"color": "red"}
    b = FakeRecordingBackend()
    spec = YcsbSpec(read_proportion=0.0, search_proportion=0.4, filtered_search_proportion=0.4, scan_proportion=0.2)
    task = _task(mode="ycsb", ycsb=spec, record_count=len(data.base), operations=300,
                 params={"filter": flt, "vector_name": "img"}, recall_sample_every=1)
    res = run_phase(b, data, task, 0, 1)
    kinds = {"plain": 0, "filtered": 0, "scan": 0}
    for vec, k, p in b.calls:
        assert p.vector_name == "img" and p.ef_search == 32
        if not (data.queries == vec).all(axis=1).any():  # a scan: near a stored record, up to 100 results
            kinds["scan"] += 1
            assert p.filter is None and 1 <= k <= 100
        else:
            kinds["filtered" if p.filter == flt else "plain"] += 1
            assert p.filter in (None, flt)
    assert all(v > 30 for v in kinds.values()), kinds
    assert int(res.search_filtered.sum()) == kinds["filtered"]  # every search kept, flagged by kind
    assert len(res.search_filtered) == kinds["filtered"] + kinds["plain"]


# -- writes: kept only when a figure needs them --------------------------------------------------------------

def _ycsb_a(track: bool, ops: int) -> PhaseTask:
    return _task(mode="ycsb", ycsb=YcsbSpec(read_proportion=0.5, update_proportion=0.5), record_count=200,
                 operations=ops, track_writes=track)


def test_without_track_writes_nothing_is_kept_per_update():
    data = _data()
    b = NullBackend(BackendOptions(), tempfile.mkdtemp())
    small = run_phase(b, data, _ycsb_a(False, 2_000), 0, 1)
    large = run_phase(b, data, _ycsb_a(False, 40_000), 0, 1)
    assert small.updates is None and large.updates is None
    assert _count(large.hist["update"]) > 15_000
    # what a worker sends back does not grow with its operations (only with its one-second intervals)
    assert len(pickle.dumps(large)) - len(pickle.dumps(small)) < 8_000 * (1 + len(large.intervals))


def test_with_track_writes_each_update_is_one_int64_row():
    data = _data()
    b = NullBackend(BackendOptions(), tempfile.mkdtemp())
    res = run_phase(b, data, _ycsb_a(True, 4_000), 0, 1)
    u = res.updates
    assert u.dtype == np.int64 and u.shape == (_count(res.hist["update"]), 3)
    assert np.all(np.diff(u[:, 0]) >= 0)  # in ack order
    assert u[0, 0] >= int(res.started_wall * 1e9) and u[-1, 0] <= int(res.ended_wall * 1e9) + 1_000_000
    assert np.all((u[:, 1] >= 0) & (u[:, 1] < 200)) and np.all((u[:, 2] >= 0) & (u[:, 2] < len(data.holdout)))
    assert u[:4, 2].tolist() == [0, 1, 2, 3]  # held-out rows dealt in turn


def test_key_rows_follow_updates_and_own_inserts():
    """Scans search near the vector this worker last wrote to the key: one int32 slot per key, inserts too."""
    data = _data()
    b = NullBackend(BackendOptions(), tempfile.mkdtemp())
    task = _ycsb_a(False, 10)
    src = YcsbSource(b, task, data.queries, data.base, data.holdout, worker=1, workers=3,
                     rng=np.random.default_rng(0))
    rows = src.rows
    assert rows.get(5) == -1
    rows.set(5, 7)
    rows.set(200 + 1 + 3 * 4, 9)  # this worker's fifth insert
    assert rows.get(5) == 7 and rows.get(200 + 1 + 3 * 4) == 9 and rows.get(200 + 1) == -1
    assert rows.get(200 + 1 + 3 * 40) == -1


# -- bench fault's workers run the same driver -----------------------------------------------------------------

def test_fault_workers_log_every_operation_and_every_write_attempt_compactly():
    import threading
    from types import SimpleNamespace

    from bench.faults.run import _arrays, _Log, _worker
    from bench.workload_file import load_workload

    spec = load_workload("fault-ycsb-a")
    data = _data(n=300, holdout=100)
    ds = SimpleNamespace(n=300, base=data.base, holdout=data.holdout, queries=data.queries)
    b = FakeSlowBackend(FakeSlowOptions(latency_us=200, fail_every=7), tempfile.mkdtemp())
    log = _Log()
    t0 = time.perf_counter_ns() + int(0.1e9)  # 0.1 s of warm-up first
    _worker(b, spec, ds, 0, 1, t0, 0.3, threading.Event(), 0.0, log)
    assert time.perf_counter_ns() - t0 < 0.5e9
    a = _arrays([log])
    n = len(a["start"])
    assert n > 100 and len(a["end"]) == len(a["kind"]) == len(a["ok"]) == n
    assert a["start"].min() < 0 <= a["start"].max() and np.all(a["end"] >= a["start"])
    assert 0 < int((~a["ok"]).sum()) == sum(log.result.errors.values())  # failures: in the log and counted
    w = log.write_rows()
    assert len(w) == int(np.isin(a["kind"], [1, 2, 4]).sum())  # every write attempt, failed ones too
    assert set(w[:, 4].tolist()) == {0, 1} and np.all((w[:, 1] >= 0) & (w[:, 1] < 100))
    assert log.spans.typecode == "q" and log.writes.typecode == "q"  # no Python object per operation
