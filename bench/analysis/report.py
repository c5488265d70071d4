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

from bench.analysis import plots, sidebyside, tenant_plot
from bench.analysis.compare import DATA_KEYS, capability_frame, dataset_title, figures_frame, render
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
    "tenants": "Multi-tenancy: QPS, P99 and recall (against the exact top-k within the searched tenant) against "
               "the number of tenants the data was dealt to, each engine's native multi-tenancy; one line per run "
               "and configuration, gaps where too few samples support a P99.",
}


def _save(pic: plots.Picture, path: Path) -> None:
    import matplotlib.pyplot as plt

    assert pic.figure is not None
    tmp = path.with_name(f".{path.name}.tmp.png")
    pic.figure.savefig(tmp, dpi=100)
    plt.close(pic.figure)
    tmp.replace(path)


def build(paths: Sequence[str | Path], out_dir: Path) -> ReportResult:
    """Draw every picture the results support into out_dir and write out_dir/index.html."""
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
    sections: list[str] = []
    drawers: list[tuple[str, str, Callable[[pd.DataFrame, str], plots.Picture], pd.DataFrame]] = [
        ("recall-qps", "Recall vs QPS", plots.recall_qps, summary),
        ("latency", "Latency percentiles", plots.latency_distribution, trials),
        ("ycsb-ops", "Per operation kind", plots.ycsb_operations, summary),
        ("concurrency", "QPS vs concurrency", plots.qps_vs_concurrency, summary),
        ("tenants", "QPS, P99 and recall vs tenants", tenant_plot.against_tenants, summary),
    ]
    seen: dict[str, int] = {}
    summary = summary.assign(table=sidebyside.place(summary)[0])  # imported rows beside the bench run they match
    for group, s_group in summary.groupby("table", sort=True, dropna=False):
        workload = group[0]
        n = seen[workload] = seen.get(workload, -1) + 1  # a second dataset of one workload: files get -1, -2, ...
        own = s_group[~sidebyside.imported(s_group)]
        title = dataset_title((own if len(own) else s_group).iloc[0].to_dict())
        others = s_group.loc[sidebyside.imported(s_group), "run_id"].unique()
        t_group = trials[_same_keys(trials, dict(zip(["workload", *DATA_KEYS], group, strict=True)))
                         | trials["run_id"].isin(others)]
        kind = set(s_group["workload_kind"].dropna())
        parts = [f"<h2>workload {html.escape(title)} ({html.escape(', '.join(sorted(kind)) or '?')})</h2>"]
        for slug, name, draw, frame in drawers:
            if slug == "recall-qps" and kind == {"ycsb"}:
                res.skipped.append(f"{workload}: recall vs QPS is for ANN workloads; this one is YCSB")
                continue
            if slug == "tenants" and ("tenants" not in s_group or s_group["tenants"].isna().all()):
                continue  # not a multi-tenant workload: nothing to say
            if slug == "ycsb-ops" and "ycsb" not in kind:
                res.skipped.append(f"{workload}: per-operation pictures are for YCSB workloads; this one only searches")
                continue
            pic = draw(t_group if frame is trials else s_group, workload, title)
            if pic.figure is None:
                res.skipped.append(pic.skipped or f"{title}: {name} not drawn")
                continue
            path = out_dir / (f"{slug}-{_slug(str(workload))}" + (f"-{n}" if n else "") + ".png")
            _save(pic, path)
            res.pictures.append(path)
            parts.append(f"<figure><img src='{html.escape(path.name)}' alt='{html.escape(name)}'>"
                         f"<figcaption><b>{html.escape(name)}.</b> {html.escape(CAPTIONS[slug])}</figcaption></figure>")
        sections.append("\n".join(parts))
    figures = figures_frame(summary)
    comparison = _Comparison(figures, capability_frame(summary), list(figures.attrs.get("apart", [])))
    page = _page(summary, render(comparison, "html"), sections, res.skipped)
    write_text(res.html, page)
    return res


def _same_keys(df: pd.DataFrame, values: dict) -> pd.Series:
    """Rows of `df` whose keys equal `values` (nulls equal nulls)."""
    mask = pd.Series(True, index=df.index)
    for k, v in values.items():
        col = df[k] if k in df else pd.Series([None] * len(df), index=df.index)
        mask &= col.isna() if v is None or (isinstance(v, float) and pd.isna(v)) else (col == v)
    return mask


def _runs_table(summary: pd.DataFrame) -> str:
    cols = [("run_id", "run"), ("backend", "backend"), ("workload", "workload"), ("dataset_name", "dataset"),
            ("dataset_n", "n"), ("dataset_dim", "dim"), ("backend_client_version", "client"),
            ("backend_server_version", "server"), ("harness_version", "harness"), ("git_commit", "commit"),
            ("host_cpu", "host CPU"), ("host_cores", "cores"), ("started_utc", "started (UTC)"),
            ("run_status", "status")]
    have = [(c, h) for c, h in cols if c in summary]
    runs = summary.drop_duplicates(["run_id", "backend", "workload"])[[c for c, _ in have]]
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h in have)
    body = []
    for r in runs.itertuples(index=False):
        cells = []
        for (col, _), v in zip(have, r, strict=True):
            text = "-" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)
            cells.append(f"<td>{html.escape(text[:12] if col == 'git_commit' else text[:40])}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; max-width: 1400px; color: #222; }
table { border-collapse: collapse; font-size: 0.82em; margin: 0.5em 0 1.2em; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
td { white-space: nowrap; }
.bench-compare td:last-child { white-space: normal; text-align: left; min-width: 18em; }
figure { display: inline-block; margin: 0.5em 1em 1.5em 0; max-width: 1200px; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; max-width: 800px; }
.skipped li { color: #7a4b00; }
"""


def _page(summary: pd.DataFrame, compare_html: str, sections: list[str], skipped: list[str]) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    skipped_html = ("<ul class='skipped'>" + "".join(f"<li>{html.escape(s)}</li>" for s in skipped) + "</ul>"
                    if skipped else "<p>Nothing was skipped: the data supported every picture.</p>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bench report</title><style>{STYLE}</style></head>
<body>
<h1>bench report</h1>
<p>Made {now} from {summary['run_id'].nunique()} run(s). Every figure is the trimmed median of the kept trials
(the lowest and the highest value dropped when there are three trials or more); brackets and error bars show the spread of the kept trials.</p>
<h2>Runs</h2>
{_runs_table(summary)}
<h2>Figures</h2>
{compare_html}
{''.join(sections)}
<h2>Not drawn</h2>
{skipped_html}
</body></html>
"""
