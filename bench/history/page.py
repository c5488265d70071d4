"""`bench history report`: one self-contained HTML page (plotly inline, as `bench report`): the changes of the
last nights at the top, then one small chart per configuration and figure: the nightly values, the trials'
spread as a band, busy nights marked, change points drawn with their commit ranges; hover names the night's
commit, engine versions and host load. Selects above the charts filter by engine, dataset and figure."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from bench.analysis import htmlpage
from bench.history import changes as changes_mod
from bench.history import series as series_mod
from bench.history.rows import FIGURE
from bench.history.store import open_store
from bench.results.writer import write_text

LAYOUT = {"height": 250, "margin": {"l": 55, "r": 10, "t": 36, "b": 30}, "showlegend": False,
          "template": "plotly_white", "hovermode": "closest"}
STYLE = """
.filters { margin: 1em 0; display: flex; gap: 1.5em; flex-wrap: wrap; font-size: 0.9em; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(430px, 1fr)); gap: 0.6em; }
.chart h4 { margin: 0.2em 0.4em; font-size: 0.85em; font-weight: 600; }
.worse { color: #b91c1c; font-weight: 600; } .better { color: #15803d; }
"""
FILTER_JS = """
(function () {
  var sel = document.querySelectorAll('.filters select');
  function apply() {
    var want = {};
    sel.forEach(function (s) { want[s.name] = s.value; });
    var shown = 0;
    document.querySelectorAll('.grid .chart').forEach(function (c) {
      var ok = Object.keys(want).every(function (k) { return !want[k] || c.dataset[k] === want[k]; });
      c.style.display = ok ? '' : 'none';
      if (ok) { shown += 1; }
    });
    document.body.setAttribute('data-charts-shown', shown);
  }
  sel.forEach(function (s) { s.addEventListener('change', apply); });
  apply();
})();
"""


def _hover(n: dict) -> str:
    def v(x: object) -> str:
        return "?" if x is None or (not isinstance(x, str) and pd.isna(x)) else str(x)

    cores = n.get("host_other_cores")
    load = n.get("host_load1")
    return "<br>".join([
        f"{v(n.get('night'))} run {v(n.get('run_id'))}", f"commit {v(n.get('git_commit'))[:12]}",
        f"server {v(n.get('backend_server_version'))}, client {v(n.get('backend_client_version'))}",
        "host: other processes " + ("?" if cores is None or pd.isna(cores) else f"{cores:.2f} cores")
        + ", load " + ("?" if load is None or pd.isna(load) else f"{load:.2f}")
        + (" (BUSY night)" if bool(n.get("busy")) else "")])


def chart(s: series_mod.Series, found: list[changes_mod.Change]) -> go.Figure:
    n = s.nights
    x = pd.to_datetime(n["started_utc"], utc=True, errors="coerce")
    fig = go.Figure()
    if n["lo"].notna().any():
        fig.add_trace(go.Scatter(x=x, y=n["hi"], mode="lines", line={"width": 0}, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=x, y=n["lo"], mode="lines", line={"width": 0}, fill="tonexty",
                                 fillcolor="rgba(37,99,235,0.15)", hoverinfo="skip", name="trials' spread"))
    text = [_hover(r) for r in n.to_dict("records")]
    fig.add_trace(go.Scatter(x=x, y=n["value"], mode="lines+markers", name=FIGURE[s.figure].label, text=text,
                             line={"color": "#2563eb"}, hovertemplate="%{y:,.4g}<br>%{text}<extra></extra>"))
    busy = n["busy"].fillna(False).astype(bool).to_numpy()
    if busy.any():
        fig.add_trace(go.Scatter(x=x[busy], y=n["value"][busy], mode="markers", name="busy night",
                                 marker={"symbol": "x", "size": 10, "color": "#f59e0b"},
                                 text=[t for t, b in zip(text, busy, strict=True) if b],
                                 hovertemplate="busy night<br>%{text}<extra></extra>"))
    for c in found:
        at = x.iloc[c.step.index]
        color = "#b91c1c" if c.worse else "#15803d"
        fig.add_vline(x=at, line={"color": color, "dash": "dash", "width": 1.5})
        fig.add_annotation(x=at, y=1, yref="paper", showarrow=False, xanchor="left", font={"size": 10,
                           "color": color}, text=f"{c.size_text().split(' [')[0]} {c.commits()}")
    unit = FIGURE[s.figure].unit
    fig.update_layout(**LAYOUT, title={"text": f"{FIGURE[s.figure].label}" + (f" ({unit})" if unit else ""),
                                       "font": {"size": 12}})
    return fig


def _sentinel(c: changes_mod.Change) -> str:
    if c.series.sentinel:
        return "is the sentinel: the machine's"
    return {True: "moved too: the machine's", False: "still", None: "none recorded"}[c.sentinel_moved]


def _summary(found: list[changes_mod.Change], last: int) -> str:
    recent = changes_mod.recent(found, last)
    heads = ["night", "verdict", "figure", "change [95%]", "p", "configuration", "nights", "commits",
             "engine versions", "sentinel"]
    rows = [[c.night["night"], "worse" if c.worse else "better", FIGURE[c.series.figure].label, c.size_text(),
             f"{c.step.p:.1g}", c.series.label(), f"{c.previous['run_id']} -> {c.night['run_id']}", c.commits(),
             c.versions(), _sentinel(c)]
            for c in recent]
    text = (f"<h2 id='changes'>Changes in the last {last} nights</h2>"
            + (htmlpage.table(heads, rows) if rows else f"<p class='note'>No change point in the last {last} "
               "nights of any series.</p>"))
    if len(found) > len(recent):
        rest = [c.line() for c in found if c not in recent]
        text += ("<details><summary>" + f"{len(rest)} earlier change(s)</summary><ul class='notes'>"
                 + "".join(f"<li>{html.escape(t)}</li>" for t in rest) + "</ul></details>")
    return text


def _select(name: str, label: str, values: list[str]) -> str:
    opts = "".join(f"<option value='{html.escape(v)}'>{html.escape(v)}</option>" for v in sorted(set(values)))
    return f"<label>{label} <select name='{name}'><option value=''>all</option>{opts}</select></label>"


def _charts(all_series: list[series_mod.Series], found: list[changes_mod.Change]) -> str:
    by_config: dict[str, list[series_mod.Series]] = {}
    for s in all_series:
        by_config.setdefault(s.label(), []).append(s)
    parts = []
    for label in sorted(by_config):
        for s in by_config[label]:
            mine = [c for c in found if c.series is s]
            div = chart(s, mine).to_html(full_html=False, include_plotlyjs=False,
                                         config={"displaylogo": False, "responsive": True})
            parts.append(f"<div class='chart' data-engine='{html.escape(str(s.config.get('backend')))}' "
                         f"data-dataset='{html.escape(str(s.config.get('dataset_name')))}' "
                         f"data-figure='{s.figure}' data-changes='{len(mine)}'><h4>{html.escape(label)}</h4>{div}"
                         "</div>")
    filters = ("<div class='filters'>" + _select("engine", "engine", [str(s.config.get("backend")) for s in all_series])
               + _select("dataset", "dataset", [str(s.config.get("dataset_name")) for s in all_series])
               + _select("figure", "figure", [s.figure for s in all_series]) + "</div>")
    return f"<h2 id='series'>Series</h2>{filters}<div class='grid'>{''.join(parts)}</div>"


def write(store: str, out: Path, last: int = 7) -> Path:
    """Draw the history page into out/index.html."""
    from bench.errors import UserError

    s = open_store(store)
    history = s.read()
    if history.empty:
        raise UserError(f"The history {s.where} is empty", "add runs with `bench history add RUN_DIR...`")
    all_series = series_mod.build(history)
    found = changes_mod.find(all_series)
    body = f"<style>{STYLE}</style>" + _summary(found, last) + _charts(all_series, found) + f"<script>{FILTER_JS}</script>"
    nights = history.drop_duplicates("run_id")
    facts = [("store", s.where), ("nights", f"{len(nights)} ({nights['night'].min()} to {nights['night'].max()})"),
             ("configurations", str(history["series_id"].nunique())), ("change points", str(len(found)))]
    out.mkdir(parents=True, exist_ok=True)
    path = out / "index.html"
    write_text(path, htmlpage.page("bench history", facts, [("changes", "changes"), ("series", "series")], body))
    return path
