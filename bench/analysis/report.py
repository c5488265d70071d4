"""`bench report RESULTS... --out DIR`: PNG pictures and one HTML page (index.html) from result folders.

Only what the data supports is drawn; the page says what was skipped and why.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from bench.analysis import charts, htmlpage, plots, sidebyside
from bench.analysis.compare import (
    DATA_KEYS,
    _notes,
    capability_frame,
    dataset_title,
    display_rows,
    figures_frame,
)
from bench.analysis.compare import Comparison as _Comparison
from bench.analysis.load import summary_frame, trials_frame
from bench.errors import UserError
from bench.results.writer import write_text


@dataclass
class ReportResult:
    out_dir: Path
    html: Path
    pictures: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"


CAPTIONS = {
    "recall-qps": "Recall against queries per second per backend (ann-benchmarks style): each point is one "
                  "ef_search setting (trimmed median of the kept trials, bars show their spread); the line joins "
                  "the Pareto frontier, pale points are dominated. Up and to the right is better. Crosses are "
                  "rows another tool measured (bench import), at that tool's own QPS: see their definitions in "
                  "the table above.",
    "latency": "Latency by percentile (HdrHistogram style) from the HDR histograms of every ok trial merged; "
               "the x axis is 1/(1-percentile) on a log scale, so the tail gets room. Lower is better.",
    "ycsb-ops": "Throughput and latency per YCSB operation kind (trimmed medians; QPS bars show the spread of "
                "the kept trials).",
    "concurrency": "Throughput and P99 latency against the number of workers, closed loop.",
}


def _save(pic: plots.Picture, path: Path) -> None:
    import matplotlib.pyplot as plt

    assert pic.figure is not None
    tmp = path.with_name(f".{path.name}.tmp.png")
    pic.figure.savefig(tmp, dpi=100)
    plt.close(pic.figure)
    tmp.replace(path)


def build(paths: Sequence[str | Path], out_dir: Path) -> ReportResult:
    """Draw every picture the results support into out_dir (PNGs) and write out_dir/index.html, one
    self-contained interactive page."""
    if not paths:
        raise UserError("bench report needs at least one results folder or file", "e.g. bench report results/RUN_ID")
    summary = summary_frame(paths)
    trials = trials_frame(paths)
    if summary.empty:
        raise UserError("The results hold no summary rows", "check that the runs finished at least one trial")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"Cannot create the report folder {out_dir} ({e.strerror})", "choose a writable --out") from None
    res = ReportResult(out_dir, out_dir / "index.html")
    summary = summary.assign(table=sidebyside.place(summary)[0])  # imported rows beside the bench run they match
    figures = figures_frame(summary)
    sections, nav = [], []
    seen: dict[str, int] = {}
    for group, s_group in summary.groupby("table", sort=True, dropna=False):
        workload = group[0]
        n = seen[workload] = seen.get(workload, -1) + 1  # a second dataset of one workload: files get -1, -2, ...
        own = s_group[~sidebyside.imported(s_group)]
        title = dataset_title((own if len(own) else s_group).iloc[0].to_dict())
        others = s_group.loc[sidebyside.imported(s_group), "run_id"].unique()
        t_group = trials[_same_keys(trials, dict(zip(["workload", *DATA_KEYS], group, strict=True)))
                         | trials["run_id"].isin(others)]
        stem = _slug(str(workload)) + (f"-{n}" if n else "")
        pngs = _draw_pngs(res, s_group, t_group, workload, title, stem)
        g_figures = figures[figures["table"].map(lambda t, group=group: t == group)]
        sections.append(_section(f"t-{stem}", title, s_group, t_group, g_figures, pngs, res))
        nav.append((f"t-{stem}", title.split(" (")[0]))
    comparison = _Comparison(figures, capability_frame(summary), list(figures.attrs.get("apart", [])))
    body = "\n".join([_intro(summary), *sections, _capabilities(comparison), _runs(summary), _not_drawn(res.skipped)])
    nav += [("capabilities", "capabilities"), ("runs", "runs"), ("not-drawn", "not drawn")]
    write_text(res.html, htmlpage.page(_title(summary), _facts(summary), nav, body))
    return res


def _draw_pngs(res: ReportResult, s_group: pd.DataFrame, t_group: pd.DataFrame, workload: str, title: str,
               stem: str) -> list[tuple[str, Path]]:
    """The PNG pictures of one table (for papers and the nightly summary); what cannot be drawn is skipped."""
    kind = set(s_group["workload_kind"].dropna())
    drawers: list[tuple[str, str, Callable[[pd.DataFrame, str, str], plots.Picture], bool]] = [
        ("recall-qps", "Recall vs QPS", plots.recall_qps, False),
        ("latency", "Latency percentiles", plots.latency_distribution, True),
        ("ycsb-ops", "Per operation kind", plots.ycsb_operations, False),
        ("concurrency", "QPS vs concurrency", plots.qps_vs_concurrency, False),
    ]
    out = []
    for slug, name, draw, uses_trials in drawers:
        if slug == "recall-qps" and kind == {"ycsb"}:
            res.skipped.append(f"{title}: recall vs QPS is for ANN workloads; this one is YCSB")
            continue
        if slug == "ycsb-ops" and "ycsb" not in kind:
            continue  # an ANN workload has one operation: nothing to say about it
        pic = draw(t_group if uses_trials else s_group, workload, title)
        if pic.figure is None:
            res.skipped.append(pic.skipped or f"{title}: {name} not drawn")
            continue
        path = res.out_dir / f"{slug}-{stem}.png"
        _save(pic, path)
        res.pictures.append(path)
        out.append((name, path))
    return out


def _chart(fig) -> str:
    return "<div class='chart'>" + fig.to_html(full_html=False, include_plotlyjs=False,
                                               config={"displaylogo": False, "responsive": True}) + "</div>"


def _section(anchor: str, title: str, s_group: pd.DataFrame, t_group: pd.DataFrame, g_figures: pd.DataFrame,
             pngs: list[tuple[str, Path]], res: ReportResult) -> str:
    """One workload on one dataset: its interactive charts, its table, links to its PNGs."""
    kind = set(s_group["workload_kind"].dropna())
    parts = [f"<h2 id='{html.escape(anchor)}'>{html.escape(title)} ({html.escape(', '.join(sorted(kind)) or '?')})</h2>"]
    drawn: list[tuple[str, object]] = []
    if kind != {"ycsb"}:
        drawn.append(("recall-qps", charts.recall_qps(s_group, title)))
    latency, left_out = charts.latency_panels(t_group, title)
    drawn.append(("latency", latency))
    if "ycsb" in kind:
        drawn.append(("ycsb-ops", charts.ycsb_bars(s_group, title)))
    drawn.append(("concurrency", charts.concurrency_lines(s_group, title)))
    for slug, fig in drawn:
        if isinstance(fig, str):  # the PNG drawers, on the same conditions, have said why
            continue
        parts.append(_chart(fig) + f"<p class='note'>{html.escape(CAPTIONS[slug])}</p>")
    if left_out:
        parts.append(f"<p class='note'>Left out of the crowded percentile panels (at most {charts.MAX_PER_PANEL} "
                     f"series each; every one is in the table): {html.escape(', '.join(left_out))}.</p>")
    heads, rows = display_rows(g_figures)
    parts.append(htmlpage.table(heads[1:], [r[1:] for r in rows]))
    notes = _notes(g_figures)
    if notes:
        parts.append("<ul class='notes'>" + "".join(f"<li>{html.escape(t)}</li>" for t in notes) + "</ul>")
    if pngs:
        parts.append("<p class='note'>For papers: " + ", ".join(
            f"<a href='{html.escape(p.name)}'>{html.escape(name)} (PNG)</a>" for name, p in pngs) + "</p>")
    return "\n".join(parts)


def _same_keys(df: pd.DataFrame, values: dict) -> pd.Series:
    """Rows of `df` whose keys equal `values` (nulls equal nulls)."""
    mask = pd.Series(True, index=df.index)
    for k, v in values.items():
        col = df[k] if k in df else pd.Series([None] * len(df), index=df.index)
        mask &= col.isna() if v is None or (isinstance(v, float) and pd.isna(v)) else (col == v)
    return mask


def _runs(summary: pd.DataFrame) -> str:
    cols = [("run_id", "run"), ("backend", "backend"), ("workload", "workload"), ("dataset_name", "dataset"),
            ("dataset_n", "n"), ("dataset_dim", "dim"), ("backend_client_version", "client"),
            ("backend_server_version", "server"), ("harness_version", "harness"), ("git_commit", "commit"),
            ("host_cpu", "host CPU"), ("host_cores", "cores"), ("started_utc", "started (UTC)"),
            ("run_status", "status")]
    have = [(c, h) for c, h in cols if c in summary]
    runs = summary.drop_duplicates(["run_id", "backend", "workload"])[[c for c, _ in have]]
    rows = []
    for r in runs.itertuples(index=False):
        cells = []
        for (col, _), v in zip(have, r, strict=True):
            text = "-" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)
            cells.append(text[:12] if col == "git_commit" else text)
        rows.append(cells)
    return "<h2 id='runs'>Runs</h2>" + htmlpage.table([h for _, h in have], rows)


def _capabilities(c: _Comparison) -> str:
    rows = [[str(v) for v in row] for row in c.capabilities.itertuples(index=False)]
    apart = "".join(f"<p class='note'>{html.escape(a)}.</p>" for a in c.apart)
    return (f"<h2 id='capabilities'>Capabilities</h2>{apart}"
            + htmlpage.table(list(c.capabilities.columns), rows))


def _distinct(summary: pd.DataFrame, col: str) -> list[str]:
    return [str(v) for v in dict.fromkeys(summary[col].dropna())] if col in summary else []


def _title(summary: pd.DataFrame) -> str:
    names = _distinct(summary, "dataset_name")
    return "bench report: " + (", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
                               if names else "results")


def _facts(summary: pd.DataFrame) -> list[tuple[str, str]]:
    """The header: datasets, engines with their versions, hosts, harness versions, when."""
    engines = []
    for (b, cv, sv), _ in summary.groupby(["backend", "backend_client_version", "backend_server_version"],
                                          dropna=False, sort=True):
        v = ", ".join(x for x in (f"client {cv}" if isinstance(cv, str) else "", f"server {sv}"
                                  if isinstance(sv, str) else "") if x)
        engines.append(f"{b} ({v})" if v else str(b))
    hosts = sorted({f"{r.get('host_cpu')} x{r.get('host_cores')}, {r.get('host_os')}"
                    for r in summary.drop_duplicates("run_id").to_dict("records")})
    harness = sorted({f"{r.get('harness_version')} ({str(r.get('git_commit') or '?')[:12]})"
                      for r in summary.drop_duplicates("run_id").to_dict("records")})
    started = sorted(str(v) for v in summary["started_utc"].dropna()) if "started_utc" in summary else []
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [("datasets", ", ".join(_distinct(summary, "dataset_name")) or "-"), ("engines", "; ".join(engines)),
            ("hosts", "; ".join(hosts)), ("bench", ", ".join(harness)),
            ("runs", f"{summary['run_id'].nunique()}" + (f", {started[0]} to {started[-1]}" if started else "")),
            ("made", now)]


def _intro(summary: pd.DataFrame) -> str:
    return ("<p class='lead'>Every figure is the trimmed median of the kept trials (the lowest and the highest value "
            "dropped when there are three trials or more), with the spread of the kept trials in small type or as "
            "error bars. Hover a point for its run, dataset, index and figures; click a legend entry to hide or show "
            "a series; drag to zoom, double-click to zoom out. Click a table heading to sort; type in the box above "
            "a table to filter its rows.</p>")


def _not_drawn(skipped: list[str]) -> str:
    if not skipped:
        return "<h2 id='not-drawn'>Not drawn</h2><p class='note'>Nothing: the data supported every chart.</p>"
    items = "".join(f"<li>{html.escape(s)}</li>" for s in dict.fromkeys(skipped))
    return (f"<h2 id='not-drawn'>Not drawn</h2><p class='note'>Charts the data does not support (expected for "
            f"what was not measured):</p><ul class='notdrawn'>{items}</ul>")
