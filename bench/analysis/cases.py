"""The chart of search P99 and recall against ingest progress (streaming)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis.plots import COMMA, Picture, _num, runs_per_backend, series_label


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
