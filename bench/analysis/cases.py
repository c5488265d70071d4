"""The figures of the production cases (streaming ingest, capacity, searchable-after and cold start) in compare
and report: their columns where rows have them, the streaming knee per run, and the chart of search P99 and
recall against ingest progress."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench.analysis.plots import COMMA, Picture, _num, runs_per_backend, series_label

MIB = 1024 * 1024

# (summary column, heading, number format, divide by); shown only where some row of a table has the figure
CASE_COLUMNS: list[tuple[str, str, str, float]] = [
    ("ingest_achieved", "ingest/s", ",.0f", 1.0),
    ("vectors_held", "vectors held", ",.0f", 1.0),
    ("rss_bytes", "RSS MiB", ",.1f", MIB),
    ("disk_bytes", "disk MiB", ",.1f", MIB),
    ("rss_per_million_bytes", "RSS MiB/M vec", ",.0f", MIB),
    ("disk_per_million_bytes", "disk MiB/M vec", ",.0f", MIB),
    ("ended_by", "ended by", "s", 1.0),
    ("searchable_after_s", "all found after s", ",.3f", 1.0),
    ("searchable_found", "found", ".1%", 1.0),
    ("first_query_us", "first query us", ",.0f", 1.0),
    ("restart_s", "restart s", ",.2f", 1.0),
]


def _present(v: object) -> bool:
    return v is not None and v is not pd.NA and not (isinstance(v, float) and math.isnan(v)) and v != ""


def columns_present(figures: pd.DataFrame) -> list[tuple[str, str, str, float]]:
    return [c for c in CASE_COLUMNS if c[0] in figures and any(_present(v) for v in figures[c[0]])]


def cells(r: dict, cols: list[tuple[str, str, str, float]]) -> list[str]:
    out = []
    for name, _, spec, div in cols:
        v = r.get(name)
        if not _present(v):
            out.append("-")
        elif spec == "s":
            out.append(str(v))
        else:
            out.append(format(float(v) / div, spec))
    return out


def knee_notes(g: pd.DataFrame) -> list[str]:
    """One sentence per streaming run: its knee, or that no rate kept search P99 within the factor."""
    from bench.scenarios.streaming import knee_of

    if "ingest_rate" not in g or not g["ingest_rate"].notna().any():
        return []
    out = []
    for (backend, run), rows in g[g["ingest_rate"].notna()].groupby(["backend", "run_id"], sort=True):
        recs = rows.to_dict("records")
        factors = [r.get("p99_factor") for r in recs if _present(r.get("p99_factor"))]
        factor = float(factors[0]) if factors else 2.0
        knee = knee_of(recs, factor)
        if knee is not None:
            out.append(f"knee, {backend} {run}: {knee['ingest_rate']:,.0f} vectors/s is the highest ingest rate kept "
                       f"up with whose search P99 ({knee['p99_us']:,.0f} us) stayed within {factor:g}x the idle "
                       f"P99 ({knee['idle_p99_us']:,.0f} us)")
        else:
            out.append(f"knee, {backend} {run}: none (no ingest rate was kept up with at a search P99 within "
                       f"{factor:g}x the idle P99, or a P99 was withheld for too few samples)")
    return out


def streaming_progress(summary: pd.DataFrame, workload: str, title: str | None = None) -> Picture:
    """Search P99 (solid, where the samples support it), P50 (dotted) and recall against ingest progress, one
    series per backend and ingest rate; the idle P99 as a dashed line."""
    import matplotlib.pyplot as plt

    df = summary[(summary["workload"] == workload) & (summary["op"] == "search")]
    if "ingest_stage" not in df or df["ingest_stage"].notna().sum() == 0:
        return Picture(None, f"{title or workload}: no rows per stage of ingest progress (not a streaming workload).")
    stages = df[df["ingest_stage"].notna()]
    multi = runs_per_backend(stages)
    levels = {"ingest_rate": True}
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 5))
    for label, g in stages.groupby(stages.apply(lambda r: series_label(r, multi, levels), axis=1), sort=True):
        g = g.sort_values("ingest_stage")
        x = g["ingest_stage"].to_numpy(float)
        p99 = np.array([_num(v) if _num(v) is not None else np.nan for v in g["p99_us"]])
        p50 = np.array([_num(v) if _num(v) is not None else np.nan for v in g["p50_us"]])
        line = a1.plot(x, p99, "o-", label=f"{label} P99")[0]
        a1.plot(x, p50, ":", color=line.get_color(), label=f"{label} P50")
        rec = np.array([_num(v) if _num(v) is not None else np.nan for v in g["recall"]])
        a2.plot(x, rec, "o-", color=line.get_color(), label=label)
    idle = df[(df["ingest_rate"] == 0) & df["ingest_stage"].isna()]
    for _, r in idle.iterrows():
        if _num(r["p99_us"]) is not None:
            a1.axhline(float(r["p99_us"]), linestyle="--", color="grey", alpha=0.6)
            a1.annotate(f"idle P99 {r['backend']} ({float(r['p99_us']):,.0f} us)", (0, float(r["p99_us"])),
                        fontsize=7, color="grey")
    a1.set_xlabel("ingest progress (% of the streamed vectors acknowledged)")
    a1.set_ylabel("search latency (us); P99 solid, P50 dotted")
    a1.yaxis.set_major_formatter(COMMA)
    a1.set_title(f"{title or workload}: search latency while vectors stream in", fontsize=9)
    a2.set_xlabel("ingest progress (%)")
    a2.set_ylabel("recall@k (exact: what was acked at search start)")
    a2.set_title("recall while vectors stream in", fontsize=9)
    for a in (a1, a2):
        a.grid(True, alpha=0.3)
        a.legend(fontsize=7)
    fig.tight_layout()
    return Picture(fig)
