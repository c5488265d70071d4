"""The README's commands work: every command in the ```sh blocks of the README and of the docs/ pages it links
to runs without an error in a fresh copy of the repository (nothing beside it), in order, as a newcomer types
them; only a short, justified list is skipped.

And the report the worked example made, in a real headless browser (Debian's chromium, over the DevTools
protocol): it opens from disk with no network, its charts render with hover text naming run, dataset and index, a
legend click hides a series, its tables sort and filter; the screenshot is kept as test-artifacts/report.png (the
README's docs/img/report.png is a copy of it). One module, so that one pytest worker runs the README's commands
once for both."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from browser import Browser
from readme_commands import README, SKIP, commands, covered_pages, run_readme, skipped_by

from bench.analysis.htmlpage import plotly_js
from bench.spec import REPO_ROOT


@pytest.fixture(scope="module")
def clone(tmp_path_factory, cache_dir):
    return run_readme(tmp_path_factory, cache_dir)


def test_every_readme_command_runs_without_an_error(clone):
    failed = [f"{o.cmd}\n  exit {o.returncode}: {o.stderr.strip()[-800:]}" for o in clone.outcomes if o.returncode]
    assert not failed, "\n".join(failed)
    assert len(clone.outcomes) >= 15  # the quick start, the worked example and the reference examples ran
    timing = ", ".join(f"{o.cmd.split(' --')[0]}: {o.seconds:.1f}s" for o in clone.outcomes)
    print(f"README commands: {timing}")


def test_the_skip_list_is_small_and_every_entry_is_still_in_the_readme():
    cmds = commands()
    assert len(SKIP) <= 8
    stale = [k for k in SKIP if not any(skipped_by(c) == k for c in cmds)]
    assert not stale, f"skip-list entries no command of the README or its pages matches any more: {stale}"
    quick = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    skipped_quick = [c for c in commands(quick) if skipped_by(c)]
    assert skipped_quick == [". .venv/bin/activate"], skipped_quick  # nothing else of the Quick start is skipped


def test_the_pages_the_readme_links_to_ran_too(clone):
    pages = {p.name for p in covered_pages()}
    assert {"cli.md", "compare-report-regress.md", "workloads.md", "engines.md", "results.md"} <= pages, pages
    ran = {o.cmd for o in clone.outcomes} | set(clone.skipped)
    for page in covered_pages():
        missing = [c for c in commands(page.read_text(encoding="utf-8")) if c not in ran]
        assert not missing, f"{page.name}: commands not run: {missing}"
    assert any(o.cmd.startswith("bench run --backend qdrant-edge --workload ycsb-filtered-mixed")
               for o in clone.outcomes)  # docs/workloads.md's own example


def test_quick_start_reads_the_fixture_from_a_fresh_clone_and_writes_results(clone):
    describe = next(o for o in clone.outcomes if o.cmd == "bench datasets describe wordnet-mpnet-768")
    assert "wordnet-mpnet-768-small" in describe.stdout and "4,000" in describe.stdout  # nothing beside the repo
    version = next(o for o in clone.outcomes if o.cmd == "bench --version")
    assert version.stdout.startswith("bench ")
    runs = sorted(p.parent.name for p in (clone.root / "results").rglob("summary.parquet"))
    assert {"faiss-synthetic", "qdrant-edge-synthetic", "faiss-wordnet", "qdrant-edge-wordnet"} <= set(runs)
    assert len(runs) >= 6  # make run's qdrant-edge run and the quick start's faiss run too
    assert (clone.root / "report" / "index.html").is_file()
    assert (clone.root / "report" / "example" / "index.html").is_file()


def test_compare_json_and_export_hold_the_worked_example(clone):
    data = json.loads((clone.root / "compare.json").read_text())
    assert {r["backend"] for r in data["rows"]} == {"faiss", "qdrant-edge"}
    assert {r["dataset_name"] for r in data["rows"]} == {"synthetic-768d-cosine-4000-s42", "wordnet-mpnet-768"}
    assert all(isinstance(r["qps"], float) and isinstance(r["index_m"], int) for r in data["rows"])
    table = pq.read_table(clone.root / "example.parquet")
    assert set(table.column("run_id").to_pylist()) == {"faiss-synthetic", "qdrant-edge-synthetic", "faiss-wordnet",
                                                      "qdrant-edge-wordnet"}
    assert table.num_rows == 12  # 4 runs x 3 ef_search
    assert table.schema.field("qps").metadata[b"description"]


# -- the worked example's report in a headless browser ----------------------------------------------------------

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
        b.screenshot(ARTIFACTS / "report.png")  # as the page opens, before any test clicks on it
        yield b, index
    finally:
        b.close()


def test_the_page_is_self_contained(page):
    _, index = page
    text = index.read_text(encoding="utf-8")
    assert plotly_js() in text  # the chart library is inside the file ...
    rest = text.replace(plotly_js(), "")
    assert not re.findall(r"<script[^>]*\bsrc=|<link[^>]*\bhref=|https?://", rest)  # ... and nothing is fetched
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
    b.js("Plotly.restyle(document.querySelector('.js-plotly-plot'), {visible: true}).then(() => null)")


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
    shot = ARTIFACTS / "report.png"
    assert shot.stat().st_size > 20_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
