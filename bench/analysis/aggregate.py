"""Aggregation of the trials of one configuration.

- QPS, recall and the other per-trial figures: drop the lowest and the highest value (when there are at least
  three) and report the median of the rest; `_lo`/`_hi` give the spread of ALL ok trials, not only the kept ones.
- Latency (mean, P50, P90, P99, P99.9, max): from the histogram of every ok trial merged (one definition,
  the same the pictures draw), each percentile only where the merged samples support it
  (bench.metrics.hdr.TAIL_SAMPLES); `percentiles_withheld` names the ones left out.
- A trimmed extreme that differs from the median beyond the trials' own noise (3 robust standard deviations,
  and at least 10%) is flagged in `outliers`: trimming keeps it out of the headline, never out of sight.

Failed or invalid trials do not enter the aggregate; they stay in trials.parquet.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from bench.metrics import hdr
from bench.results import keys
from bench.results.schema import (
    CASE_FIGURES,
    CASE_TEXT,
    FIGURES,
    HYBRID_FIGURES,
    IMPORT_FIELDS,
    PROVENANCE_FIELDS,
    QUALITY_FIGURES,
)


@dataclass(frozen=True)
class Trimmed:
    median: float | None
    lo: float | None
    hi: float | None
    kept: int


def trimmed(values: Iterable[float | None]) -> Trimmed:
    """Median and spread of the values left after dropping one lowest and one highest (ties: one copy each)."""
    vals = sorted(float(v) for v in values if v is not None and not math.isnan(float(v)))
    if not vals:
        return Trimmed(None, None, None, 0)
    kept = vals[1:-1] if len(vals) >= 3 else vals
    return Trimmed(float(np.median(kept)), kept[0], kept[-1], len(kept))


SPREAD_FIGURES = (FIGURES + HYBRID_FIGURES + CASE_FIGURES + QUALITY_FIGURES
                  + ["service_p99_us", "client_cpu_cores", "server_rss_peak_bytes"])
MERGED_FIGURES = ["mean_us", "p50_us", "p90_us", "p99_us", "p999_us", "max_us"]  # from the merged histogram
OUTLIER_FIGURES = ["qps", "p99_us", "recall"]
OUTLIER_FLOOR = 0.10  # relative: below this a trimmed extreme is never flagged
OUTLIER_SDS = 3.0


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.4g}"


def outliers(rows: Sequence[dict], figures: Sequence[str] = OUTLIER_FIGURES) -> list[str]:
    """Sentences naming each trial whose figure lies beyond the trials' own noise: |x - median| above 3 robust
    standard deviations (1.4826 x the median absolute deviation) of the ok trials and above 10% of the median."""
    out = []
    for f in figures:
        pts = [(r.get("trial"), float(r[f])) for r in rows if r.get(f) is not None and not math.isnan(float(r[f]))]
        if len(pts) < 3:
            continue
        vals = np.array([v for _, v in pts])
        med = float(np.median(vals))
        sd = 1.4826 * float(np.median(np.abs(vals - med)))
        for trial, v in pts:
            dev = abs(v - med)
            if med and dev > OUTLIER_SDS * sd and dev > OUTLIER_FLOOR * abs(med):
                out.append(f"trial {trial}: {f} {_fmt(v)} against a median of {_fmt(med)} ({(v - med) / med:+.0%})")
    return out


def summarize(trial_rows: Sequence[dict]) -> list[dict]:
    """One summary row per configuration (the key columns), from the trial rows."""
    names = keys.names()
    carried = names + [f.name for f in PROVENANCE_FIELDS + IMPORT_FIELDS]
    groups: dict[tuple, list[dict]] = {}
    for r in trial_rows:
        groups.setdefault(tuple(r.get(k) for k in names), []).append(r)
    out = []
    for rows in groups.values():
        ok = [r for r in rows if r.get("status") == "ok"]
        first = rows[0]
        s = {k: first[k] for k in carried if k in first}
        s["n_trials"], s["n_ok"] = len(rows), len(ok)
        s["count"] = int(sum(r.get("count") or 0 for r in rows))
        s["errors"] = int(sum(r.get("errors") or 0 for r in rows))
        _figures(s, ok)
        for f in CASE_TEXT:
            s[f] = "; ".join(sorted({str(r[f]) for r in ok if r.get(f) is not None})) or None
        s["client_limited"] = any(bool(r.get("client_limited")) for r in ok)
        merged = hdr.merge(r.get("hdr") for r in ok)
        s["hdr"] = hdr.encode(merged) if merged.get_total_count() else None
        st = hdr.stats(merged)
        s["percentiles_withheld"] = ",".join(hdr.withhold(st)) or None
        for f in MERGED_FIGURES:
            s[f] = st[f]
        found = outliers(ok)
        s["outliers"] = "; ".join(found) if found else None
        s["busy_trials"] = sum(1 for r in ok if r.get("host_busy"))
        s["server_changes"] = sum(1 for r in ok if r.get("server_changed"))
        s["suspect_trials"] = sum(1 for r in ok if str(r.get("status_reason") or "").startswith("suspect"))
        out.append(s)
    return out


def _figures(s: dict, ok: list[dict]) -> None:
    """Trimmed median of each figure, with the spread of every ok trial."""
    kept = 0
    for f in SPREAD_FIGURES:
        vals = [float(r[f]) for r in ok if r.get(f) is not None and not math.isnan(float(r[f]))]
        t = trimmed(vals)
        s[f], s[f"{f}_lo"], s[f"{f}_hi"] = t.median, (min(vals) if vals else None), (max(vals) if vals else None)
        if f == "qps":
            kept = t.kept
    s["n_kept"] = kept
