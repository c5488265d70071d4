"""Interactive charts for the HTML report (plotly). Each function takes the frames of one table (one workload on
one dataset) and returns a plotly figure, or a sentence saying why the data does not support it. The same series
rules as the PNGs (bench.analysis.plots): rows that differ in any key never share a series.

Hover shows the run, dataset, index and figures of a point; a click on a legend entry hides or shows a series.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from bench.analysis import plots
from bench.analysis.compare import index_label
from bench.analysis.load import merge_hdr
from bench.results import keys

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]
MAX_PER_PANEL = 5  # percentile panels: a handful of series each, so the lines can be told apart
RECALL_FLOOR = 1e-4  # 1 - recall on a log axis: a perfect recall is drawn here (hover says 1.0000)
LAYOUT = {"template": "plotly_white", "margin": {"l": 60, "r": 20, "t": 50, "b": 50}, "height": 460,
          "legend": {"font": {"size": 11}}, "hoverlabel": {"align": "left"}}


def _f(v: object, spec: str = ",.0f") -> str:
    x = plots._num(v)
    return "-" if x is None else format(x, spec)


def _hover(r: pd.Series) -> str:
    lines = [f"<b>{r['backend']}</b> run {r['run_id']}", f"dataset {r.get('dataset_name')} "
             f"(n={_f(r.get('dataset_n'))}, dim={_f(r.get('dataset_dim'))})", f"index {index_label(r.to_dict())}"]
    config = keys.label(r.to_dict())
    if config:
        lines.append(config)
    lines.append(f"QPS {_f(r.get('qps'))} [{_f(r.get('qps_lo'))}-{_f(r.get('qps_hi'))}]")
    lines.append(f"recall {_f(r.get('recall'), '.4f')}")
    lines.append(f"P50 {_f(r.get('p50_us'))} us, P99 {_f(r.get('p99_us'))} us, P99.9 {_f(r.get('p999_us'))} us")
    return "<br>".join(lines)


def _spread(part: pd.DataFrame, col: str = "qps") -> dict | None:
    """Asymmetric error bars from a figure's `_lo` and `_hi` columns (the lowest and the highest value of the ok
    trials), or None where a row lacks them (an imported row, a single trial)."""
    lo, hi = f"{col}_lo", f"{col}_hi"
    if lo not in part or hi not in part:
        return None
    v = part[col].map(plots._num).astype(float)
    lo_v, hi_v = part[lo].map(plots._num).astype(float), part[hi].map(plots._num).astype(float)
    if lo_v.isna().all() or hi_v.isna().all():
        return None
    return {"type": "data", "symmetric": False, "array": list((hi_v - v).clip(lower=0).fillna(0)),
            "arrayminus": list((v - lo_v).clip(lower=0).fillna(0)), "thickness": 1.2, "width": 3}


# The recall / 1 - recall buttons: above the plot area at its left edge, clear of plotly's toolbar (top right) and
# of the legend (right); the title sits above them, so the top margin makes room for both.
BUTTONS = {"type": "buttons", "direction": "right", "x": 0.0, "xanchor": "left", "y": 1.02, "yanchor": "bottom",
           "pad": {"r": 4, "t": 0, "b": 0, "l": 0}, "font": {"size": 11}}


def recall_qps(summary: pd.DataFrame, title: str) -> go.Figure | str:
    """Recall (or 1 - recall, log: a button switches) against QPS (log), the Pareto frontier per series, each
    point with error bars from the lowest to the highest QPS of its ok trials."""
    df = summary[(summary["op"] == "search") & summary["recall"].map(plots._num).notna()
                 & summary["qps"].map(plots._num).notna()]
    if df.empty:
        return f"{title}: no search rows with both recall and QPS"
    multi, levels = plots.runs_per_backend(df), plots.varying(df)
    fig = go.Figure()
    recall_x, miss_x = [], []
    for i, (label, g) in enumerate(df.groupby(df.apply(lambda r: plots.series_label(r, multi, levels), axis=1),
                                              sort=True)):
        color = PALETTE[i % len(PALETTE)]
        front = plots.pareto_frontier([(float(r["recall"]), float(r["qps"])) for _, r in g.iterrows()])
        on = g.apply(lambda r, front=front: (float(r["recall"]), float(r["qps"])) in front, axis=1)
        for part, dominated in ((g[on].sort_values("recall", ascending=False), False), (g[~on], True)):
            if part.empty:
                continue
            rec = part["recall"].astype(float).to_numpy()
            recall_x.append(list(rec))
            miss_x.append(list(np.maximum(1.0 - rec, RECALL_FLOOR)))
            err = _spread(part)
            fig.add_trace(go.Scatter(
                x=recall_x[-1], y=part["qps"].astype(float), mode="markers" if dominated else "lines+markers",
                name=str(label), legendgroup=str(label), showlegend=not dominated,
                marker={"color": color, "size": 6 if dominated else 8, "opacity": 0.35 if dominated else 1.0},
                line={"color": color}, error_y={**err, "color": color} if err else None,
                text=[_hover(r) for _, r in part.iterrows()], hovertemplate="%{text}<extra></extra>",
                customdata=[f"ef={int(v)}" if plots._num(v) is not None else "" for v in part["ef_search"]]))
    wide_range = float(df["recall"].astype(float).min()) < float(df["recall"].astype(float).max()) - 0.1
    log_axis = {"xaxis.type": "log", "xaxis.autorange": "reversed", "xaxis.title.text": "1 - recall (log; right = better)"}
    lin_axis = {"xaxis.type": "linear", "xaxis.autorange": True, "xaxis.title.text": "recall@k"}
    fig.update_layout(**{**LAYOUT, "margin": {**dict(LAYOUT["margin"]), "t": 80}},  # type: ignore[call-overload]
                      title={"text": f"{title}: recall vs QPS", "font": {"size": 14}, "y": 0.97, "yanchor": "top"},
                      yaxis={"type": "log", "title": "queries per second (log)", "tickformat": ",.0f"},
                      updatemenus=[{**BUTTONS, "buttons": [
                          {"label": "recall", "method": "update", "args": [{"x": recall_x}, lin_axis]},
                          {"label": "1 - recall (log)", "method": "update", "args": [{"x": miss_x}, log_axis]}],
                          "active": 1 if wide_range else 0}])
    if wide_range:  # one poor series would squash the rest into the right edge of a linear axis
        for trace, xs in zip(fig.data, miss_x, strict=True):
            trace.x = xs
        fig.update_xaxes(type="log", autorange="reversed", title_text=log_axis["xaxis.title.text"])
    else:
        fig.update_xaxes(title_text="recall@k")
    return fig


def _curve(h) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs, ys = plots.percentile_curve(h, points=120)
    return xs, ys, (1.0 - 1.0 / xs) * 100.0


def _panels(trials: pd.DataFrame) -> dict[str, list[tuple[str, object, pd.DataFrame]]]:
    """One panel per backend (and run, where a backend was measured twice); its members are the configurations."""
    multi = plots.runs_per_backend(trials)
    levels = plots.varying(trials, axis=None)
    cols = [c for c in keys.names() if c in trials and c not in ("workload_kind", "phase")]
    member_keys = [k for k in keys.names("variant") if k != "selectivity"]
    panel_levels = {k: v for k, v in levels.items() if k not in member_keys}
    out: dict[str, list[tuple[str, object, pd.DataFrame]]] = {}
    for key, g in trials.groupby(cols, dropna=False, sort=True):
        kv = dict(zip(cols, key, strict=True))
        panel = plots.series_label(kv, multi, panel_levels)
        member = keys.label(kv, member_keys)
        member = f"{kv['op']} {member}".strip() if kv["op"] not in ("search",) or not member else member
        out.setdefault(panel, []).append((member, kv.get("ef_search"), g))
    return out


def _handful(members: list) -> tuple[list, list]:
    """At most MAX_PER_PANEL members, spread evenly over the list (first and last kept); the rest named."""
    if len(members) <= MAX_PER_PANEL:
        return members, []
    idx = sorted({round(i * (len(members) - 1) / (MAX_PER_PANEL - 1)) for i in range(MAX_PER_PANEL)})
    return [members[i] for i in idx], [m for i, m in enumerate(members) if i not in idx]


def latency_panels(trials: pd.DataFrame, title: str) -> tuple[go.Figure | str, list[str]]:
    """Latency by percentile, one small panel per backend, a handful of series each; x = 1/(1-p), log, up to
    where the samples run out. Returns the figure and the members left out of crowded panels."""
    df = trials[(trials["status"] == "ok") & trials["hdr"].map(lambda v: isinstance(v, str) and bool(v))]
    if df.empty:
        return f"{title}: no ok trial carries a latency histogram", []
    panels = _panels(df)
    n = len(panels)
    ncols = 1 if n == 1 else 2
    fig = make_subplots(rows=math.ceil(n / ncols), cols=ncols, subplot_titles=list(panels), shared_yaxes=True,
                        horizontal_spacing=0.06, vertical_spacing=0.12)
    left_out: list[str] = []
    right = 1.0
    for p, (panel, members) in enumerate(panels.items()):
        members.sort(key=lambda m: (plots._num(m[1]) is None, plots._num(m[1]) or 0, m[0]))
        shown, rest = _handful(members)
        left_out += [f"{panel} {m[0]}" for m in rest]
        for j, (member, _, g) in enumerate(shown):
            h = merge_hdr(g["hdr"])
            if not h.get_total_count():
                continue
            xs, ys, pct = _curve(h)
            right = max(right, float(xs[-1]))
            fig.add_trace(go.Scatter(
                x=xs, y=ys, mode="lines", name=f"{panel} {member}", legendgroup=panel,
                line={"color": PALETTE[j % len(PALETTE)], "width": 2}, customdata=pct,
                hovertemplate=f"<b>{panel}</b> {member}<br>P%{{customdata:.3f}}: %{{y:,.0f}} us"
                              f"<br>n={h.get_total_count():,}<extra></extra>"),
                row=p // ncols + 1, col=p % ncols + 1)
    ticks = [(1.0 / (1.0 - q), lab) for q, lab in plots.PERCENTILE_TICKS if 1.0 / (1.0 - q) <= right * 1.0001]
    fig.update_xaxes(type="log", range=[0, math.log10(right)], tickvals=[t for t, _ in ticks],
                     ticktext=[lab for _, lab in ticks])
    fig.update_yaxes(type="log", dtick="D2", tickformat=",.0f")  # 1, 2, 5 per decade: a narrow range is labelled too
    fig.update_yaxes(title_text="latency (us, log)", col=1)
    fig.update_layout(**{**LAYOUT, "height": 300 * math.ceil(n / ncols) + 80},
                      title={"text": f"{title}: latency by percentile (merged histograms of the ok trials)",
                             "font": {"size": 14}})
    return fig, left_out


YCSB_PANELS = [("qps", "QPS"), ("p50_us", "P50 (us)"), ("p99_us", "P99 (us)"), ("p999_us", "P99.9 (us)")]


def ycsb_bars(summary: pd.DataFrame, title: str) -> go.Figure | str:
    """Per operation kind, one bar group per series: QPS (error bars from the lowest to the highest QPS of the ok
    trials) and P50 / P99 / P99.9 latency. Linear axes from zero, so a bar's length is its figure, and the figure
    is written on the bar; no bar where too few samples support a percentile."""
    df = summary[summary["qps"].map(plots._num).notna()]
    if df.empty or (df["workload_kind"] != "ycsb").all():
        return f"{title}: not a YCSB workload with QPS figures"
    multi, levels = plots.runs_per_backend(df), plots.varying(df, axis="op")
    df = df.assign(series=df.apply(lambda r: plots.series_label(r, multi, levels), axis=1))
    ops = sorted(df["op"].unique(), key=lambda o: (o == "total", o))
    fig = make_subplots(rows=1, cols=len(YCSB_PANELS), subplot_titles=[t for _, t in YCSB_PANELS],
                        horizontal_spacing=0.06)
    for i, s in enumerate(sorted(df["series"].unique())):
        g = df[df["series"] == s].set_index("op").reindex(ops)
        color = PALETTE[i % len(PALETTE)]
        hover = [_hover(g.loc[o]) if pd.notna(g.loc[o].get("backend")) else "" for o in ops]
        for c, (col, _) in enumerate(YCSB_PANELS, start=1):
            y = g[col].map(plots._num).astype(float)
            fig.add_trace(go.Bar(x=ops, y=y, name=s, legendgroup=s, showlegend=c == 1, marker_color=color,
                                 error_y=_spread(g, col) if col == "qps" else None,
                                 text=[_f(v) for v in y], textposition="outside", cliponaxis=False,
                                 textfont={"size": 9}, customdata=hover,
                                 hovertemplate="%{x}<br>%{customdata}<extra></extra>"), row=1, col=c)
    fig.update_yaxes(type="linear", rangemode="tozero", tickformat=",.0f")
    fig.update_layout(**LAYOUT, barmode="group", title={"text": f"{title}: per operation kind", "font": {"size": 14}})
    return fig


def concurrency_lines(summary: pd.DataFrame, title: str) -> go.Figure | str:
    """QPS and P99 against concurrency (closed loop), per series measured at two levels or more."""
    df = summary[summary["qps"].map(plots._num).notna()]
    if "target_rate" in df:
        df = df[df["target_rate"].map(plots._num).isna()]
    if df.empty or df["concurrency"].nunique() < 2:
        return f"{title}: every series was measured at one concurrency only"
    levels = plots.varying(df, axis="concurrency")
    cols = [c for c in keys.names() if c in df and c not in ("run_id", "workload_kind", "phase", "concurrency")]
    fig = make_subplots(rows=1, cols=2, subplot_titles=["QPS", "P99 us"])
    i = 0
    for key, g in df.groupby(cols, dropna=False, sort=True):
        kv = dict(zip(cols, key, strict=True))
        if g["concurrency"].nunique() < 2:
            continue
        label = plots.series_label(kv, set(), {**levels, "ef_search": True}) + f" {kv['op']}"
        g = g.sort_values("concurrency")
        text = [_hover(r) for _, r in g.iterrows()]
        for c, col in ((1, "qps"), (2, "p99_us")):
            fig.add_trace(go.Scatter(x=g["concurrency"], y=g[col], mode="lines+markers", name=label,
                                     legendgroup=label, showlegend=c == 1, line={"color": PALETTE[i % len(PALETTE)]},
                                     text=text, hovertemplate="%{text}<extra></extra>"), row=1, col=c)
        i += 1
    if not fig.data:
        return f"{title}: every series was measured at one concurrency only"
    levels_drawn = sorted({int(c) for c in df["concurrency"].dropna()})
    fig.update_xaxes(type="log", title_text="concurrency (workers)", tickvals=levels_drawn,
                     ticktext=[f"{c:,}" for c in levels_drawn])
    fig.update_yaxes(tickformat=",.0f", rangemode="tozero")
    fig.update_layout(**LAYOUT, title={"text": f"{title}: QPS and P99 against concurrency", "font": {"size": 14}})
    return fig
