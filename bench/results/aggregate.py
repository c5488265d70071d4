"""Aggregation of the trials of one configuration.

This module computes the headline figures of a configuration, for every output (the run table, --json, compare,
export, report, regress's headline columns, the notebook): `summarize` is the one definition.

- QPS, recall and the other per-trial figures: drop the lowest and the highest value (when there are at least
  three) and report the median of the rest; `_lo`/`_hi` give the spread of ALL ok trials, not only the kept ones.
- Latency (mean, P50, P90, P99, P99.9, max): from the histogram of every ok trial merged (one definition,
  the same the pictures draw), each percentile only where the merged samples support it
  (bench.metrics.hdr.TAIL_SAMPLES); `percentiles_withheld` names the ones left out.
- A trial worse than the median trial beyond the trials' own noise (3 robust standard deviations, and at least
  10%) is flagged in `outliers`: trimming keeps it out of the headline, never out of sight.

Failed trials do not enter the aggregate; they stay in trials.parquet.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from bench.metrics import hdr
from bench.results import figures, keys
from bench.results.schema import IMPORT_FIELDS, PROVENANCE_FIELDS, spread_figures


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


MERGED_FIGURES = ["mean_us", "p50_us", "p90_us", "p99_us", "p999_us", "max_us"]  # from the merged histogram
OUTLIER_FIGURES = ["qps", "p99_us", "recall"]
OUTLIER_FLOOR = 0.10  # relative: below this a trimmed extreme is never flagged
OUTLIER_SDS = 3.0
# the direction in which a figure is worse (+1: higher is worse), and its name in a sentence
WORSE = {"qps": -1, "p99_us": +1, "recall": -1, "p50_us": +1, "p999_us": +1}
NAMES = {"qps": ("QPS", ""), "p99_us": ("P99", " us"), "recall": ("recall", ""), "p50_us": ("P50", " us"),
         "p999_us": ("P99.9", " us")}


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.4g}"


def outliers(rows: Sequence[dict], figures: Sequence[str] = OUTLIER_FIGURES) -> list[str]:
    """Sentences naming each trial whose figure is worse than the other trials' beyond their own noise: |x - median
    trial| above 3 robust standard deviations (1.4826 x the median absolute deviation) of the ok trials and above
    10% of the median trial's value, in the direction that is worse (less QPS or recall, more latency). A trial's
    own percentile is compared with the median trial's, never with the headline (which is of the merged
    histogram), and says so."""
    out = []
    for f in figures:
        pts = [(r.get("trial"), float(r[f])) for r in rows if r.get(f) is not None and not math.isnan(float(r[f]))]
        if len(pts) < 3:
            continue
        vals = np.array([v for _, v in pts])
        med = float(np.median(vals))
        sd = 1.4826 * float(np.median(np.abs(vals - med)))
        name, unit = NAMES.get(f, (f, ""))
        for trial, v in pts:
            dev = v - med
            if med and abs(dev) > OUTLIER_SDS * sd and abs(dev) > OUTLIER_FLOOR * abs(med) \
                    and dev * WORSE.get(f, 0) > 0:
                way = "above" if dev > 0 else "below"
                out.append(f"trial {trial} worse: its {name} {_fmt(v)}{unit} is {abs(dev) / abs(med):.0%} {way} the "
                           f"median trial's {_fmt(med)}{unit}")
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
        for f in figures.texts():
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
    for f in spread_figures():
        vals = [float(r[f]) for r in ok if r.get(f) is not None and not math.isnan(float(r[f]))]
        t = trimmed(vals)
        s[f], s[f"{f}_lo"], s[f"{f}_hi"] = t.median, (min(vals) if vals else None), (max(vals) if vals else None)
        if f == "qps":
            kept = t.kept
    s["n_kept"] = kept


HEADLINE_FIGURES = ("qps", "p50_us", "p99_us", "p999_us", "recall")  # the figures shown under their plain names


def headline(trial_rows: Sequence[dict]) -> dict:
    """The summary row of one configuration's trial rows, as summarize computes it; rows of several runs (a
    baseline kept over several nights) are pooled as one configuration. Every output that shows a configuration's
    QPS, P50, P99, P99.9 or recall under those names reads it from here or from summary.parquet."""
    if not trial_rows:
        return {}
    first = trial_rows[0]
    same = {k: first.get(k) for k in keys.names()}
    return summarize([{**r, **same} for r in trial_rows])[0]
