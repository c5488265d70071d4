"""The report in a real headless browser (Debian's chromium, over the DevTools protocol): the page the README's
worked example made (two engines, two datasets) opens from disk with no network, its charts render with hover
text naming run, dataset and index, a legend click hides a series, its tables sort and filter; the screenshot is
kept as test-artifacts/report.png (the README's docs/img/report.png is a copy of it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from browser import Browser
from readme_commands import run_readme

from bench.spec import REPO_ROOT

ARTIFACTS = Path(os.environ.get("BENCH_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts"))
READY = ("document.body.getAttribute('data-tables-ready') && window.Plotly && "
         "document.querySelectorAll('.js-plotly-plot').length > 0 && "
         "Array.from(document.querySelectorAll('.js-plotly-plot')).every(g => g.querySelector('.main-svg'))")


@pytest.fixture(scope="module")
def page(tmp_path_factory, cache_dir):
    clone = run_readme(tmp_path_factory, cache_dir)
    index = clone.root / "report" / "example" / "index.html"
    assert index.is_file(), "the README's worked example made no report"
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    try:
        b.open(index, READY, timeout_s=60)
        yield b, index
    finally:
        b.close()


def test_the_page_is_self_contained(page):
    _, index = page
    text = index.read_text(encoding="utf-8")
    assert "<script src=" not in text and "cdn.plot.ly" not in text  # the chart library is inside the file
    assert "wordnet-mpnet-768" in text.split("</header>")[0] and "synthetic-768d-cosine-4000-s42" in text.split("</header>")[0]


def test_charts_render_with_hover_naming_run_dataset_and_index(page):
    b, _ = page
    charts = b.js("Array.from(document.querySelectorAll('.js-plotly-plot')).map(g => g._fullData.length)")
    assert len(charts) == 4 and all(n >= 2 for n in charts)  # recall-QPS and latency panels, per dataset
    drawn = b.js("document.querySelectorAll('.js-plotly-plot .scatterlayer .trace path.js-line').length")
    assert drawn >= 8
    b.js("Plotly.Fx.hover(document.querySelector('.js-plotly-plot'), [{curveNumber: 0, pointNumber: 0}])")
    hover = b.js("document.querySelector('.js-plotly-plot .hoverlayer').textContent")
    assert "run faiss-synthetic" in hover and "dataset synthetic-768d" in hover and "hnsw M=16" in hover, hover


def test_a_legend_click_hides_a_series(page):
    b, _ = page
    b.js("""(function () { var gd = document.querySelector('.js-plotly-plot');
            var t = gd.querySelector('.legend .traces .legendtoggle');
            ['mousedown', 'mouseup', 'click'].forEach(function (e) {
              t.dispatchEvent(new MouseEvent(e, {bubbles: true, clientX: 1, clientY: 1})); }); })()""")
    b.js("new Promise(r => setTimeout(r, 600))")  # plotly tells a click from a double click after a moment
    visible = b.js("document.querySelector('.js-plotly-plot').data.map(t => t.visible === undefined ? true : t.visible)")
    assert "legendonly" in visible, visible
    b.js("Plotly.restyle(document.querySelector('.js-plotly-plot'), {visible: true})")


def test_tables_sort_and_filter(page):
    b, _ = page
    col = b.js("Array.from(document.querySelector('table.sortable').tHead.rows[0].cells).findIndex(c => c.textContent === 'QPS')")
    assert col >= 0
    read = ("Array.from(document.querySelector('table.sortable').tBodies[0].rows).map(r => "
            f"parseFloat(r.cells[{col}].textContent.replace(/,/g, '')))")
    b.js(f"document.querySelector('table.sortable').tHead.rows[0].cells[{col}].click()")
    up = b.js(read)
    b.js(f"document.querySelector('table.sortable').tHead.rows[0].cells[{col}].click()")
    down = b.js(read)
    assert len(up) == 6 and up == sorted(up) and down == sorted(up, reverse=True) and up != down
    b.js("""(function () { var box = document.querySelector('.tablebox input.filter'); box.value = 'qdrant';
            box.dispatchEvent(new Event('input')); })()""")
    shown = b.js("Array.from(document.querySelector('table.sortable').tBodies[0].rows)"
                 ".filter(r => r.style.display !== 'none').map(r => r.cells[0].textContent)")
    assert shown and all(s.startswith("qdrant-edge") for s in shown) and len(shown) == 3


def test_screenshot_is_kept_as_an_artifact(page):
    b, _ = page
    b.js("window.scrollTo(0, 0)")
    shot = b.screenshot(ARTIFACTS / "report.png")
    assert shot.stat().st_size > 20_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
