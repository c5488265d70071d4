"""`bench compare`: summary figures across backends and runs, grouped by workload, with the spread of the kept
trials, plus a capability matrix. Builds numeric pandas frames; `render` turns them into text."""

from __future__ import annotations

import html
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from bench import scenarios
from bench.analysis import cost, htmlpage, sidebyside, verdict
from bench.analysis.load import summary_frame
from bench.errors import UserError
from bench.results import figures as scenario_figures
from bench.results import keys
from bench.results.schema import DEFINITIONS

Format = Literal["table", "markdown", "csv", "html", "json"]
FORMATS: tuple[str, ...] = ("table", "markdown", "csv", "html", "json")

# (summary column, heading, number format, has a spread)
FIGURE_COLUMNS: list[tuple[str, str, str, bool]] = [
    ("qps", "QPS", ",.0f", True),
    ("p50_us", "P50 us", ",.0f", True),
    ("p99_us", "P99 us", ",.0f", True),
    ("p999_us", "P99.9 us", ",.0f", True),
    ("recall", "recall", ".4f", True),
    ("searchable_s", "searchable s", ",.2f", False),
    ("load_s", "load s", ",.2f", False),
    ("build_s", "build s", ",.2f", False),
    ("server_rss_peak_bytes", "peak RSS MiB", ",.1f", True),
    ("index_size_bytes", "index MiB", ",.1f", False),
    ("client_rss_growth_bytes", "RSS growth MiB", ",.1f", False),
]
# quality beyond recall@k (bench.metrics.quality): shown where a row has them
QUALITY_COLUMNS: list[tuple[str, str]] = [("recall_at_1", "R@1"), ("recall_at_10", "R@10"),
                                          ("recall_at_100", "R@100"), ("ndcg", "NDCG@k"), ("distance_ratio", "rel")]
MEMORY_COLUMNS = {"server_rss_peak_bytes", "index_size_bytes", "client_rss_growth_bytes"}  # bytes, shown in MiB
DATA_KEYS = keys.names("data")  # one table per workload and dataset: rows of two datasets never share one
CONFIG_KEYS = [k for k in keys.names("variant") if k != "ef_search"]  # the `config` column
CAPABILITIES = ["filters", "hybrid", "quantization", "multi_vector", "replication", "sharding", "tenants"]
MIB = 1024 * 1024


# `bench import`: another tool's figures, in their own columns (see bench.importers); shown where such rows are
TOOL_COLUMNS: list[tuple[str, str, str]] = [
    ("source_qps", "tool QPS", ",.0f"),
    ("source_headline_qps", "tool headline QPS", ",.0f"),
    ("source_p99_us", "tool P99 us", ",.0f"),
]


@dataclass
class Comparison:
    figures: pd.DataFrame  # one row per (workload, backend, run, op, parameters): numeric, with _lo/_hi
    capabilities: pd.DataFrame  # one row per backend
    apart: list[str] = field(default_factory=list)  # why imported rows are not beside bench's (one sentence each)
    verdicts: list[verdict.Verdict] = field(default_factory=list)  # the answer first (bench.analysis.verdict)


def _substitutions(text: object) -> list[str]:
    if not isinstance(text, str) or not text:
        return []
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return [text]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def figures_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """The compare table as numbers: id columns, each figure with `_lo`/`_hi`, trial counts, substitutions."""
    df = summary.copy()
    lead = ["workload", "backend", "run_id", "op"]
    id_columns = lead + [k for k in keys.names() if k not in lead]
    for col in id_columns:
        if col not in df:
            df[col] = None
    cols = list(id_columns)
    for name, _, _, spread in FIGURE_COLUMNS:
        for suffix in (("", "_lo", "_hi") if spread else ("",)):
            c = name + suffix
            if c not in df:
                df[c] = float("nan")
            cols.append(c)
    for c in [q for q, _ in QUALITY_COLUMNS] + ["price_per_hour"]:
        if c not in df:
            df[c] = float("nan")
        cols.append(c)
    df["currency"] = df["currency"] if "currency" in df else None
    priced = [cost.figures(r) for r in df.to_dict("records")]
    df["queries_per_unit"] = [p[0] for p in priced]
    df["cost_per_million_queries"] = [p[1] for p in priced]
    cols += ["currency", "queries_per_unit", "cost_per_million_queries"]
    for c in ("n_kept", "n_ok", "n_trials", "outliers", "busy_trials", "suspect_trials", "run_status"):
        if c not in df:
            df[c] = None
    for f in scenario_figures.columns():  # the scenarios' own figures: shown only where some row has them
        if f.name not in df:
            df[f.name] = None
        cols.append(f.name)
    for c, _, _ in TOOL_COLUMNS:  # imported rows: the other tool's own figures
        if c not in df:
            df[c] = float("nan")
        cols.append(c)
    df["figure_definition"] = df["figure_definition"] if "figure_definition" in df else None
    df["table"], apart = sidebyside.place(df)
    df.attrs["apart"] = apart
    cols += ["figure_definition", "table"]
    df["substituted"] = df.get("index_substitutions", pd.Series([None] * len(df))).map(
        lambda s: "; ".join(_substitutions(s)))
    df["dataset"] = df.get("dataset_name", pd.Series([None] * len(df)))
    cols += ["n_kept", "n_ok", "n_trials", "outliers", "busy_trials", "suspect_trials", "run_status", "dataset",
             "substituted"]
    order = ["workload", *DATA_KEYS, "op", "backend", *keys.names("index"), "run_id", *CONFIG_KEYS, "ef_search",
             "concurrency", "target_rate"]
    out = df[cols].sort_values(order, na_position="first", kind="stable")
    out.attrs["apart"] = apart
    return out.reset_index(drop=True)


def capability_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per backend: which of filters, hybrid, quantization, replication, sharding it supports."""
    rows = []
    for backend, g in summary.groupby("backend", sort=True):
        caps: dict = {}
        for text in g.get("capabilities", pd.Series(dtype=object)).dropna():
            try:
                caps = json.loads(text)
                break
            except (TypeError, json.JSONDecodeError):
                continue
        row: dict[str, object] = {"backend": backend}
        for c in CAPABILITIES:
            v = caps.get(c)
            if isinstance(v, list | tuple):
                row[c] = ", ".join(v) if v else "no"
            elif v is None:
                row[c] = "?"
            else:
                row[c] = "yes" if v else "no"
        rows.append(row)
    return pd.DataFrame(rows, columns=["backend", *CAPABILITIES])


def compare(paths: Sequence[str | Path] | None = None, levels: Sequence[float] = verdict.LEVELS) -> Comparison:
    """Read every summary under paths (default: results/) and build the tables and the verdicts."""
    summary = summary_frame(paths)
    if summary.empty:
        raise UserError("The results hold no summary rows", "check that the runs finished at least one trial")
    figures = figures_frame(summary)
    titles = {t: title for title, g in table_groups(figures) for t in g["table"].unique()}
    return Comparison(figures, capability_frame(summary), list(figures.attrs.get("apart", [])),
                      verdict.verdicts(figures, titles, levels))


# -- rendering --------------------------------------------------------------------------------------------

def _present(v: object) -> bool:
    return v is not None and v is not pd.NA and not (isinstance(v, float) and math.isnan(v)) and v != ""


def _num(v: object, spec: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return "-"
    if spec == "d" and isinstance(v, float):  # a whole-number column that pandas widened to float beside nulls
        v = int(v)
    return format(v, spec)


def _scale(name: str, v: object) -> object:
    if name in MEMORY_COLUMNS and isinstance(v, int | float) and not math.isnan(v):
        return v / MIB
    return v


def substitution_notes(figures: pd.DataFrame) -> list[str]:
    """The distinct 'built other than asked' texts, in order of first appearance (note 1, 2, ...)."""
    return list(dict.fromkeys(t for t in figures["substituted"] if t))


def config_label(r: dict) -> str:
    """The scenario axes of a row besides ef_search ("filter sel_10=1", "vector=image", "weighted a=0.25"), or ""
    for plain search: every variant key of bench.results.keys, scenario-registered ones too."""
    return keys.label(r, CONFIG_KEYS)


def index_label(r: dict) -> str:
    """The index as built: kind, M and ef_construction where the engine has them ("hnsw M=64 efc=200")."""
    return keys.label(r, ["index_kind", "index_m", "index_ef_construction"]) or "-"


def dataset_title(r: dict) -> str:
    """What a table or picture measured: "ann-smoke on synthetic (n=10,000, dim=768, data#1a2b3c4d)"."""
    head = keys.label(r, ["dataset_name"]) or "unknown dataset"
    rest = keys.label(r, ["dataset_n", "dataset_dim", "dataset_hash"]).replace(" ", ", ")
    return f"{r.get('workload')} on {head}" + (f" ({rest})" if rest else "")


def display_rows(figures: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Headings and text cells: each figure as `median [lo-hi]`; substituted rows marked with `*` and the
    number of their note (`substitution_notes`)."""
    notes = {t: i + 1 for i, t in enumerate(substitution_notes(figures))}
    defs = {t: i + 1 for i, t in enumerate(definition_notes(figures))}
    with_config = any(config_label(r) for r in figures.to_dict("records"))
    with_tool = bool(defs) or bool(sidebyside.imported(figures).any())
    case_cols = figure_columns(figures)
    quality = [(c, h) for c, h in QUALITY_COLUMNS if figures[c].notna().any()]
    cur = cost.currencies(figures.to_dict("records"))
    heads = (["workload", "backend"] + (["tool"] if with_tool else []) + ["run", "op", "index", "quant", "ef"]
             + (["config"] if with_config else []) + ["k", "conc", "rate"] + [h for _, h, _, _ in FIGURE_COLUMNS]
             + [h for _, h in quality] + (cost.headings(cur) if cur else []) + [f.heading or f.name for f in case_cols]
             + ([h for _, h, _ in TOOL_COLUMNS] + ["measured as"] if with_tool else []))
    heads += ["trials", "built"]
    rows = []
    for r in figures.to_dict("records"):
        status = r.get("run_status")
        run = str(r["run_id"]) + (f" ({status})" if isinstance(status, str) and status != "complete" else "")
        tool = [str(sidebyside.tool_of(r.get("source_tool")))] if with_tool else []
        cells = [str(r["workload"]), str(r["backend"]) + (" *" if r["substituted"] else ""), *tool, run,
                 str(r["op"]), index_label(r), quantization_label(r.get("quantization"), r.get("rescore")),
                 _num(r["ef_search"], "d") if r["ef_search"] is not None else "-",
                 *([config_label(r) or "-"] if with_config else []),
                 _num(r["k"], "d") if r["k"] is not None else "-",
                 _num(r["concurrency"], "d") if r["concurrency"] is not None else "-",
                 _num(r["target_rate"], ",.0f")]
        for name, _, spec, spread in FIGURE_COLUMNS:
            med = _num(_scale(name, r[name]), spec)
            if spread and med != "-":
                lo, hi = _num(_scale(name, r[name + "_lo"]), spec), _num(_scale(name, r[name + "_hi"]), spec)
                med = f"{med} [{lo}-{hi}]" if lo != hi else med
            cells.append(med)
        cells += [_num(r.get(c), ".4f") for c, _ in quality]
        cells += cost.cells(r, cur) if cur else []
        cells += figure_cells(r, case_cols)
        if with_tool:
            cells += [_num(r.get(c), spec) for c, _, spec in TOOL_COLUMNS]
            d = r.get("figure_definition")
            cells.append(f"definition {defs[d]}" if isinstance(d, str) and d in defs else "bench")
        marks = ((" !" if _present(r.get("outliers")) else "") + (" busy" if (r.get("busy_trials") or 0) > 0 else "")
                 + (" ?" if (r.get("suspect_trials") or 0) > 0 else ""))
        cells.append((f"{_num(r['n_kept'], 'd')}/{_num(r['n_ok'], 'd')}/{_num(r['n_trials'], 'd')}"
                      if r["n_trials"] is not None else "-") + marks)
        cells.append(f"other than asked, note {notes[r['substituted']]}" if r["substituted"] else "as asked")
        rows.append([c if isinstance(c, str) else str(c) for c in cells])
    return heads, rows


def figure_columns(frame: pd.DataFrame) -> list[scenario_figures.Figure]:
    """The scenarios' figures that some row of the table has: each is a column there."""
    return [f for f in scenario_figures.columns() if f.name in frame and any(_present(v) for v in frame[f.name])]


def figure_cells(r: dict, cols: list[scenario_figures.Figure]) -> list[str]:
    out = []
    for f in cols:
        v = r.get(f.name)
        out.append("-" if not _present(v) else str(v) if f.fmt == "s" else format(float(v) / f.scale, f.fmt))  # type: ignore[arg-type]
    return out


def definition_notes(figures: pd.DataFrame) -> list[str]:
    """The distinct definitions of imported rows' figures (how the other tool measured them), numbered in order."""
    col = figures["figure_definition"] if "figure_definition" in figures else []
    return list(dict.fromkeys(t for t in col if isinstance(t, str) and t))


def _notes(g: pd.DataFrame) -> list[str]:
    """The numbered notes under one table: indexes built other than asked, how imported figures were measured."""
    out = [f"{i}. built other than asked: {t}" for i, t in enumerate(substitution_notes(g), 1)]
    out += [f"definition {i}: {t}" for i, t in enumerate(definition_notes(g), 1)]
    for cls in scenarios.every():  # what a scenario says under a table of its rows (streaming: the knee)
        out += cls.table_notes(g)
    return out + cost.note(cost.currencies(g.to_dict("records")))


def table_groups(figures: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(title, rows) per table: bench's rows by workload and dataset, imported rows beside the bench run that
    measured the same dataset, k, metric and index (`bench.analysis.sidebyside`), else in a table of their own."""
    out = []
    for _, g in figures.groupby("table", sort=True, dropna=False):
        own = g[~sidebyside.imported(g)]
        out.append((dataset_title((own if len(own) else g).iloc[0].to_dict()), g))
    return out


def quantization_label(quant: object, rescore: object) -> str:
    """'none', or the quantization with '+rescore' when candidates were rescored on the original vectors."""
    if not isinstance(quant, str) or not quant:
        return "none"
    return f"{quant}+rescore" if rescore is True or rescore == 1 else quant


def _int_safe(figures: pd.DataFrame) -> pd.DataFrame:
    df = figures.copy()
    for c in [k.name for k in keys.all_keys() if k.type == "int64"] + ["n_kept", "n_ok", "n_trials"]:
        df[c] = df[c].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v))
    return df


def markdown_table(heads: list[str], rows: list[list[str]]) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(h) for h in heads) + " |", "|" + "|".join("---" for _ in heads) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# What each column means, for the legend under a table: only the columns shown get a line.
LEGEND: dict[str, str] = {
    "QPS": DEFINITIONS["qps"] + "; " + DEFINITIONS["spread"],
    "P50 us": DEFINITIONS["latency"], "P99 us": DEFINITIONS["latency"], "P99.9 us": DEFINITIONS["latency"],
    "recall": DEFINITIONS["recall"],
    "searchable s": "searchable s = load + build, the comparable time until an engine answers (engines that build "
                    "while loading show build 0)",
    "peak RSS MiB": "peak RSS = the server's resident memory at its peak (trimmed median)",
    "trials": "trials = kept/ok/total; ! = a trial worse than the others beyond their noise (see outliers); busy = "
              "measured while other processes used the CPU; ? = the load generator fell behind (suspect)",
    "built": "built = the index as asked, or the numbered note saying what the engine built instead (* on the "
             "backend)",
    "R@1": "R@1/R@10/R@100 = recall at that cutoff from the same searches ('-' where k is smaller)",
    "R@10": "R@1/R@10/R@100 = recall at that cutoff from the same searches ('-' where k is smaller)",
    "NDCG@k": "NDCG@k with binary relevance",
    "rel": "rel = summed distances returned / exact (ann-benchmarks; 1 = exact)",
    "tool QPS": "tool columns: an imported row's own figures, measured as its numbered definition says; bench's "
                "QPS and latency columns stay empty for them",
}
NOTE = ("QPS, recall and memory: " + DEFINITIONS["qps"].split(" = ", 1)[1] + "; " + DEFINITIONS["spread"] + ". "
        + DEFINITIONS["latency"] + ". " + " ".join(t + "." for t in dict.fromkeys(
            v for k, v in LEGEND.items() if k not in ("QPS", "P50 us", "P99 us", "P99.9 us", "recall")))
        + " Priced runs: queries per currency unit and cost of a million queries = price per hour over QPS x 3,600.")


def legend(shown: Sequence[str]) -> list[str]:
    """The legend lines of the columns shown, each definition once (a scenario's column: its figure's legend)."""
    own = {f.heading: f.legend for f in scenario_figures.columns() if f.legend}
    return list(dict.fromkeys(t for h in shown if (t := LEGEND.get(h) or own.get(h))))


def answer_lines(c: Comparison) -> list[str]:
    """The verdicts (bench.analysis.verdict) as text, or one line saying there is nothing to weigh."""
    return verdict.lines(c.verdicts) or ["no bench figures to compare (imported rows carry their tool's own)"]


def render(c: Comparison, fmt: str = "table", width: int | None = None, wide: bool = False,
           verbose: bool = False) -> str:
    """The comparison as text, the answer first: table (rich, for a terminal of `width` columns; `wide` keeps
    every column; `verbose` adds the whole legend and the capability matrix), markdown, csv (numbers, one column
    per value), html or json (objects: one per row, numbers as numbers, plus the verdicts)."""
    if fmt not in FORMATS:
        raise UserError(f"Unknown format '{fmt}'", f"use one of: {', '.join(FORMATS)} (or --out FILE.parquet)")
    figures = _int_safe(c.figures)
    if fmt == "json":
        return as_json(c, figures)
    if fmt == "csv":
        return figures.to_csv(index=False) + "\n" + c.capabilities.to_csv(index=False)
    cap_heads = list(c.capabilities.columns)
    cap_rows = [[str(v) for v in row] for row in c.capabilities.itertuples(index=False)]
    groups = table_groups(figures)
    apart = list(c.apart)
    if fmt == "markdown":
        parts = ["### answer", "", *[f"- {t.strip()}" if t.startswith("  ") else f"**{t}**" for t in answer_lines(c)],
                 ""]
        for w, g in groups:
            heads, rows = display_rows(g)
            parts += [f"### {w}", "", markdown_table(heads[1:], [r[1:] for r in rows]), ""]
            parts += _notes(g) + ([""] if _notes(g) else [])
        parts += [*[f"- {a}." for a in apart], *([""] if apart else [])]
        parts += ["### capabilities", "", markdown_table(cap_heads, cap_rows), "", NOTE, ""]
        return "\n".join(parts)
    if fmt == "html":
        return _html(c, groups, cap_heads, cap_rows, apart)
    return _rich_text(c, groups, cap_heads, cap_rows, width or 100, wide, verbose)


def _html(c: Comparison, groups, cap_heads: list[str], cap_rows: list[list[str]], apart: list[str]) -> str:
    parts = ["<section class='bench-compare'>", "<h3>answer</h3>", "<ul class='verdict'>"]
    parts += [f"<li>{html.escape(t.strip())}</li>" if t.startswith("  ") else f"</ul><p><b>{html.escape(t)}</b></p>"
              "<ul class='verdict'>" for t in answer_lines(c)]
    parts.append("</ul>")
    for w, g in groups:
        heads, rows = display_rows(g)
        parts += [f"<h3>{html.escape(str(w))}</h3>", htmlpage.table(heads[1:], [r[1:] for r in rows])]
        if _notes(g):
            parts.append("<ul class='notes'>" + "".join(f"<li>{html.escape(t)}</li>" for t in _notes(g)) + "</ul>")
    parts += [f"<p class='apart'>{html.escape(a)}.</p>" for a in apart]
    parts += ["<h3>capabilities</h3>", htmlpage.table(cap_heads, cap_rows), f"<p>{html.escape(NOTE)}</p>",
              "</section>"]
    return htmlpage.page("bench compare", [], [], "\n".join(parts), with_charts=False)


def as_json(c: Comparison, figures: pd.DataFrame) -> str:
    """The comparison as one JSON object: rows (numbers as numbers, null where missing), the table each row is
    in, the notes, the capability matrix."""
    rows = json.loads(figures.drop(columns=["table"]).to_json(orient="records"))
    for r, title in zip(rows, _row_titles(figures), strict=True):
        r["table_title"] = title
    return json.dumps({"answer": answer_lines(c), "verdicts": [v.as_dict() for v in c.verdicts],
                       "rows": rows, "capabilities": json.loads(c.capabilities.to_json(orient="records")),
                       "notes": {"substitutions": substitution_notes(figures),
                                 "definitions": definition_notes(figures), "apart": list(c.apart)},
                       "note": NOTE}, indent=2) + "\n"


def _row_titles(figures: pd.DataFrame) -> list[str]:
    title_of = {}
    for title, g in table_groups(figures):
        for i in g.index:
            title_of[i] = title
    return [title_of[i] for i in figures.index]


# How soon a column leaves a terminal table that does not fit (0 = never; higher = earlier); a column that is
# '-' on every row goes first. The quality extras go before P50, index and concurrency; what is left (backend, ef,
# QPS, P99, recall) fits 80 columns.
DROP = {"built": 20, "RSS growth MiB": 19, "index MiB": 18, "peak RSS MiB": 18, "load s": 17, "build s": 17,
        "k": 17, "R@100": 16, "rel": 16, "NDCG@k": 16, "R@10": 15, "R@1": 15, "rate": 14, "tool headline QPS": 13,
        "quant": 12, "trials": 11, "vs dense": 10, "vs bm25": 10, "P99.9 us": 9, "searchable s": 8, "run": 7,
        "measured as": 6, "tool P99 us": 6, "op": 5, "conc": 4, "index": 3, "P50 us": 2, "config": 1}
LEFT = ("backend", "tool", "run", "op", "index", "quant", "config", "built", "measured as")


def _strip_spread(cell: str) -> str:
    """`1,234 [1,200-1,300]` -> `1,234`; other cells as they are."""
    head, sep, rest = cell.partition(" [")
    return head if sep and rest.endswith("]") and "-" in rest else cell


def _fit_group(heads: list[str], rows: list[list[str]], width: int, wide: bool, one_run_each: bool):
    from bench.terminal import Column, fit

    cols = [Column(h, h not in LEFT, DROP.get(h, 0 if h in ("backend", "ef", "QPS", "P99 us", "recall") else 6),
                   wrap=h in ("built", "measured as", "config")) for h in heads]
    if one_run_each:
        cols = [Column(c.head, c.right, 19, c.wrap) if c.head == "run" else c for c in cols]
    t, dropped = fit(None, cols, rows, width, wide)
    if dropped and not wide:  # too wide: the spreads go before any column does
        t2, dropped2 = fit(None, cols, [[_strip_spread(c) for c in r] for r in rows], width, wide)
        if len(dropped2) < len(dropped):
            t, dropped = t2, ["spreads", *dropped2]
    return t, dropped


def _rich_text(c: Comparison, groups, cap_heads: list[str], cap_rows: list[list[str]], width: int, wide: bool,
               verbose: bool) -> str:
    from rich.console import Console

    from bench.terminal import Column, fit

    buf = io.StringIO()
    console = Console(width=10_000 if wide else width, file=buf, color_system=None, highlight=False)
    for line in answer_lines(c):
        console.print(line, overflow="fold", markup=False)
    shown: list[str] = []
    spreads = False  # whether some table kept its [lo-hi] spreads
    for w, g in groups:
        heads, rows = display_rows(g)
        runs = g.groupby("backend")["run_id"].nunique()
        several = {str(b) for b, n in runs.items() if n > 1}
        if several:  # the backend cell of an engine with several runs names its run as the verdict does
            b, run = heads.index("backend"), heads.index("run")
            rows = [[*r[:b], f"{r[b]} (run {r[run].split(' ')[0][-6:]})" if r[b].rstrip(" *") in several else r[b],
                     *r[b + 1:]] for r in rows]
        t, dropped = _fit_group(heads[1:], [r[1:] for r in rows], width, wide, True)
        console.print()
        console.print(f"workload {w}", markup=False)
        console.print(t)
        shown += [h for h in heads[1:] if h not in dropped]
        spreads = spreads or "spreads" not in dropped
        if dropped:
            console.print(f"  left out to fit {width} columns: {', '.join(dropped)} (--wide keeps every column)")
        for text in _notes(g):
            console.print(f"  {text}", markup=False)
    for a in c.apart:
        console.print(f"{a}.", markup=False)
    console.print()
    if verbose:
        t, _ = fit("capabilities", [Column(h, wrap=True) for h in cap_heads], cap_rows, width, wide)
        console.print(t)
        console.print(NOTE, markup=False)
    else:
        for line in legend(shown):
            if not spreads:
                line = line.replace("; " + DEFINITIONS["spread"], "")
            console.print(line, markup=False)
        console.print("(-v: every definition and the capability matrix)")
    return buf.getvalue()
