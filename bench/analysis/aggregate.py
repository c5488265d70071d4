"""Trimmed aggregation of trials: per figure, drop the lowest and the highest value (when there are at least
three), report the median of the rest and the spread (min, max) of what was kept. Failed or invalid trials do
not enter the aggregate; they stay in trials.parquet."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from bench.metrics import hdr
from bench.results import keys
from bench.results.schema import FIGURES, HYBRID_FIGURES, PROVENANCE_FIELDS


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


SPREAD_FIGURES = FIGURES + HYBRID_FIGURES + ["service_p99_us", "client_cpu_cores", "server_rss_peak_bytes"]


def summarize(trial_rows: Sequence[dict]) -> list[dict]:
    """One summary row per configuration (the key columns), from the trial rows."""
    names = keys.names()
    carried = names + [f.name for f in PROVENANCE_FIELDS]
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
        kept = 0
        for f in SPREAD_FIGURES:
            t = trimmed(r.get(f) for r in ok)
            s[f], s[f"{f}_lo"], s[f"{f}_hi"] = t.median, t.lo, t.hi
            if f == "qps":
                kept = t.kept
        s["n_kept"] = kept
        s["client_limited"] = any(bool(r.get("client_limited")) for r in ok)
        merged = hdr.merge(r.get("hdr") for r in ok)
        s["hdr"] = hdr.encode(merged) if merged.get_total_count() else None
        out.append(s)
    return out
