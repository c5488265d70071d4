"""`bench report`: from real runs, every picture the data supports is drawn (recall vs QPS with its Pareto
frontier, HDR latency percentiles, YCSB per operation kind, QPS against concurrency) into PNG files and one HTML
page, and what the data cannot support is named as skipped, with the reason."""

from __future__ import annotations

import re

import matplotlib.image as mpimg
import pytest
from analysis_helpers import bench, shared_run

from bench.analysis import htmlpage
from bench.analysis.plots import pareto_frontier, percentile_curve

ANN = ["--set", "search.ef_search=[4, 16, 64]", "--trials", "3"]
YCSB = ["--set", "dataset.holdout=100", "--set", "run.duration_s=0.3", "--set", "run.warmup_s=0.05", "--trials", "3"]


@pytest.fixture(scope="module")
def full(tmp_path_factory, cache_dir):
    """ANN runs of two backends, the same ANN run at concurrency 2, and a YCSB run."""
    return [shared_run(tmp_path_factory, cache_dir, "qdrant-edge", *ANN),
            shared_run(tmp_path_factory, cache_dir, "faiss", *ANN),
            shared_run(tmp_path_factory, cache_dir, "qdrant-edge", *ANN, "--concurrency", "2"),
            shared_run(tmp_path_factory, cache_dir, "qdrant-edge", *YCSB, workload="ycsb-b")]


def _png(path):
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 500
    assert img[..., :3].std() > 0.05  # not a blank canvas
    return img


DATA = "synthetic-16d-cosine-1000-s42"  # the dataset TINY makes: every PNG name says it


def test_report_draws_every_picture(full, tmp_path):
    p = bench("report", *map(str, full), "--out", "rep", cwd=tmp_path, cache_dir=tmp_path)
    assert p.returncode == 0, p.stderr
    rep = tmp_path / "rep"
    names = sorted(x.name for x in rep.glob("*.png"))
    assert names == [f"concurrency-ann-smoke-{DATA}.png", f"latency-ann-smoke-{DATA}.png",
                     f"latency-ycsb-b-{DATA}.png", f"recall-qps-ann-smoke-{DATA}.png",
                     f"ycsb-ops-ycsb-b-{DATA}.png"], names
    for n in names:
        _png(rep / n)
    page = (rep / "index.html").read_text()
    for n in names:
        assert f"href='{n}'" in page  # the PNGs for papers, linked from the interactive page
    assert "<h2 id='runs'>Runs</h2>" in page and page.count("<h2 id='capabilities'>") == 1
    assert "<script src=" not in page and "Plotly.newPlot" in page  # self-contained: the library is inline
    assert page.count("<div class='chart'>") == 5  # recall-QPS, 2 latency, YCSB bars, concurrency
    # what the data could not support is said, in a sentence with why; what a workload's kind never has (a recall
    # curve for YCSB) is not listed
    skipped = re.search(r"<h2 id='not-drawn'>Not drawn</h2>(.*)</main>", page, re.S).group(1)
    assert (f"ycsb-b on {DATA} (n=1,000, dim=16, data#") in skipped
    assert "every series was measured at one (concurrency 1). Run again with --concurrency 1,2,4,8" in skipped
    assert "[1]" not in skipped and "recall vs QPS is for ANN" not in skipped
    # the terminal: one line for the skipped charts, where the report is; each chart with -v
    assert p.stdout.splitlines() == ["skipped 1 chart the data does not support (see 'Not drawn' on the page; -v "
                                     "lists it)", "report: rep/index.html (5 PNG pictures beside it)"], p.stdout
    v = bench("report", *map(str, full), "--out", "rep", "-v", cwd=tmp_path, cache_dir=tmp_path)
    assert v.returncode == 0, v.stderr
    assert sum(line.startswith("drew rep/") for line in v.stdout.splitlines()) == 5
    assert "skipped: ycsb-b on synthetic-16d-cosine-1000-s42" in v.stdout


def test_report_reads_as_sentences_with_readable_times_and_numbers(full, tmp_path):
    p = bench("report", *map(str, full), "--out", "rep", cwd=tmp_path, cache_dir=tmp_path)
    assert p.returncode == 0, p.stderr
    page = (tmp_path / "rep" / "index.html").read_text()
    head = page.split("</header>")[0]
    assert re.search(r"started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", head), head[-600:]
    assert not re.search(r"\d\d:\d\d:\d\d\.\d+|\+00:00", page.replace(htmlpage.plotly_js(), ""))
    runs = page.split("<h2 id='runs'>")[1]
    assert "<td class='num'>1,000</td>" in runs and "<td class='num'>1000</td>" not in runs


def test_report_of_one_run_skips_what_one_run_cannot_show(full, tmp_path):
    p = bench("report", str(full[0]), "--out", "one", cwd=tmp_path, cache_dir=tmp_path)
    assert p.returncode == 0, p.stderr
    assert sorted(x.name for x in (tmp_path / "one").glob("*.png")) == [f"latency-ann-smoke-{DATA}.png",
                                                                       f"recall-qps-ann-smoke-{DATA}.png"]
    page = (tmp_path / "one" / "index.html").read_text()
    assert "Run again with --concurrency 1,2,4,8 to draw it." in page


def test_report_into_an_earlier_report_replaces_its_files_and_leaves_no_stale_one(full, tmp_path):
    """The second report draws fewer pictures: the first one's extra PNGs go, a file the user put there stays,
    and no staging folder is left beside the report."""
    rep = tmp_path / "rep"
    assert bench("report", *map(str, full), "--out", "rep", cwd=tmp_path, cache_dir=tmp_path).returncode == 0
    assert len(list(rep.glob("*.png"))) == 5
    p = bench("report", str(full[0]), "--out", "rep", cwd=tmp_path, cache_dir=tmp_path)
    assert p.returncode == 0, p.stderr
    assert sorted(x.name for x in rep.iterdir()) == ["index.html", f"latency-ann-smoke-{DATA}.png",
                                                     f"recall-qps-ann-smoke-{DATA}.png"]
    (rep / "notes.txt").write_text("mine")
    (rep / "old-figure.png").write_text("not a picture the report listed")
    p = bench("report", *map(str, full), "--out", "rep", cwd=tmp_path, cache_dir=tmp_path)
    assert p.returncode == 0, p.stderr
    assert (rep / "notes.txt").read_text() == "mine" and (rep / "old-figure.png").exists()  # not the report's
    assert len(list(rep.glob(f"*{DATA}.png"))) == 5
    p = bench("report", str(full[0]), "--out", "rep", cwd=tmp_path, cache_dir=tmp_path)
    assert p.returncode == 0, p.stderr
    assert sorted(x.name for x in rep.iterdir()) == ["index.html", f"latency-ann-smoke-{DATA}.png", "notes.txt",
                                                     "old-figure.png", f"recall-qps-ann-smoke-{DATA}.png"]
    assert sorted(x.name for x in tmp_path.iterdir() if x.name.startswith(".")) == []  # no staging folder left


def test_a_failed_write_names_the_file_and_leaves_the_old_report_whole(full, tmp_path, monkeypatch):
    """A picture that cannot be written (the disk filled up) ends in one sentence naming it; the report made
    before is left as it was, and no staging folder stays behind."""
    import errno

    from bench.analysis import report
    from bench.errors import UserError

    out = tmp_path / "rep"
    report.build([str(full[0])], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full_disk(pic, path):
        if path.name.startswith("latency-"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(pic, path)

    real_save = report._save
    monkeypatch.setattr(report, "_save", full_disk)
    with pytest.raises(UserError) as e:
        report.build([str(x) for x in full], out)
    assert e.value.message == (f"Cannot write {out}/latency-ann-smoke-{DATA}.png (No space left on device); the "
                               f"report in {out} is left as it was")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [x.name for x in tmp_path.iterdir()] == ["rep"]


def test_report_refuses_a_file_as_its_folder(full, tmp_path):
    (tmp_path / "rep").write_text("x")
    p = bench("report", str(full[0]), "--out", "rep", cwd=tmp_path, cache_dir=tmp_path)
    assert p.returncode == 2 and "--out rep is a file, not a folder" in p.stderr and "Traceback" not in p.stderr


def test_report_needs_results(tmp_path):
    p = bench("report", str(tmp_path / "none"), "--out", "x", cwd=tmp_path, cache_dir=tmp_path)
    assert p.returncode == 2 and "does not exist" in p.stderr and "Traceback" not in p.stderr


def test_pareto_frontier_keeps_only_undominated_points():
    pts = [(0.5, 1000.0), (0.7, 800.0), (0.6, 500.0), (0.9, 300.0), (0.8, 100.0), (0.9, 200.0)]
    assert pareto_frontier(pts) == [(0.9, 300.0), (0.7, 800.0), (0.5, 1000.0)]


def test_percentile_curve_reads_the_merged_histogram():
    from bench.metrics import hdr

    h = hdr.new_histogram()
    for v in range(1, 1001):
        h.record_value(v)
    xs, ys = percentile_curve(h)
    assert xs[0] == pytest.approx(1.0) and xs[-1] == pytest.approx(1000.0)
    i99 = min(range(len(xs)), key=lambda i: abs(xs[i] - 100))  # 1/(1-0.99) = 100
    assert ys[i99] == pytest.approx(990, rel=0.02)
    assert list(ys) == sorted(ys)


def test_two_datasets_and_two_m_values_give_four_series_titled_by_dataset(tmp_path, cache_dir):
    """Runs on two datasets and two M values: one picture per dataset, titled by it, each with one series per M;
    nothing of one dataset is drawn with the other."""
    from analysis_helpers import real_run

    from bench.analysis import plots
    from bench.analysis.compare import DATA_KEYS, dataset_title
    from bench.analysis.load import summary_frame

    runs = [real_run(tmp_path, cache_dir, "faiss", "--set", f"dataset.n={n}", "--set", f"index.m={m}",
                     "--set", "search.ef_search=[16, 64]", "--trials", "1", run_id=f"n{n}-m{m}")
            for n in (1000, 1500) for m in (8, 16)]
    out = tmp_path / "report"
    p = bench("report", *map(str, runs), "--out", str(out), cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 0, p.stderr
    assert sorted(x.name for x in out.glob("recall-qps-*.png")) == [
        "recall-qps-ann-smoke-synthetic-16d-cosine-1000-s42.png", "recall-qps-ann-smoke-synthetic-16d-cosine-1500-s42.png"]
    page = (out / "index.html").read_text()
    assert "n=1,000" in page and "n=1,500" in page
    summary = summary_frame([str(r) for r in runs])
    series = []
    for _, g in summary.groupby(["workload", *DATA_KEYS], dropna=False):
        title = dataset_title(g.iloc[0].to_dict())
        pic = plots.recall_qps(g, "ann-smoke", title)
        ax = pic.figure.axes[0]
        labels = sorted(t.get_text() for t in ax.get_legend().get_texts())
        assert labels == ["faiss M=16", "faiss M=8"], labels
        assert title in ax.get_title() and "n=1," in ax.get_title()
        series += [(title, lbl) for lbl in labels]
    assert len(series) == 4 and len({t for t, _ in series}) == 2


# -- the page in a real headless browser (Debian's chromium, tests/browser.py) -----------------------------------

READY = ("document.body.getAttribute('data-tables-ready') && window.Plotly && "
         "document.querySelectorAll('.js-plotly-plot').length > 0 && "
         "Array.from(document.querySelectorAll('.js-plotly-plot')).every(g => g.querySelector('.main-svg'))")


@pytest.fixture(scope="module")
def browser_page(full, tmp_path_factory):
    from browser import Browser

    cwd = tmp_path_factory.mktemp("browser-report")
    p = bench("report", *map(str, full), "--out", "rep", cwd=cwd, cache_dir=cwd)
    assert p.returncode == 0, p.stderr
    b = Browser(tmp_path_factory.mktemp("chromium-profile"), width=1400, height=1000)
    try:
        b.open(cwd / "rep" / "index.html", READY, timeout_s=60)
        yield b
    finally:
        b.close()


def test_ycsb_bars_stand_on_linear_axes_from_zero_with_labelled_ticks(browser_page):
    """A bar's length is its figure: every axis of the per-operation chart is linear, starts at 0 and has
    labelled ticks, and each bar carries its figure as text."""
    axes = browser_page.js("""(function () {
      var gd = Array.from(document.querySelectorAll('.js-plotly-plot')).find(g =>
        (g.layout.annotations || []).some(a => a.text === 'P50 (us)'));
      var L = gd._fullLayout;
      return Object.keys(L).filter(k => /^yaxis\\d*$/.test(k)).sort().map(function (k) {
        var sub = gd.querySelector('.subplot.' + L[k]._mainSubplot);
        var labels = Array.from(gd.querySelectorAll('.' + k.replace('axis', '') + 'tick text')).map(t => t.textContent);
        return {type: L[k].type, lo: L[k].range[0], labels: labels};
      });
    })()""")
    assert len(axes) == 4, axes  # QPS, P50, P99, P99.9
    for ax in axes:
        assert ax["type"] == "linear" and ax["lo"] == 0, ax
        assert len([t for t in ax["labels"] if t]) >= 3 and "0" in ax["labels"], ax
    texts = browser_page.js("""Array.from(document.querySelectorAll('.js-plotly-plot')).find(g =>
        (g.layout.annotations || []).some(a => a.text === 'P50 (us)'))._fullData.filter(t => t.type === 'bar')
        .map(t => [Array.from(t.y).map(v => isNaN(v) ? null : v), t.text])""")
    assert len(texts) == 4 and any(y is not None for ys, _ in texts for y in ys)
    for ys, labels in texts:
        for y, label in zip(ys, labels, strict=True):
            assert label == ("-" if y is None else f"{y:,.0f}"), (ys, labels)


def test_captions_claim_error_bars_only_where_they_are_drawn(browser_page):
    charts = browser_page.js("""Array.from(document.querySelectorAll('div.chart')).map(function (c) {
      var gd = c.querySelector('.js-plotly-plot');
      var note = c.nextElementSibling;
      return {caption: note && note.classList.contains('note') ? note.textContent : '',
              data: gd._fullData.some(t => t.error_y && t.error_y.visible && t.error_y.array &&
                                           Array.from(t.error_y.array).length > 0),
              drawn: gd.querySelectorAll('g.errorbar path').length};
    })""")
    assert len(charts) == 5
    claims = [bool(re.search(r"error bar", c["caption"], re.I)) for c in charts]
    assert sum(claims) == 2, charts  # recall vs QPS and the YCSB bars
    for c, claim in zip(charts, claims, strict=True):
        assert claim == c["data"] == (c["drawn"] > 0), c
        assert "bars show their spread" not in c["caption"]


def _overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_no_control_overlaps_the_plotly_toolbar(browser_page):
    boxes = browser_page.js("""Array.from(document.querySelectorAll('.js-plotly-plot')).map(function (gd) {
      function box(e) { var r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }
      return {toolbar: box(gd.querySelector('.modebar')), title: box(gd.querySelector('.gtitle')),
              buttons: Array.from(gd.querySelectorAll('.updatemenu-button')).map(box),
              legend: gd.querySelector('.legend') ? [box(gd.querySelector('.legend'))] : []};
    })""")
    assert sum(len(b["buttons"]) for b in boxes) == 2  # recall / 1 - recall (log)
    for b in boxes:
        assert b["toolbar"][2] > b["toolbar"][0]  # the toolbar is laid out
        for control in b["buttons"] + b["legend"]:
            assert not _overlap(control, b["toolbar"]), b
        for button in b["buttons"]:
            assert not _overlap(button, b["title"]), b
