"""Live figures for Prometheus while `bench run` goes on (`--prometheus-port PORT`).

Nothing touches the measuring loop: after every trial the runner hands the trial's rows (with their encoded HDR
histograms) to `LiveExporter.trial_done`, and a collector turns them into metrics at scrape time:

- `bench_trial_qps`, `bench_trial_recall`: gauges of the last trial, per backend, workload, op and ef_search;
- `bench_trial_latency_seconds{quantile=...}`: P50, P90, P99, P99.9 of the last trial;
- `bench_latency_seconds`: a histogram of every ok trial so far (the HDR histograms merged, then counted into
  Prometheus buckets);
- `bench_operations_total{status="ok"|"error"}` and `bench_trials_total{status=...}` counters.

The server listens on 127.0.0.1 by default and is stopped by `close()`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

from hdrh.histogram import HdrHistogram
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from bench import scenarios
from bench.errors import UserError
from bench.metrics import hdr
from bench.results import keys

scenarios.load()  # the scenarios' result keys are labels too

# one Prometheus label per result key that tells configurations of a run apart (bench.results.keys): identity,
# load and variant keys; a run's data and index are one value each, so they would only multiply the series
LABELS = [k.name for k in keys.all_keys() if k.group in ("identity", "load", "variant")
          and k.name not in ("run_id", "workload_kind", "phase", "selectivity", "arrival", "k")]
BUCKETS_S = [25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3,
             1.0, 2.5, 5.0, 10.0, 30.0, 60.0]
QUANTILES = [("0.5", "p50_us"), ("0.9", "p90_us"), ("0.99", "p99_us"), ("0.999", "p999_us")]


def _labels(row: dict) -> tuple[str, ...]:
    def text(v: object) -> str:
        if v is None:
            return ""
        return f"{v:g}" if isinstance(v, float) else str(v)

    return tuple(text(row.get(name)) for name in LABELS)


def buckets_from_hdr(h: HdrHistogram, bounds_s: Iterable[float] = BUCKETS_S) -> list[tuple[str, float]]:
    """Cumulative Prometheus buckets (le in seconds) from an HDR histogram recorded in microseconds."""
    bounds = list(bounds_s)
    counts = [0] * len(bounds)
    for item in h.get_recorded_iterator():
        v_s = h.get_highest_equivalent_value(item.value_iterated_to) / 1e6
        for i, b in enumerate(bounds):
            if v_s <= b:
                counts[i] += item.count_at_value_iterated_to
                break
    out, total = [], 0
    for b, c in zip(bounds, counts, strict=True):
        total += c
        out.append((repr(b), float(total)))
    out.append(("+Inf", float(h.get_total_count())))
    return out


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last: dict[tuple[str, ...], dict[str, Any]] = {}
        self.merged: dict[tuple[str, ...], HdrHistogram] = {}
        self.ops: dict[tuple[str, ...], list[int]] = {}  # labels -> [ok, errors]
        self.trials: dict[tuple[str, str, str], int] = {}


class _Collector(Collector):
    def __init__(self, state: _State):
        self.state = state

    def collect(self) -> Iterator[Metric]:
        s = self.state
        qps = GaugeMetricFamily("bench_trial_qps", "Operations per second in the last finished trial", labels=LABELS)
        recall = GaugeMetricFamily("bench_trial_recall", "Recall@k of the last finished trial", labels=LABELS)
        lat = GaugeMetricFamily("bench_trial_latency_seconds", "Latency percentiles of the last finished trial",
                                labels=[*LABELS, "quantile"])
        hist = HistogramMetricFamily("bench_latency_seconds", "Latency of the successful operations of every ok "
                                     "trial so far (HDR histograms merged)", labels=LABELS)
        ops = CounterMetricFamily("bench_operations", "Timed operations so far", labels=[*LABELS, "status"])
        trials = CounterMetricFamily("bench_trials", "Finished trials", labels=["backend", "workload", "status"])
        with s.lock:
            for key, row in s.last.items():
                if row.get("qps") is not None:
                    qps.add_metric(key, float(row["qps"]))
                if row.get("recall") is not None:
                    recall.add_metric(key, float(row["recall"]))
                for q, col in QUANTILES:
                    if row.get(col) is not None:
                        lat.add_metric([*key, q], float(row[col]) / 1e6)
            for key, h in s.merged.items():
                hist.add_metric(key, buckets_from_hdr(h), sum_value=h.get_mean_value() * h.get_total_count() / 1e6)
            for key, (ok, err) in s.ops.items():
                ops.add_metric([*key, "ok"], ok)
                ops.add_metric([*key, "error"], err)
            for key, n in s.trials.items():
                trials.add_metric(list(key), n)
        yield from (qps, recall, lat, hist, ops, trials)


class LiveExporter:
    """Serves the live metrics on http://ADDR:PORT/metrics; `trial_done(rows)` after each trial updates them."""

    def __init__(self, port: int, addr: str = "127.0.0.1"):
        self.port, self.addr = port, addr
        self.state = _State()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self.state))
        self._server: Any = None  # prometheus_client's WSGIServer once started
        self._thread: threading.Thread | None = None

    def start(self) -> LiveExporter:
        if not 0 < self.port < 65536:
            raise UserError(f"--prometheus-port {self.port} is not a TCP port", "give a number from 1 to 65535")
        try:
            self._server, self._thread = start_http_server(self.port, addr=self.addr, registry=self.registry)
        except OSError as e:
            raise UserError(f"Cannot listen on {self.addr}:{self.port} for Prometheus ({e.strerror})",
                            "choose a free --prometheus-port") from None
        return self

    def trial_done(self, rows: list[dict]) -> None:
        """Take the rows of one finished trial (one per operation kind) into the metrics."""
        with self.state.lock:
            for row in rows:
                key = _labels(row)
                self.state.last[key] = {k: row.get(k) for k in ("qps", "recall", *(c for _, c in QUANTILES))}
                counts = self.state.ops.setdefault(key, [0, 0])
                counts[0] += int(row.get("count") or 0)
                counts[1] += int(row.get("errors") or 0)
                if row.get("status") == "ok" and row.get("hdr"):
                    h = self.state.merged.get(key)
                    if h is None:
                        h = self.state.merged[key] = hdr.new_histogram()
                    h.decode_and_add(row["hdr"])
            first = rows[0] if rows else None
            if first is not None:
                status = "ok" if all(r.get("status") == "ok" for r in rows) else "not ok"
                tkey = (str(first.get("backend")), str(first.get("workload")), status)
                self.state.trials[tkey] = self.state.trials.get(tkey, 0) + 1

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> LiveExporter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
