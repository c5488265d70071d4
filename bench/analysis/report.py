"""`bench report RESULTS... --out DIR`: PNG pictures and one HTML page (index.html) from result folders.

Only what the data supports is drawn; the page says what was skipped and why.
"""

from __future__ import annotations

import functools
import html
import importlib
import numbers
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from bench import scenarios
from bench.analysis import charts, fault_timeline, htmlpage, outdir, plots, sidebyside, verdict
from bench.analysis.compare import (
    DATA_KEYS,
    _notes,
    answer_lines,
    capability_frame,
    dataset_title,
    display_rows,
    figures_frame,
    table_groups,
)
from bench.analysis.compare import Comparison as _Comparison
from bench.analysis.load import summary_frame, trials_frame
from bench.errors import UserError
from bench.scenarios.base import CORE_CHARTS, Chart


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
                  "ef_search setting at the trimmed median QPS of the kept trials; its error bar runs from the "
                  "lowest to the highest QPS of the ok trials. The line joins the Pareto frontier, pale points are "
                  "dominated. Up and to the right is better. Crosses are rows another tool measured (bench import), "
                  "at that tool's own QPS: see their definitions in the table above.",
    "latency": "Latency by percentile (HdrHistogram style) from the HDR histograms of every ok trial merged; "
               "the x axis is 1/(1-percentile) on a log scale, so the tail gets room. Lower is better.",
    "concurrency": "Throughput and P99 latency against the number of workers, closed loop.",
}


def _core(s_group: pd.DataFrame) -> set[str]:
    """The report's own pictures that fit every kind in the table (a kind scenario's `core_charts`)."""
    kinds = scenarios.kinds()
    out = set(CORE_CHARTS)
    for k in set(s_group["workload_kind"].dropna()):
        out &= set(getattr(kinds[k], "core_charts", CORE_CHARTS)) if k in kinds else set(CORE_CHARTS)
    return out


def _own_charts(s_group: pd.DataFrame) -> list[Chart]:
    """The pictures the scenarios whose rows these are declare (bench.scenarios.base.Chart)."""
    return [c for cls in scenarios.every() if cls.owns(s_group) for c in cls.charts]


def _drawer(ref: str) -> Callable:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def _save(pic: plots.Picture, path: Path) -> None:
    import matplotlib.pyplot as plt

    assert pic.figure is not None
    try:
        pic.figure.savefig(path, dpi=100)
    finally:
        plt.close(pic.figure)


def _stems(groups: list[tuple]) -> list[str]:
    """A file-name stem per table that says what it drew: workload and dataset name, then the dataset's size or
    content hash where two tables would share a name (`ann-smoke-wordnet-mpnet-768-n4000`)."""
    keyed = [dict(zip(["workload", *DATA_KEYS], g, strict=True)) for g in groups]

    def stem(k: dict, extra: list[str]) -> str:
        parts = [k["workload"], k.get("dataset_name") or "data"]
        for e in extra:
            v = k.get(e)
            if v is not None and not (isinstance(v, float) and pd.isna(v)):
                parts.append({"dataset_n": "n", "dataset_dim": "d"}.get(e, "") + str(v)[:8])
        return _slug("-".join(str(x) for x in parts))

    out = [stem(k, []) for k in keyed]
    for extra in (["dataset_n"], ["dataset_n", "dataset_dim"], ["dataset_n", "dataset_dim", "dataset_hash"]):
        clash = {s for s in out if out.count(s) > 1}
        out = [stem(k, extra) if s in clash else s for k, s in zip(keyed, out, strict=True)]
    seen: dict[str, int] = {}
    for i, s in enumerate(out):  # still alike: number them
        seen[s] = seen.get(s, 0) + 1
        out[i] = s if seen[s] == 1 else f"{s}-{seen[s]}"
    return out


def build(paths: Sequence[str | Path], out_dir: Path, levels: Sequence[float] = verdict.LEVELS) -> ReportResult:
    """Draw every picture the results support (PNGs) and write index.html, one self-contained interactive page,
    into a staging folder beside out_dir, then put them in place of out_dir's own files (outdir)."""
    if not paths:
        raise UserError("bench report needs at least one results folder or file", "e.g. bench report results/RUN_ID")
    faults = fault_timeline.runs(paths)  # bench fault runs: a timeline each, no summary rows
    plain = [p for p in paths if not fault_timeline.fault_only(p)]
    summary = summary_frame(plain) if plain else pd.DataFrame()
    trials = trials_frame(plain) if plain else pd.DataFrame()
    if summary.empty and not faults:
        raise UserError("The results hold no summary rows", "check that the runs finished at least one trial")
    staging = outdir.stage(out_dir)
    try:
        res = _build(summary, trials, out_dir, staging, levels) if not summary.empty else \
            ReportResult(out_dir, out_dir / outdir.INDEX)
        if faults:
            _fault_page(res, staging, faults, summary)
    except BaseException:
        staging.discard()
        raise
    staging.install([p.name for p in [*res.pictures, res.html]])
    return res


def _build(summary: pd.DataFrame, trials: pd.DataFrame, out_dir: Path, staging: outdir.Staging,
           levels: Sequence[float] = verdict.LEVELS) -> ReportResult:
    res = ReportResult(out_dir, out_dir / outdir.INDEX)
    summary = summary.assign(table=sidebyside.place(summary)[0])  # imported rows beside the bench run they match
    figures = figures_frame(summary)
    sections, nav = [], []
    tables = list(summary.groupby("table", sort=True, dropna=False))
    for (group, s_group), stem in zip(tables, _stems([g for g, _ in tables]), strict=True):
        workload = group[0]
        own = s_group[~sidebyside.imported(s_group)]
        title = dataset_title((own if len(own) else s_group).iloc[0].to_dict())
        others = s_group.loc[sidebyside.imported(s_group), "run_id"].unique()
        t_group = trials[_same_keys(trials, dict(zip(["workload", *DATA_KEYS], group, strict=True)))
                         | trials["run_id"].isin(others)]
        pngs = _draw_pngs(res, staging, s_group, t_group, workload, title, stem)
        g_figures = figures[figures["table"].map(lambda t, group=group: t == group)]
        sections.append(_section(f"t-{stem}", title, s_group, t_group, g_figures, pngs, res))
        nav.append((f"t-{stem}", title.split(" (")[0]))
    titles = {t: title for title, g in table_groups(figures) for t in g["table"].unique()}
    comparison = _Comparison(figures, capability_frame(summary), list(figures.attrs.get("apart", [])),
                             verdict.verdicts(figures, titles, levels))
    body = "\n".join([_intro(summary), _answer(comparison), *sections, _capabilities(comparison), _runs(summary),
                      _not_drawn(res.skipped)])
    nav += [("capabilities", "capabilities"), ("runs", "runs"), ("not-drawn", "not drawn")]
    text = htmlpage.page(_title(summary), _facts(summary), nav, body,
                         head=outdir.manifest_tag([p.name for p in res.pictures]))
    def write_index(p: Path) -> None:
        p.write_text(text, encoding="utf-8")

    staging.write(outdir.INDEX, write_index)
    return res


def _draw_pngs(res: ReportResult, staging: outdir.Staging, s_group: pd.DataFrame, t_group: pd.DataFrame,
               workload: str, title: str, stem: str) -> list[tuple[str, Path]]:
    """The PNG pictures of one table (for papers and the nightly summary); what the data cannot support is
    skipped, with a sentence saying why."""
    core = _core(s_group)
    drawers: list[tuple[str, str, Callable[[pd.DataFrame, str, str], plots.Picture], bool]] = [
        d for d in [("recall-qps", "Recall vs QPS", plots.recall_qps, False),
                    ("latency", "Latency percentiles", plots.latency_distribution, True),
                    ("concurrency", "QPS vs concurrency", plots.qps_vs_concurrency, False)] if d[0] in core]
    drawers += [(c.slug, c.name, _drawer(c.png), c.uses_trials) for c in _own_charts(s_group) if c.png]
    out = []
    for slug, name, draw, uses_trials in drawers:
        pic = draw(t_group if uses_trials else s_group, workload, title)
        if pic.figure is None:
            res.skipped.append(pic.skipped or f"{title}: {name} is not drawn.")
            continue
        path = staging.write(f"{slug}-{stem}.png", functools.partial(_save, pic))
        res.pictures.append(path)
        out.append((name, path))
    return out


def summary_lines(res: ReportResult, verbose: bool = False) -> list[str]:
    """What `bench report` prints: where the page is, how many pictures, one line for the charts skipped (each
    one, with why, under -v)."""
    out = [f"drew {p}" for p in res.pictures] if verbose else []
    skipped = list(dict.fromkeys(res.skipped))
    if skipped and verbose:
        out += [f"skipped: {s}" for s in skipped]
    elif skipped:
        n = len(skipped)
        out.append(f"skipped {n:,} chart{'s' if n > 1 else ''} the data does not support (see 'Not drawn' on the "
                   f"page; -v lists {'them' if n > 1 else 'it'})")
    n = len(res.pictures)
    out.append(f"report: {res.html} ({n:,} PNG picture{'' if n == 1 else 's'} beside it)")
    return out


def _fault_sections(faults: list[Path]) -> list[str]:
    parts = []
    for run in faults:
        parts.append(f"<h2 id='fault-{html.escape(run.name)}'>failover timeline: {html.escape(run.name)}</h2>"
                     f"<p>{html.escape(fault_timeline.summary_line(run))}</p>"
                     + _chart(fault_timeline.figure(run)) + f"<p class='note'>{html.escape(fault_timeline.CAPTION)}</p>")
    return parts


def _fault_page(res: ReportResult, staging: outdir.Staging, faults: list[Path], summary: pd.DataFrame) -> None:
    """Fault runs' timelines: appended to the page _build wrote, or a page of their own."""
    sections = "\n".join(_fault_sections(faults))
    nav = [(f"fault-{r.name}", f"fault {r.name[-6:]}") for r in faults]
    index = staging.path / outdir.INDEX
    if not summary.empty and index.is_file():
        text = index.read_text(encoding="utf-8").replace("</main>", sections + "\n</main>", 1)
    else:
        text = htmlpage.page("bench report: faults", [("runs", ", ".join(r.name for r in faults))], nav, sections,
                             head=outdir.manifest_tag([p.name for p in res.pictures]))

    def write_index(p: Path) -> None:
        p.write_text(text, encoding="utf-8")

    staging.write(outdir.INDEX, write_index)


def _answer(c: _Comparison) -> str:
    """The verdict lines first, as compare prints them (bench.analysis.verdict)."""
    parts = ["<section id='answer'><h2>Answer</h2>"]
    for line in answer_lines(c):
        if line.startswith("  "):
            parts.append(f"<li>{html.escape(line.strip())}</li>")
        else:
            parts.append(("</ul>" if len(parts) > 1 else "") + f"<p><b>{html.escape(line)}</b></p><ul class='verdict'>")
    parts.append("</ul></section>")
    return "\n".join(parts)


def _chart(fig) -> str:
    return "<div class='chart'>" + fig.to_html(full_html=False, include_plotlyjs=False,
                                               config={"displaylogo": False, "responsive": True}) + "</div>"


def _section(anchor: str, title: str, s_group: pd.DataFrame, t_group: pd.DataFrame, g_figures: pd.DataFrame,
             pngs: list[tuple[str, Path]], res: ReportResult) -> str:
    """One workload on one dataset: its interactive charts, its table, links to its PNGs."""
    kind = set(s_group["workload_kind"].dropna())
    parts = [f"<h2 id='{html.escape(anchor)}'>{html.escape(title)} ({html.escape(', '.join(sorted(kind)) or '?')})</h2>"]
    drawn: list[tuple[object, str]] = []
    core = _core(s_group)
    if "recall-qps" in core:
        drawn.append((charts.recall_qps(s_group, title), CAPTIONS["recall-qps"]))
    latency, left_out = charts.latency_panels(t_group, title)
    drawn.append((latency, CAPTIONS["latency"]))
    own = _own_charts(s_group)
    drawn += [(_drawer(c.html)(t_group if c.uses_trials else s_group, title), c.caption) for c in own if c.html]
    if "concurrency" in core:
        drawn.append((charts.concurrency_lines(s_group, title), CAPTIONS["concurrency"]))
    for fig, caption in drawn:
        if isinstance(fig, str):  # the PNG drawers, on the same conditions, have said why
            continue
        parts.append(_chart(fig) + f"<p class='note'>{html.escape(caption)}</p>")
    pictures = {c.slug: c for c in own if c.png and not c.html}  # a scenario's picture with no interactive form
    for name, png in pngs:
        c = next((c for slug, c in pictures.items() if png.name.startswith(f"{slug}-")), None)
        if c is not None:
            parts.append(f"<img src='{html.escape(png.name)}' alt='{html.escape(name)}' style='max-width:100%'>"
                         f"<p class='note'>{html.escape(c.caption)}</p>")
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


def when(v: object) -> str:
    """A timestamp as a reader wants it: `2026-12-08 00:02:12 UTC` (no microseconds, no +00:00)."""
    if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NaT:
        return "-"
    try:
        t = pd.Timestamp(v)
    except (TypeError, ValueError):
        return str(v)
    if t is pd.NaT:
        return "-"
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.strftime("%Y-%m-%d %H:%M:%S UTC")


def _cell(col: str, v: object) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NA:
        return "-"
    if col == "started_utc":
        return when(v)
    if col == "git_commit":
        return str(v)[:12]
    if isinstance(v, numbers.Real) and not isinstance(v, bool) and float(v).is_integer():
        return f"{int(float(v)):,}"
    return str(v)


def _runs(summary: pd.DataFrame) -> str:
    cols = [("run_id", "run"), ("backend", "backend"), ("workload", "workload"), ("dataset_name", "dataset"),
            ("dataset_n", "n"), ("dataset_dim", "dim"), ("backend_client_version", "client"),
            ("backend_server_version", "server"), ("harness_version", "harness"), ("git_commit", "commit"),
            ("host_cpu", "host CPU"), ("host_cores", "cores"), ("started_utc", "started"),
            ("run_status", "status")]
    have = [(c, h) for c, h in cols if c in summary]
    runs = summary.drop_duplicates(["run_id", "backend", "workload"])[[c for c, _ in have]]
    rows = [[_cell(col, v) for (col, _), v in zip(have, r, strict=True)] for r in runs.itertuples(index=False)]
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
    harness = sorted({f"{r.get('harness_version')}" + (f" (git {r['git_commit'][:12]})"
                                                        if isinstance(r.get("git_commit"), str) else " (no git)")
                      for r in summary.drop_duplicates("run_id").to_dict("records")})
    started = sorted(when(v) for v in summary["started_utc"].dropna()) if "started_utc" in summary else []
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [("datasets", ", ".join(_distinct(summary, "dataset_name")) or "-"), ("engines", "; ".join(engines)),
            ("hosts", "; ".join(hosts)), ("bench", ", ".join(harness)),
            ("runs", f"{summary['run_id'].nunique():,}" + (f", started {started[0]}" + (
                f" to {started[-1]}" if started[-1] != started[0] else "") if started else "")),
            ("made", now)]


def _intro(summary: pd.DataFrame) -> str:
    return ("<p class='lead'>Each figure is the one the run's summary holds, as bench compare shows it: QPS and "
            "recall the trimmed median of the kept trials (the lowest and the highest value dropped when there are "
            "three trials or more), latency percentiles from the trials' merged histograms. The range in small type "
            "and the error bars run from the lowest to the highest value of the ok trials. Hover a point for its "
            "run, dataset, index and figures; click a legend entry to hide or show a series; drag to zoom, "
            "double-click to zoom out. Click a table heading to sort; type in the box above a table to filter its "
            "rows.</p>")


def _not_drawn(skipped: list[str]) -> str:
    if not skipped:
        return "<h2 id='not-drawn'>Not drawn</h2><p class='note'>Nothing: the data supported every chart.</p>"
    items = "".join(f"<li>{html.escape(s)}</li>" for s in dict.fromkeys(skipped))
    return (f"<h2 id='not-drawn'>Not drawn</h2><p class='note'>Charts the data does not support, each with why "
            f"(expected for what was not measured):</p><ul class='notdrawn'>{items}</ul>")
