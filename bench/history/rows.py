"""A run's history rows: one per configuration (summary row), with the night it belongs to and the figures the
history follows.

The series key is the key registry's (bench.results.keys.match_names(): dataset, index as built, engine,
workload, operation, role, source tool, ef_search, concurrency, rate, ...), so a run on other data or another index
never joins another series, and imported rows (`source_tool`) and the sentinel (`role`) are series of their own.
Engine versions and the harness commit are not part of it: they are what a change is attributed to.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from bench.analysis.conditions import BUSY_RUN_SHARE
from bench.analysis.load import summary_frame, trials_frame
from bench.results import keys


@dataclass(frozen=True)
class Figure:
    name: str  # column in the history
    label: str
    unit: str
    better: str  # "higher" | "lower"


FIGURES = [
    Figure("qps", "QPS", "ops/s", "higher"),
    Figure("p50_us", "P50", "us", "lower"),
    Figure("p99_us", "P99", "us", "lower"),
    Figure("recall", "recall", "", "higher"),
    Figure("searchable_s", "time until searchable", "s", "lower"),
    Figure("memory_bytes", "peak memory", "bytes", "lower"),
    Figure("error_rate", "error rate", "", "lower"),
]
FIGURE = {f.name: f for f in FIGURES}
SPREAD = ("qps", "p50_us", "p99_us", "recall")  # figures with a trials' spread (_lo/_hi) in the summary
# the figures an imported row carries in its own columns (bench's stay null there)
IMPORTED = {"qps": "source_qps", "p50_us": "source_p50_us", "p99_us": "source_p99_us"}

NIGHT_FIELDS = [
    pa.field("series_id", pa.string()),
    pa.field("run_id", pa.string()),
    pa.field("night", pa.string()),  # the UTC date the run started, YYYY-MM-DD
    pa.field("started_utc", pa.string()),  # ISO 8601, orders the nights of a series
    pa.field("git_commit", pa.string()),
    pa.field("harness_version", pa.string()),
    pa.field("backend_server_version", pa.string()),
    pa.field("backend_client_version", pa.string()),
    pa.field("host_other_cores", pa.float64()),
    pa.field("host_load1", pa.float64()),
    pa.field("busy_trials", pa.int64()),
    pa.field("n_trials", pa.int64()),
    pa.field("busy", pa.bool_()),
]


def series_keys() -> list[str]:
    """The key columns that make a series (the registry's match keys: what must agree to compare two rows)."""
    return keys.match_names()


def schema() -> pa.Schema:
    key_fields = [f for f in keys.fields() if f.name in set(series_keys())]
    figures = []
    for f in FIGURES:
        figures.append(pa.field(f.name, pa.float64()))
        if f.name in SPREAD:
            figures += [pa.field(f"{f.name}_lo", pa.float64()), pa.field(f"{f.name}_hi", pa.float64())]
    return pa.schema(NIGHT_FIELDS + key_fields + figures)


def _plain(v: object) -> object:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA or v is pd.NaT:
        return None
    if hasattr(v, "item"):
        return v.item()
    return v


def series_id(row: dict) -> str:
    """A short stable id of a series from its key values."""
    text = json.dumps({k: _plain(row.get(k)) for k in series_keys()}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _host(trials: pd.DataFrame) -> dict[tuple, tuple[float | None, float | None]]:
    """Mean other processes' cores and load average per (backend, workload, role, op) of the ok trials."""
    out: dict[tuple, tuple[float | None, float | None]] = {}
    ok = trials[trials["status"] == "ok"] if "status" in trials else trials
    for k, g in ok.groupby(["backend", "workload", "role", "op"], dropna=False):
        means = []
        for col in ("host_other_cores", "host_load1"):
            v = pd.to_numeric(g[col], errors="coerce").dropna() if col in g else pd.Series(dtype=float)
            means.append(float(v.mean()) if len(v) else None)
        out[tuple(_plain(x) for x in k)] = (means[0], means[1])
    return out


def _figures(r: dict) -> dict:
    out: dict = {}
    for f in FIGURES:
        if f.name == "memory_bytes":
            v = r.get("server_rss_peak_bytes")
            v = v if _plain(v) is not None else r.get("client_rss_growth_bytes")
        elif f.name == "error_rate":
            count, errors = _plain(r.get("count")), _plain(r.get("errors"))
            v = errors / (count + errors) if count is not None and errors is not None and count + errors else None  # type: ignore[operator]
        else:
            v = r.get(f.name)
            if _plain(v) is None and f.name in IMPORTED:
                v = r.get(IMPORTED[f.name])
        out[f.name] = _plain(v)
        if f.name in SPREAD:
            out[f"{f.name}_lo"] = _plain(r.get(f"{f.name}_lo"))
            out[f"{f.name}_hi"] = _plain(r.get(f"{f.name}_hi"))
    return out


def run_rows(folder: Path) -> list[dict]:
    """The history rows of one run folder (every summary row of it; the A/B arms of `bench ab` are left out:
    an A/B run is a comparison of its own, not a night)."""
    summary = summary_frame([folder])
    try:
        host = _host(trials_frame([folder]))
    except Exception:  # noqa: BLE001 - an imported run may have no trials file; the host is then unknown
        host = {}
    rows = []
    for r in summary.to_dict("records"):
        if _plain(r.get("ab_arm")) is not None:
            continue
        started = pd.Timestamp(r["started_utc"]) if _plain(r.get("started_utc")) is not None else None
        key = tuple(_plain(r.get(k)) for k in ("backend", "workload", "role", "op"))
        cores, load1 = host.get(key, (None, None))
        n, busy = _plain(r.get("n_trials")), _plain(r.get("busy_trials"))
        row = {k: _plain(r.get(k)) for k in series_keys()}
        row.update(series_id=series_id(row), run_id=str(r["run_id"]),
                   night=started.strftime("%Y-%m-%d") if started is not None else "unknown",
                   started_utc=started.isoformat() if started is not None else None,
                   git_commit=_plain(r.get("git_commit")), harness_version=_plain(r.get("harness_version")),
                   backend_server_version=_plain(r.get("backend_server_version")),
                   backend_client_version=_plain(r.get("backend_client_version")),
                   host_other_cores=cores, host_load1=load1, busy_trials=busy, n_trials=n,
                   busy=bool(n and busy is not None and busy / n > BUSY_RUN_SHARE), **_figures(r))  # type: ignore[operator]
        rows.append(row)
    return rows


def frame(rows: list[dict]) -> pd.DataFrame:
    """History rows as a frame with every column of the schema, in its order."""
    names = schema().names
    return pd.DataFrame([{n: r.get(n) for n in names} for r in rows], columns=names)
