"""Pictures of results (matplotlib, Agg). Each function draws one figure from pandas frames and returns it, or
returns a sentence saying why the data does not support it. Measuring is kept apart: nothing here runs anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogFormatter, NullLocator

from bench.analysis.load import merge_hdr
from bench.results import keys

COLOR_FAMILIES = ["Blues", "Oranges", "Greens", "Reds", "Purples", "Greys", "YlOrBr", "PuRd"]
PERCENTILE_TICKS = [(0.0, "0%"), (0.5, "50%"), (0.9, "90%"), (0.99, "99%"), (0.999, "99.9%"), (0.9999, "99.99%"),
                    (0.99999, "99.999%"), (0.999999, "99.9999%")]


@dataclass
class Picture:
    figure: Figure | None
    skipped: str | None = None  # why it was not drawn


def _num(v: object) -> float | None:
    if v is None or v is pd.NA:
        return None
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


class CommaLogFormatter(LogFormatter):
    """Tick labels of a log axis as plain numbers with thousands separators (20,000, not 2x10^4); minor ticks
    are labelled where the axis spans too little for its decades to say the scale."""

    def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
        return f"{x:,.0f}" if x >= 1 else f"{x:g}"


COMMA = FuncFormatter(lambda v, _pos: f"{v:,.0f}")


def log_axis(axis) -> None:
    """A log scale on `axis` (ax.yaxis or ax.xaxis) whose ticks read as numbers."""
    axis.set_major_formatter(CommaLogFormatter(labelOnlyBase=False))
    axis.set_minor_formatter(CommaLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def spread_text(col: str = "QPS") -> str:
    return f"error bars: lowest to highest {col} of the ok trials"


# keys never in a series label: identity keys get their own treatment, the x-axis parameter is on the axis
_NOT_IN_LABEL = {"run_id", "workload", "workload_kind", "phase", "backend", "selectivity"}


def series_label(row: pd.Series | dict, multi_run: set[str], levels: dict[str, bool] | None = None) -> str:
    """backend, plus the run id when the backend was measured twice at one configuration, plus every key of
    bench.results.keys that varies between the rows drawn (`levels`): dataset, index, concurrency, rate, filter,
    named vector, fusion, scenario axes. Two rows that differ in any key never share a series."""
    b = str(row["backend"])
    label = f"{b} ({row['run_id']})" if b in multi_run else b
    names = [k for k, v in (levels or {}).items() if v]
    extra = keys.label(row, names)
    return f"{label} {extra}" if extra else label


def varying(df: pd.DataFrame, axis: str | None = "ef_search") -> dict[str, bool]:
    """Which keys (besides identity keys and the x-axis key) take more than one value among the rows."""
    def varies(k: str) -> bool:  # within one backend: an engine's own version never tells two engines apart
        if k not in df:
            return False
        if "backend" in df and k in keys.names("engine"):
            return bool(df.groupby("backend")[k].nunique(dropna=False).max() > 1)
        return df[k].nunique(dropna=False) > 1

    return {k: varies(k) for k in keys.names() if k not in _NOT_IN_LABEL and k != axis}


def runs_per_backend(df: pd.DataFrame) -> set[str]:
    """Backends measured more than once at the same configuration (their series are labelled with the run id,
    so a baseline and a candidate stay apart; runs that only add settings join one series)."""
    cols = [c for c in keys.names() if c in df and c not in ("run_id", "workload_kind", "phase")]
    n = df.groupby(cols, dropna=False)["run_id"].nunique()
    return {key[cols.index("backend")] for key, k in n.items() if k > 1}


def pareto_frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points (recall, qps) that no other point beats on both (ann-benchmarks style), by falling recall."""
    out: list[tuple[float, float]] = []
    best = -math.inf
    for r, q in sorted(points, key=lambda p: (-p[0], -p[1])):
        if q > best:
            out.append((r, q))
            best = q
    return out


def recall_qps(summary: pd.DataFrame, workload: str, title: str | None = None) -> Picture:
    """Recall against QPS per backend, QPS on a log scale, the Pareto frontier drawn, every point shown."""
    df = summary[(summary["workload"] == workload) & (summary["op"] == "search")]
    df = df[df["recall"].map(_num).notna() & df["qps"].map(_num).notna()]
    ext = _imported_points(summary)
    if df.empty and ext.empty:
        return Picture(None, f"{title or workload}: no search row has both recall and QPS.")
    multi, levels = runs_per_backend(df), varying(df)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for (tool, backend, conc), g in ext.groupby(["source_tool", "backend", "concurrency"], dropna=False, sort=True):
        c = f" c={int(conc)}" if _num(conc) is not None else ""
        ax.plot(g["recall"].astype(float), g["source_qps"].astype(float), "x", markersize=7,
                label=f"{tool}: {backend}{c} (its own QPS, measured as its definition says)")
    for label, g in df.groupby(df.apply(lambda r: series_label(r, multi, levels), axis=1), sort=True):
        pts = [(float(r["recall"]), float(r["qps"])) for _, r in g.iterrows()]
        front = pareto_frontier(pts)
        (line,) = ax.plot([p[0] for p in front], [p[1] for p in front], "-o", label=str(label), markersize=5)
        others = [p for p in pts if p not in front]
        if others:
            ax.plot([p[0] for p in others], [p[1] for p in others], "o", color=line.get_color(), alpha=0.35,
                    markersize=4)
        lo = g["qps_lo"].map(_num) if "qps_lo" in g else None
        hi = g["qps_hi"].map(_num) if "qps_hi" in g else None
        if lo is not None and hi is not None and lo.notna().all() and hi.notna().all():
            q = g["qps"].astype(float).to_numpy()
            ax.errorbar(g["recall"].astype(float), q, yerr=[np.clip(q - lo.to_numpy(float), 0, None),
                                                            np.clip(hi.to_numpy(float) - q, 0, None)],
                        fmt="none", ecolor=line.get_color(), alpha=0.6, capsize=2)
        for _, r in g.iterrows():
            if _num(r.get("ef_search")) is not None and (float(r["recall"]), float(r["qps"])) in front:
                ax.annotate(f"ef={int(r['ef_search'])}", (float(r["recall"]), float(r["qps"])), fontsize=7,
                            xytext=(3, 3), textcoords="offset points", alpha=0.7)
    ax.set_yscale("log")
    log_axis(ax.yaxis)
    ax.set_xlabel("recall@k")
    ax.set_ylabel("queries per second (log scale)")
    k = sorted({int(v) for v in df["k"].dropna()}) if "k" in df else []
    ax.set_title(f"{title or workload}\nrecall vs QPS" + (f" (k={k[0]})" if len(k) == 1 else "")
                 + f"; line: Pareto frontier; {spread_text()}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return Picture(fig)


def _imported_points(summary: pd.DataFrame) -> pd.DataFrame:
    """Search rows another tool measured (bench import), with recall and the tool's own QPS: drawn as crosses
    apart from bench's series, never joined to them."""
    if "source_tool" not in summary or "source_qps" not in summary:
        return summary.iloc[0:0]
    tool = summary["source_tool"].map(lambda t: isinstance(t, str) and t != "bench")
    df = summary[tool & (summary["op"] == "search")]
    return df[df["recall"].map(_num).notna() & df["source_qps"].map(_num).notna()]


def percentile_curve(h, points: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """x = 1/(1-percentile) and latency, from 0% up to where the histogram's samples run out."""
    n = h.get_total_count()
    top = math.log10(max(n, 2))
    xs = np.logspace(0, top, points)
    pct = (1.0 - 1.0 / xs) * 100.0
    ys = np.array([h.get_value_at_percentile(float(p)) for p in pct], dtype=float)
    return xs, ys


def _percentile_curves(df: pd.DataFrame, kind: str) -> dict[str, list[tuple[str, object, np.ndarray, np.ndarray,
                                                                            int]]]:
    """One merged histogram's percentile curve per configuration, grouped into colour families (backend, run,
    data, index, load) whose members are the ef_search and scenario axes."""
    multi = runs_per_backend(df)
    levels = varying(df, axis=None)
    curves: dict[str, list[tuple[str, object, np.ndarray, np.ndarray, int]]] = {}
    cols = [c for c in keys.names() if c in df and c not in ("workload_kind", "phase")]
    member_keys = [k for k in keys.names("variant") if k != "selectivity"]
    group_levels = {k: v for k, v in levels.items() if k not in member_keys}
    for key, g in df.groupby(cols, dropna=False, sort=True):
        kv = dict(zip(cols, key, strict=True))
        h = merge_hdr(g["hdr"])
        if not h.get_total_count():
            continue
        xs, ys = percentile_curve(h)
        group = series_label(kv, multi, group_levels)  # one colour family: backend, run, data, index, load
        op = kv["op"]
        member = keys.label(kv, member_keys)  # shades within it: ef_search and the scenario axes
        member = f"{op} {member}" if kind == "ycsb" or not member else member
        curves.setdefault(group, []).append((member, op, xs, ys, h.get_total_count()))
    return curves


def latency_distribution(trials: pd.DataFrame, workload: str, title: str | None = None) -> Picture:
    """HdrHistogram-style percentile distribution of the merged histograms of the ok trials, per series."""
    df = trials[(trials["workload"] == workload) & (trials["status"] == "ok")]
    df = df[df["hdr"].map(lambda v: isinstance(v, str) and bool(v))]
    if df.empty:
        return Picture(None, f"{title or workload}: no ok trial carries a latency histogram.")
    kind = str(df["workload_kind"].iloc[0]) if "workload_kind" in df else "ann"
    curves = _percentile_curves(df, kind)
    n_series = sum(len(v) for v in curves.values())
    many = n_series > 6
    fig, ax = plt.subplots(figsize=(10.5 if many else 8, 5.5))
    biggest = 1
    # one colour family per series (backend, run, concurrency); within it, light to dark by ef_search or op
    for i, (group, members) in enumerate(curves.items()):
        members.sort(key=lambda m: (m[1] == "total", m[1] if kind == "ycsb" else 0))
        cmap = plt.get_cmap(COLOR_FAMILIES[i % len(COLOR_FAMILIES)])
        for j, (member, op, xs, ys, n) in enumerate(members):
            shade = 0.85 if len(members) == 1 else 0.4 + 0.55 * j / (len(members) - 1)
            ax.plot(xs, ys, color=cmap(shade), label=f"{group} {member} (n={n:,})",
                    linestyle="--" if op == "total" else "-")
            biggest = max(biggest, n)
    ax.set_xscale("log")
    ymax = ax.get_ylim()[1]
    lows = [line.get_ydata().min() for line in ax.get_lines()]
    if lows and min(lows) > 0 and ymax / min(lows) > 50:
        ax.set_yscale("log")
        log_axis(ax.yaxis)
        ax.set_ylabel("latency (us, log scale)")
    else:
        ax.yaxis.set_major_formatter(COMMA)
        ax.set_ylim(bottom=0)
        ax.set_ylabel("latency (us)")
    right = max(1e4, biggest)
    ticks = [(1.0 / (1.0 - p), lab) for p, lab in PERCENTILE_TICKS if 1.0 / (1.0 - p) <= right * 1.0001]
    ax.xaxis.set_major_locator(FixedLocator([t for t, _ in ticks]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([lab for _, lab in ticks])
    ax.set_xlim(1, right)
    ax.set_xlabel("percentile (scale 1/(1-p)); a line ends where its samples run out")
    ax.set_title(f"{title or workload}\nlatency by percentile, histograms merged over the ok trials", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    if many:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    else:
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return Picture(fig)


YCSB_PANELS = [("qps", "operations per second"), ("p50_us", "P50 latency (us)"), ("p99_us", "P99 latency (us)")]


def _column(g: pd.DataFrame, col: str, ops: list[str]) -> np.ndarray:
    return np.array([_num(g[col].get(o)) if col in g and _num(g[col].get(o)) is not None else np.nan for o in ops])


def ycsb_operations(summary: pd.DataFrame, workload: str, title: str | None = None) -> Picture:
    """Per operation kind, one bar per series (backend, and what else varies): QPS with error bars from the
    lowest to the highest QPS of the ok trials, P50 and P99. Linear axes from zero, so a bar's length is its
    figure, and the figure is written above the bar; "withheld" where too few samples support a percentile."""
    df = summary[(summary["workload"] == workload)]
    if df.empty or "workload_kind" not in df or (df["workload_kind"] != "ycsb").all():
        return Picture(None, f"{title or workload}: not a YCSB workload, so there are no operation kinds to compare.")
    df = df[df["qps"].map(_num).notna()]
    if df.empty:
        return Picture(None, f"{title or workload}: no operation has a QPS figure.")
    multi, levels = runs_per_backend(df), varying(df, axis="op")
    df = df.assign(series=df.apply(lambda r: series_label(r, multi, levels), axis=1))
    ops = sorted(df["op"].unique(), key=lambda o: (o == "total", o))
    series = sorted(df["series"].unique())
    width = 0.8 / max(1, len(series))
    x = np.arange(len(ops))
    fig, axes = plt.subplots(1, len(YCSB_PANELS), figsize=(15, 5))
    for i, s in enumerate(series):
        g = df[df["series"] == s].set_index("op")
        pos = x - 0.4 + width * (i + 0.5)
        color = f"C{i % 10}"
        for ax, (col, _) in zip(axes, YCSB_PANELS, strict=True):
            v = _column(g, col, ops)
            err = None
            if col == "qps":
                lo, hi = _column(g, "qps_lo", ops), _column(g, "qps_hi", ops)
                err = [np.nan_to_num(np.clip(v - lo, 0, None)), np.nan_to_num(np.clip(hi - v, 0, None))]
            bars = ax.bar(pos, np.nan_to_num(v), width, color=color, label=s, yerr=err, capsize=2)
            ax.bar_label(bars, labels=[("withheld" if o in g.index else "") if np.isnan(t) else f"{t:,.0f}"
                                       for o, t in zip(ops, v, strict=True)], fontsize=7, padding=2)
    for ax, (col, ylabel) in zip(axes, YCSB_PANELS, strict=True):
        ax.set_xticks(x)
        ax.set_xticklabels(ops)
        ax.set_ylim(bottom=0)
        ax.margins(y=0.12)
        ax.yaxis.set_major_formatter(COMMA)
        ax.set_ylabel(ylabel)
        ax.set_title(("QPS; " + spread_text()) if col == "qps" else ylabel, fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{title or workload}: per operation kind", fontsize=11)
    fig.tight_layout()
    return Picture(fig)


def qps_vs_concurrency(summary: pd.DataFrame, workload: str, title: str | None = None) -> Picture:
    """QPS and P99 against concurrency, per backend and operation (closed loop rows only)."""
    df = summary[(summary["workload"] == workload) & summary["qps"].map(_num).notna()]
    if "target_rate" in df:
        df = df[df["target_rate"].map(_num).isna()]
    if df.empty:
        return Picture(None, f"{title or workload}: no closed-loop row has a QPS figure.")
    kind = str(df["workload_kind"].iloc[0]) if "workload_kind" in df else "ann"
    lines = []
    cols = [c for c in keys.names() if c in df and c not in ("run_id", "workload_kind", "phase", "concurrency")]
    levels = {**varying(df, axis="concurrency"), "ef_search": kind == "ann"}
    for key, g in df.groupby(cols, dropna=False, sort=True):
        kv = dict(zip(cols, key, strict=True))
        if kind == "ycsb" and kv["op"] != "total" and (df["op"] == "total").any():
            continue
        if g["concurrency"].nunique() < 2:
            continue
        if "started_utc" in g:
            g = g.sort_values("started_utc").groupby("concurrency", as_index=False).last()
        label = series_label(kv, set(), levels) + (f" {kv['op']}" if kind == "ycsb" else "")
        lines.append(((str(kv["backend"]), label), g.sort_values("concurrency")))
    if not lines:
        levels = sorted({int(c) for c in df["concurrency"].dropna()})
        at = ("concurrency " + ", ".join(f"{c:,}" for c in levels)) if levels else "one concurrency"
        return Picture(None, f"{title or workload}: QPS against concurrency needs a series measured at two "
                             f"concurrencies or more, and every series was measured at one ({at}). Run again with "
                             "--concurrency 1,2,4,8 to draw it.")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 5))
    backends = list(dict.fromkeys(str(k[0]) for k, _ in lines))
    for (backend, label), g in lines:
        family = [k for k, _ in lines if k[0] == backend]
        j = family.index((backend, label))
        shade = 0.85 if len(family) == 1 else 0.4 + 0.55 * j / (len(family) - 1)
        color = plt.get_cmap(COLOR_FAMILIES[backends.index(str(backend)) % len(COLOR_FAMILIES)])(shade)
        a1.plot(g["concurrency"], g["qps"], "-o", label=label, color=color)
        a2.plot(g["concurrency"], g["p99_us"], "-o", label=label, color=color)
    for a in (a1, a2):
        a.set_xlabel("concurrency (workers)")
        a.set_xscale("log", base=2)
        levels = sorted({int(c) for _, g in lines for c in g["concurrency"]})
        a.xaxis.set_major_locator(FixedLocator(levels))
        a.xaxis.set_minor_locator(NullLocator())
        a.set_xticklabels([f"{c:,}" for c in levels])
        a.yaxis.set_major_formatter(COMMA)
        a.grid(True, which="both", alpha=0.3)
        a.legend(fontsize=8)
    a1.set_ylabel("operations per second")
    a1.set_title("QPS against concurrency")
    fig.suptitle(title or workload, fontsize=11)
    a2.set_ylabel("P99 latency (us)")
    a2.set_title("P99 against concurrency")
    fig.tight_layout()
    return Picture(fig)
