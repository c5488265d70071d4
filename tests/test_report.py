"""`bench report`: from real runs, every picture the data supports is drawn (recall vs QPS with its Pareto
frontier, HDR latency percentiles, YCSB per operation kind, QPS against concurrency) into PNG files and one HTML
page, and what the data cannot support is named as skipped, with the reason."""

from __future__ import annotations

import re

import matplotlib.image as mpimg
import pytest
from analysis_helpers import bench, shared_run

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


def test_report_draws_every_picture(full, tmp_path):
    p = bench("report", *map(str, full), "--out", "rep", cwd=tmp_path, cache_dir=tmp_path)
    assert p.returncode == 0, p.stderr
    rep = tmp_path / "rep"
    names = sorted(x.name for x in rep.glob("*.png"))
    assert names == ["concurrency-ann-smoke.png", "latency-ann-smoke.png", "latency-ycsb-b.png",
                     "recall-qps-ann-smoke.png", "ycsb-ops-ycsb-b.png"], names
    for n in names:
        _png(rep / n)
    page = (rep / "index.html").read_text()
    for n in names:
        assert f"href='{n}'" in page  # the PNGs for papers, linked from the interactive page
    assert "<h2 id='runs'>Runs</h2>" in page and page.count("<h2 id='capabilities'>") == 1
    assert "<script src=" not in page and "Plotly.newPlot" in page  # self-contained: the library is inline
    assert page.count("<div class='chart'>") == 5  # recall-QPS, 2 latency, YCSB bars, concurrency
    # what was not drawn is said, with why: one YCSB workload has no recall curve, one concurrency only
    skipped = re.search(r"<h2 id='not-drawn'>Not drawn</h2>(.*)</main>", page, re.S).group(1)
    assert "ycsb-b: recall vs QPS is for ANN workloads" in skipped
    assert "ycsb-b: every series was measured at one concurrency only ([1])" in skipped
    assert "ann-smoke: per-operation pictures are for YCSB workloads" in skipped
    assert "skipped: ycsb-b: recall vs QPS" in p.stdout


def test_report_of_one_run_skips_what_one_run_cannot_show(full, tmp_path):
    p = bench("report", str(full[0]), "--out", "one", cwd=tmp_path, cache_dir=tmp_path)
    assert p.returncode == 0, p.stderr
    assert sorted(x.name for x in (tmp_path / "one").glob("*.png")) == ["latency-ann-smoke.png",
                                                                       "recall-qps-ann-smoke.png"]
    page = (tmp_path / "one" / "index.html").read_text()
    assert "give runs at several --concurrency values" in page


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
    assert sorted(x.name for x in out.glob("recall-qps-*.png")) == ["recall-qps-ann-smoke-1.png",
                                                                     "recall-qps-ann-smoke.png"]
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
