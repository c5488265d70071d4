"""One definition per figure: P50, P99, P99.9, QPS and recall of every configuration are the same numbers in
every output that shows them: the run's --json, compare as json, csv, markdown and html, export (parquet and
csv), the report's tables, regress's headline columns and the notebook's data.

One set of real runs: two engines on two datasets (ANN), and two engines on YCSB-A."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from analysis_helpers import bench

FIGS = ("qps", "p50_us", "p99_us", "p999_us", "recall")
SMALL = ["--set", "dataset.queries=40", "--set", "run.min_operations=400", "--set", "run.warmup_s=0.05",
         "--trials", "3", "--quiet", "--json"]
RUNS = [
    ("faiss", "ann-smoke", ["--set", "dataset.n=1000", "--set", "dataset.dim=16", "--set", "search.ef_search=[16,32]"]),
    ("qdrant-edge", "ann-smoke", ["--set", "dataset.n=1000", "--set", "dataset.dim=16",
                                  "--set", "search.ef_search=[16,32]"]),
    ("faiss", "ann-smoke", ["--set", "dataset.source=\"wordnet-mpnet-768\"", "--set", "dataset.n=1000",
                            "--set", "search.ef_search=[16]"]),
    ("qdrant-edge", "ann-smoke", ["--set", "dataset.source=\"wordnet-mpnet-768\"", "--set", "dataset.n=1000",
                                  "--set", "search.ef_search=[16]"]),
    ("qdrant-edge", "ycsb-a", ["--set", "dataset.n=1000", "--set", "dataset.dim=16", "--set", "run.duration_s=0.5"]),
    ("chroma", "ycsb-a", ["--set", "dataset.n=1000", "--set", "dataset.dim=16", "--set", "run.duration_s=0.5"]),
]


@pytest.fixture(scope="module")
def made(tmp_path_factory, cache_dir) -> tuple[Path, dict[tuple, dict]]:
    """The runs under one results/ folder, and each configuration's figures as the run's --json printed them."""
    home = tmp_path_factory.mktemp("one-voice")
    printed: dict[tuple, dict] = {}
    for backend, workload, extra in RUNS:
        p = bench("run", "--backend", backend, "--workload", workload, *SMALL, *extra, cwd=home, cache_dir=cache_dir)
        assert p.returncode == 0, p.stderr[-3000:]
        out = json.loads(p.stdout)
        for r in out["summary"]:
            printed[_key(r)] = {f: r.get(f) for f in FIGS}
    assert len({k[0] for k in printed}) == len(RUNS)
    return home, printed


def _key(r: dict) -> tuple:
    ef = r.get("ef_search")
    return (r["run_id"], r["op"], None if ef is None or (isinstance(ef, float) and math.isnan(ef)) else int(ef))


def _same(a: object, b: object) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or b == "" or (isinstance(b, float) and math.isnan(b))
    return b is not None and b != "" and math.isclose(float(a), float(b), rel_tol=1e-9)  # type: ignore[arg-type]


def _check(printed: dict[tuple, dict], got: dict[tuple, dict], where: str) -> None:
    assert set(got) == set(printed), f"{where}: other configurations than the run printed"
    for k, figs in printed.items():
        for f in FIGS:
            assert _same(figs[f], got[k].get(f)), f"{where}: {k} {f} {got[k].get(f)!r} against {figs[f]!r}"


def test_compare_json_and_csv_show_the_runs_figures(made):
    home, printed = made
    p = bench("compare", "results", "--format", "json", cwd=home, cache_dir=home)
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)["rows"]
    _check(printed, {_key(r): r for r in rows}, "compare json")
    p = bench("compare", "results", "--format", "csv", cwd=home, cache_dir=home)
    table = p.stdout.split("\n\n")[0]
    rows = list(csv.DictReader(io.StringIO(table)))
    _check(printed, {_key({**r, "ef_search": float(r["ef_search"]) if r["ef_search"] else None}): r for r in rows},
           "compare csv")


def _cells(text: str, fmt: str) -> dict[tuple, dict]:
    """Markdown or html tables: run, op, ef and the figure cells as printed (`1,234 [1,200-1,300]`)."""
    out = {}
    if fmt == "markdown":
        heads: list[str] = []
        for line in text.splitlines():
            if not line.startswith("|") or line.startswith("|---"):
                continue
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            if "run" in cells and "QPS" in cells:
                heads = cells
                continue
            if heads and len(cells) == len(heads):
                r = dict(zip(heads, cells, strict=True))
                out[(r["run"].split(" ")[0], r["op"], None if r["ef"] == "-" else int(r["ef"]))] = r
    return out


def _shown(v: object, spec: str) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


HEADS = {"qps": ("QPS", ",.0f"), "p50_us": ("P50 us", ",.0f"), "p99_us": ("P99 us", ",.0f"),
         "p999_us": ("P99.9 us", ",.0f"), "recall": ("recall", ".4f")}


def test_compare_markdown_and_html_print_the_runs_figures(made):
    home, printed = made
    md = bench("compare", "results", "--format", "markdown", cwd=home, cache_dir=home).stdout
    cells = _cells(md, "markdown")
    assert set(cells) == set(printed)
    html = bench("compare", "results", "--format", "html", cwd=home, cache_dir=home).stdout
    for k, figs in printed.items():
        for f, (head, spec) in HEADS.items():
            assert cells[k][head].split(" [")[0] == _shown(figs[f], spec), (k, f, cells[k][head])
            if figs[f] is not None:
                assert _shown(figs[f], spec) in html


def test_export_writes_the_runs_figures(made):
    home, printed = made
    p = bench("export", "results", "--out", "all.parquet", cwd=home, cache_dir=home)
    assert p.returncode == 0, p.stderr
    rows = pq.read_table(home / "all.parquet").to_pylist()
    _check(printed, {_key(r): r for r in rows}, "export parquet")
    bench("export", "results", "--out", "all.csv", cwd=home, cache_dir=home)
    rows = pd.read_csv(home / "all.csv").to_dict("records")
    _check(printed, {_key(r): r for r in rows}, "export csv")


def test_the_verdict_reads_the_same_figures(made):
    home, printed = made
    v = json.loads(bench("compare", "results", "--format", "json", cwd=home, cache_dir=home).stdout)["verdicts"]
    ycsb = [x for x in v if x["level"] in ("total", "read", "update")]
    assert ycsb, v
    figures = {(k[1], round(f["qps"], 6)) for k, f in printed.items() if f["qps"] is not None}
    for x in ycsb:
        for e in x["entries"]:
            assert (x["level"], round(e["point"]["qps"], 6)) in figures
    shown = {re.sub(r"[^0-9]", "", f"{f['qps']:,.0f}") for f in printed.values() if f["qps"] is not None}
    for x in v:
        for e in x["entries"]:
            if e["point"] and not e["point"]["interpolated"]:
                assert re.sub(r"[^0-9]", "", f"{e['point']['qps']:,.0f}") in shown


def test_the_notebook_shows_the_runs_figures(made, tmp_path):
    """The notebook's headline table (its figures as the summary holds them), executed on the same results."""
    import shutil
    import subprocess
    import sys

    home, printed = made
    repo = Path(__file__).resolve().parent.parent
    nb = tmp_path / "notebooks" / "analysis.ipynb"
    nb.parent.mkdir()
    shutil.copy(repo / "notebooks" / "analysis.ipynb", nb)
    p = subprocess.run([sys.executable, str(repo / "scripts" / "run_notebook.py"), str(nb)], capture_output=True,
                       text=True, timeout=600, cwd=repo, env={**__import__("os").environ,
                                                             "BENCH_RESULTS": str(home / "results")})
    assert p.returncode == 0, p.stderr[-2000:]
    cells = json.loads(nb.read_text())["cells"]
    cell = next(c for c in cells if c["cell_type"] == "code" and "HEADLINE = " in "".join(c["source"]))
    page = next(o["data"]["text/html"] for o in cell["outputs"] if "text/html" in o.get("data", {}))
    table = _html_table("".join(page))
    for f in FIGS:
        shown = {round(float(v.replace(",", "")), 4) for v in table[f] if v not in ("", "NaN", "None", "<NA>")}
        want = {round(float(figs[f]), 4) for figs in printed.values() if figs[f] is not None}
        assert shown == want, f


def _html_table(page: str) -> dict[str, list[str]]:
    """The first table of an HTML page as columns of cell texts (pandas' to_html: one header row of th)."""
    from html.parser import HTMLParser

    rows: list[list[str]] = []

    class Cells(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                rows.append([])
            elif tag in ("td", "th") and rows:
                rows[-1].append("")

        def handle_data(self, data):
            if rows and rows[-1]:
                rows[-1][-1] += data.strip()

    Cells().feed(page)
    head, body = rows[0], [r for r in rows[1:] if len(r) == len(rows[0])]
    return {h: [r[i] for r in body] for i, h in enumerate(head) if h}


def test_the_report_tables_show_the_runs_figures(made):
    home, printed = made
    p = bench("report", "results", "--out", "rep", cwd=home, cache_dir=home)
    assert p.returncode == 0, p.stderr
    page = (home / "rep" / "index.html").read_text()
    rows = []
    for table in re.findall(r"<table class='sortable'>.*?</table>", page, re.S):
        heads = [re.sub("<[^>]+>", "", h).strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", table, re.S)]
        for tr in re.findall(r"<tr>(.*?)</tr>", table, re.S):
            cells = [re.sub("<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
            if len(cells) == len(heads) and {"run", "op", "ef", "QPS"} <= set(heads):
                rows.append(dict(zip(heads, cells, strict=True)))
    got = {(r["run"].split(" ")[0], r["op"], None if r["ef"] == "-" else int(r["ef"])): r for r in rows}
    assert set(got) == set(printed)
    for k, figs in printed.items():
        for f, (head, spec) in HEADS.items():
            assert got[k][head].split("[")[0].strip() == _shown(figs[f], spec), (k, f, got[k][head])


def test_regress_headline_columns_are_the_runs_figures(made):
    """Each run against itself: regress's configurations (and every check's baseline and candidate) carry the
    figures the run printed; what a test compared instead is named apart (`tested_*`, `statistic`)."""
    home, printed = made
    got: dict[tuple, dict] = {}
    for run in sorted({k[0] for k in printed}):
        p = bench("regress", "--baseline", f"results/{run}", "--candidate", f"results/{run}", "--format", "json",
                  cwd=home, cache_dir=home)
        assert p.returncode == 0, p.stdout + p.stderr
        out = json.loads(p.stdout)
        for conf in out["configurations"]:
            k = _key({**conf["key"], "run_id": run})
            assert _same(conf["baseline"]["qps"], conf["candidate"]["qps"])
            got[k] = conf["candidate"]
        for chk in out["checks"]:
            conf = got[_key({**chk["key"], "run_id": run})]
            if chk["figure"] in FIGS:
                assert _same(conf[chk["figure"]], chk["baseline"]), chk
    _check(printed, got, "regress json")
