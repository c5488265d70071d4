"""The rows of one timed trial: one per operation kind (and a YCSB mix's total), from the workers' merged
histograms, counts and errors, the trial's resource samples and the quality figures scored for it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.metrics import hdr
from bench.results.worker import WorkerResult

GENERATOR_LAG_LIMIT = 0.01  # open loop: a trial where the generator itself fell behind on >1% of sends is suspect
CLIENT_LIMIT = 0.9  # a worker process using >= 90% of a core was the limit, not the engine


@dataclass
class TrialInput:
    """Everything a trial's rows are made of."""

    results: list[WorkerResult]
    groups: list[tuple[str, list[str]]]  # (row op, worker labels merged into it)
    scored: Mapping[str, Mapping[str, Any]]  # row op -> quality figures
    base: Mapping[str, Any]  # provenance, keys and variant columns shared by every row of the trial
    cpu_s: float | None
    pool_kind: str
    resources: Any  # bench.metrics.resources stats: rss_peak_bytes, rss_mean_bytes, cpu_mean_pct
    error_threshold: float
    open_loop: bool
    scheduled_s: float | None = None  # open loop: the window the operations were scheduled over
    host: Mapping[str, Any] | None = None  # bench.metrics.host figures of the trial
    planned_s: float | None = None  # a timed trial's duration (run.duration_s); None for an operation count
    margin_s: float | None = None  # run.phase_margin_s: running longer than planned_s by this fails the trial


def _window(results: Sequence[WorkerResult], scheduled_s: float | None) -> float:
    """The trial's length: first start to last end; open loop, at least the scheduled window (a rate of one
    operation in a 2-s window is 0.5/s, not one divided by that operation's latency)."""
    start = min(r.started_wall for r in results)
    end = max(r.ended_wall for r in results)
    return max(end - start, scheduled_s or 0.0, 1e-9)


def _common(t: TrialInput, duration: float) -> dict[str, Any]:
    rs = t.results
    scheduled = sum(r.scheduled for r in rs)
    late = sum(r.late for r in rs)
    lag = sum(r.generator_lag for r in rs)
    limited, per_node = None, None
    if t.pool_kind == "process":
        limited = any((r.cpu_s or 0) / duration >= CLIENT_LIMIT for r in rs)
    elif t.pool_kind == "ray":
        per_node, limited = per_node_cpu(rs, duration)
    vis = [v for r in rs for v in r.visibility_us]
    vis_ok = [v for v in vis if v >= 0]
    res = t.resources
    return {
        **t.base, **(t.host or {}), "duration_s": duration,
        "achieved_rate": (scheduled / duration) if t.open_loop else None,
        "late_share": (late / scheduled) if scheduled else None,
        "generator_lag_share": (lag / scheduled) if scheduled else None,
        "out_of_range": sum(r.out_of_range for r in rs),
        "client_cpu_cores": (t.cpu_s / duration) if t.cpu_s is not None else None, "client_limited": limited,
        "client_cpu_per_node": json.dumps(per_node) if per_node is not None else None,
        "server_rss_peak_bytes": res.rss_peak_bytes, "server_rss_mean_bytes": res.rss_mean_bytes,
        "server_cpu_mean_pct": res.cpu_mean_pct,
        # the same sample floor as the latency percentiles (hdr.min_samples): P50 from 20 probes, P99 from 1,000
        "visibility_p50_us": float(np.percentile(vis_ok, 50)) if len(vis_ok) >= hdr.min_samples(50.0) else None,
        "visibility_p99_us": float(np.percentile(vis_ok, 99)) if len(vis_ok) >= hdr.min_samples(99.0) else None,
        "visibility_probes": len(vis_ok) if vis else None,
        "visibility_missed": (len(vis) - len(vis_ok)) if vis else None,
        "visibility_stale": sum(r.visibility_stale for r in rs) if vis else None,
        "error_samples": json.dumps([s for r in rs for s in r.error_samples][:5]),
        "served_by": _served_by(rs),
    }


def _served_by(rs: Sequence[WorkerResult]) -> str | None:
    """Searches per server node over the trial's workers (JSON), where the engine spread them over several."""
    total: dict[str, int] = {}
    for r in rs:
        for node, n in (r.extra.get("served_by") or {}).items():
            total[node] = total.get(node, 0) + int(n)
    return json.dumps(dict(sorted(total.items()))) if total else None


def per_node_cpu(rs: Sequence[WorkerResult], duration: float) -> tuple[dict[str, float], bool]:
    """Workers on a cluster: the CPU cores used on each node (keyed by its hashed address), and whether a node
    was the limit: one of its workers used >= CLIENT_LIMIT of a core, or all of them together that share of the
    node's cores."""
    cores: dict[str, float] = {}
    limited = False
    for r in rs:
        node = str(r.extra.get("node", "?"))
        used = (r.cpu_s or 0.0) / duration
        cores[node] = cores.get(node, 0.0) + used
        limited |= used >= CLIENT_LIMIT
    for node, used in cores.items():
        n_cpus = max(int(r.extra.get("node_cpus", 1)) for r in rs if str(r.extra.get("node", "?")) == node)
        limited |= used >= CLIENT_LIMIT * n_cpus
    return {k: round(v, 3) for k, v in sorted(cores.items())}, limited


LATE_US = 1000  # a send this late behind its intended start counts as late (bench.load.task.late_threshold_us)
LATE_SCALE = 10  # ... which is noise next to a service time this many times longer


def _status(err_rate: float, lag_share: float | None, threshold: float,
            service_p50_us: float | None) -> tuple[str, str | None]:
    """failed (errors), or ok; a trial whose generator fell behind is ok but *suspect*, with the reason, when
    the lateness is not noise next to what is measured (a 1 ms delay is noise beside a 10 ms operation and
    decisive beside a 50 us one); the figures stay visible either way."""
    if err_rate > threshold:
        return "failed", f"error rate {err_rate:.2%} is above run.error_threshold {threshold:.2%}"
    if lag_share is not None and lag_share > GENERATOR_LAG_LIMIT:
        if service_p50_us is not None and service_p50_us >= LATE_SCALE * LATE_US:
            return "ok", None
        return "ok", (f"suspect: the load generator itself fell behind its schedule on {lag_share:.1%} of sends "
                      f"by more than {LATE_US:,} us, against a median service time of "
                      f"{service_p50_us or 0:,.0f} us; lower --target-rate or add client cores")
    return "ok", None


def overrun(t: TrialInput) -> str | None:
    """Why a timed trial failed by running past its planned length (a stalled engine held an operation), or None."""
    if t.planned_s is None or t.margin_s is None or not t.results:
        return None
    took = max(r.ended_wall for r in t.results) - min(r.started_wall for r in t.results)
    if took <= t.planned_s + t.margin_s:
        return None
    return (f"the trial took {took:.1f} s against its {t.planned_s:g} s duration, more than run.phase_margin_s "
            f"({t.margin_s:g} s) over: the engine held an operation that long")


def _op_row(t: TrialInput, op: str, members: list[str], common: dict[str, Any], duration: float) -> dict[str, Any]:
    rs = t.results
    ok = hdr.merge(r.hist.get(m) for r in rs for m in members)
    fail = hdr.merge(r.failed.get(m) for r in rs for m in members)
    svc = hdr.merge(r.service.get(m) for r in rs for m in members)
    st, svc_st = hdr.stats(ok), hdr.stats(svc)
    withheld = hdr.withhold(st)
    hdr.withhold(svc_st)
    n_ok, n_fail = ok.get_total_count(), fail.get_total_count()
    err_rate = n_fail / (n_ok + n_fail) if n_ok + n_fail else 0.0
    status, reason = _status(err_rate, common["generator_lag_share"], t.error_threshold, svc_st["p50_us"])
    late = overrun(t)
    if late is not None and status == "ok":
        status, reason = "failed", late
    return {
        **common, "op": op, "status": status, "status_reason": reason, "count": n_ok, "errors": n_fail,
        "error_rate": err_rate, "qps": n_ok / duration,
        **{f: st[f] for f in ("mean_us", "p50_us", "p90_us", "p99_us", "p999_us", "max_us")},
        "service_p50_us": svc_st["p50_us"], "service_p99_us": svc_st["p99_us"],
        "service_p999_us": svc_st["p999_us"],
        "hdr": hdr.encode(ok) if n_ok else None, "hdr_failed": hdr.encode(fail) if n_fail else None,
        "hdr_service": hdr.encode(svc) if svc.get_total_count() else None,
        "recall": None, **t.scored.get(op, {}), "percentiles_withheld": ",".join(withheld) or None,
    }


def rows(t: TrialInput) -> list[dict[str, Any]]:
    """One row per row op of the trial."""
    duration = _window(t.results, t.scheduled_s if t.open_loop else None)
    common = _common(t, duration)
    return [_op_row(t, op, members, common, duration) for op, members in t.groups]
