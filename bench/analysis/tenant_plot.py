"""The multi-tenancy picture: QPS, P99 and recall against the number of tenants ([tenants] workloads).

One line per run and configuration (backend, ef_search, tenant choice, every other key): rows of different runs
never share a line, since each run deals its own data to its tenant counts. A P99 withheld for too few samples is
a gap in its line, not a point.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import FixedLocator, NullLocator

from bench.analysis.plots import COLOR_FAMILIES, Picture, _num, log_axis, series_label, varying
from bench.results import keys


def _lines(df: pd.DataFrame) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    cols = [c for c in keys.names() if c in df and c not in ("workload_kind", "phase", "tenants")]
    levels = varying(df, axis="tenants")
    multi = {str(b) for b, g in df.groupby("backend") if g["run_id"].nunique() > 1}
    out = []
    for key, g in df.groupby(cols, dropna=False, sort=True):
        kv = dict(zip(cols, key, strict=True))
        if g["tenants"].nunique() < 2:
            continue
        out.append(((str(kv["backend"]), series_label(kv, multi, levels)), g.sort_values("tenants")))
    return out


def against_tenants(summary: pd.DataFrame, workload: str, title: str | None = None) -> Picture:
    """QPS, P99 and recall against the tenant count, per backend and configuration."""
    df = summary[summary["workload"] == workload]
    df = df[df["tenants"].map(_num).notna()] if "tenants" in df else df.iloc[0:0]
    if df.empty:
        return Picture(None, f"{title or workload}: no multi-tenant rows (a [tenants] workload draws QPS against tenants).")
    lines = _lines(df[df["op"] == "search"])
    if not lines:
        return Picture(None, f"{title or workload}: every line holds one tenant count; give [tenants] counts several values.")
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    backends = list(dict.fromkeys(b for (b, _), _ in lines))
    for (backend, label), g in lines:
        family = [k for k, _ in lines if k[0] == backend]
        j = family.index((backend, label))
        shade = 0.85 if len(family) == 1 else 0.4 + 0.55 * j / (len(family) - 1)
        color = plt.get_cmap(COLOR_FAMILIES[backends.index(backend) % len(COLOR_FAMILIES)])(shade)
        for a, col in zip(axes, ("qps", "p99_us", "recall"), strict=True):
            a.plot(g["tenants"], g[col].map(_num).astype(float), "-o", label=label, color=color)
    ticks = sorted({int(t) for _, g in lines for t in g["tenants"]})
    for a, (ylabel, what) in zip(axes, (("searches per second", "QPS"), ("P99 latency (us)", "P99"),
                                        ("recall@k (within the tenant)", "recall")), strict=True):
        a.set_xscale("log")
        a.set_xlim(ticks[0] / 1.5, ticks[-1] * 1.5)
        a.xaxis.set_major_locator(FixedLocator(ticks))
        a.xaxis.set_minor_locator(NullLocator())
        a.set_xticklabels([f"{t:,}" for t in ticks])
        a.set_xlabel("tenants")
        a.set_ylabel(ylabel)
        a.set_title(f"{what} against tenants")
        a.grid(True, which="both", alpha=0.3)
    axes[0].set_yscale("log")
    log_axis(axes[0].yaxis)
    if all(g["p99_us"].map(_num).isna().all() for _, g in lines):
        axes[1].text(0.5, 0.5, "P99 withheld everywhere:\nfewer than 1,000 searches per configuration", ha="center",
                     va="center", transform=axes[1].transAxes)
    else:
        axes[1].set_yscale("log")
        log_axis(axes[1].yaxis)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=min(2, len(labels)))
    fig.suptitle(title or workload)
    fig.tight_layout(rect=(0, 0.04 * ((len(labels) + 1) // 2) + 0.02, 1, 1))
    return Picture(fig)
