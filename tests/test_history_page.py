"""`bench history report` in a real headless Chromium: the page is self-contained, the summary at the top names the
change with its commit range, every configuration and figure has a chart with its nightly values, the trials'
spread as a band, busy nights marked and the change point drawn; hover names commit, engine versions and host
load; the selects filter the charts by engine, dataset and figure.

The history is the recorded real nights (tests/fixtures/history/nights.parquet) replayed a night apart, faiss's P50
made 30% worse from night 12 on (with a new harness commit and faiss client that night)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from analysis_helpers import bench
from browser import Browser
from history_helpers import replay, runs_in_order, worsen, write_store

from bench.analysis.htmlpage import plotly_js
from bench.spec import REPO_ROOT

ARTIFACTS = Path(os.environ.get("BENCH_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts"))
READY = ("document.body.getAttribute('data-charts-shown') && window.Plotly && "
         "Array.from(document.querySelectorAll('.js-plotly-plot')).every(g => g.querySelector('.main-svg'))")


def history(folder: Path) -> Path:
    df = worsen(replay(), "faiss", "p50_us", 12, 0.30)
    later = df["run_id"].isin(runs_in_order(df)[12:])
    df.loc[later, "git_commit"] = "c0ffee" + "0" * 34
    df.loc[later & (df["backend"] == "faiss"), "backend_client_version"] = "1.99.0"
    return write_store(df, folder)


@pytest.fixture(scope="module")
def page(tmp_path_factory, cache_dir):
    cwd = tmp_path_factory.mktemp("history-page")
    store = history(cwd / "hist")
    p = bench("history", "report", "--store", str(store), "--out", str(cwd / "page"), "--last", "30", cwd=cwd,
              cache_dir=cache_dir)
    assert p.returncode == 0, p.stderr
    index = cwd / "page" / "index.html"
    b = Browser(tmp_path_factory.mktemp("chromium-profile"), width=1400, height=1100)
    try:
        b.open(index, READY, timeout_s=90)
        b.screenshot(ARTIFACTS / "history.png")
        yield b, index
    finally:
        b.close()


def test_the_page_is_self_contained_with_the_change_at_the_top(page):
    _, index = page
    text = index.read_text(encoding="utf-8")
    assert plotly_js() in text
    rest = text.replace(plotly_js(), "")
    assert not re.findall(r"<script[^>]*\bsrc=|<link[^>]*\bhref=|https?://", rest)
    top = rest.split("id='series'")[0]
    assert "Changes in the last 30 nights" in top and "..c0ffee000000" in top
    assert "faiss ann-nightly search" in top and "client 1.15.1 -&gt; 1.99.0" in top


def test_a_chart_per_configuration_and_figure_with_band_busy_nights_and_change(page):
    b, _ = page
    charts = b.js("document.querySelectorAll('.grid .chart').length")
    assert charts >= 5 * 5  # five configurations (three engines, two sentinels), most figures each
    faiss_p50 = ("Array.from(document.querySelectorAll('.grid .chart')).find(c => c.dataset.engine === 'faiss' "
                 "&& c.dataset.figure === 'p50_us' && c.querySelector('h4').textContent.indexOf('sentinel') < 0)")
    assert b.js(f"{faiss_p50}.dataset.changes") == "1"
    gd = f"{faiss_p50}.querySelector('.js-plotly-plot')"
    names = b.js(f"{gd}.data.map(t => t.name || '')")
    assert "trials' spread" in names and "P50" in names and "busy night" in names, names
    assert b.js(f"{gd}._fullData.find(t => t.name === 'P50').y.length") == len(runs_in_order(replay()))
    assert b.js(f"{gd}.layout.shapes.length") == 1  # the change point's line
    assert "c0ffee000000" in b.js(f"{gd}.layout.annotations[0].text")
    drawn = b.js(f"{gd}.querySelectorAll('.scatterlayer .trace path.js-line').length")
    assert drawn >= 1
    b.js(f"Plotly.Fx.hover({gd}, [{{curveNumber: {names.index('P50')}, pointNumber: 13}}])")
    hover = b.js(f"{gd}.querySelector('.hoverlayer').textContent")
    assert "commit c0ffee000000" in hover and "client 1.99.0" in hover and "load" in hover, hover


def test_the_selects_filter_by_engine_dataset_and_figure(page):
    b, _ = page
    total = int(b.js("document.body.getAttribute('data-charts-shown')"))

    def choose(name: str, value: str) -> int:
        b.js(f"(function () {{ var s = document.querySelector(\".filters select[name='{name}']\"); s.value = "
             f"'{value}'; s.dispatchEvent(new Event('change')); }})()")
        return int(b.js("document.body.getAttribute('data-charts-shown')"))

    engines = b.js("Array.from(document.querySelectorAll(\".filters select[name='engine'] option\")).map(o => o.value)")
    assert set(engines) >= {"", "faiss", "qdrant-edge", "pgvector", "null"}
    faiss = choose("engine", "faiss")
    assert 0 < faiss < total
    both = choose("figure", "p50_us")
    assert both == 2  # faiss's engine series and its sentinel
    assert choose("dataset", "synthetic-32d-l2-2000-s7") == 1  # the sentinel's dataset
    for name in ("engine", "figure", "dataset"):
        choose(name, "")
    assert int(b.js("document.body.getAttribute('data-charts-shown')")) == total
