"""What `bench regress` shows, through the real command line on real faiss runs: under the plain names (QPS, P50,
P99, P99.9, recall) the figures of the run's summary, the same `bench compare` prints, with what the test compared
named beside them; the verdict first; the method only with -v; mismatch messages that fit the case."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest
from analysis_helpers import bench, real_run

from bench.analysis.regress.render import fmt

HEADLINE = ("qps", "p50_us", "p99_us", "p999_us", "recall")
# 2,500 searches a trial: each trial has its own P99 (1,000 samples needed), the five merged have a P99.9 (10,000)
RUN = ["--set", "search.ef_search=[16, 32]", "--set", "run.operations=2500", "--trials", "5"]


@pytest.fixture(scope="module")
def faiss_run(tmp_path_factory, cache_dir):
    cwd = tmp_path_factory.mktemp("regress-output")
    return cwd, real_run(cwd, cache_dir, "faiss", *RUN, run_id="fa")


def _same(a: float | None, b: object) -> bool:
    if b is None or (isinstance(b, float) and math.isnan(b)):
        return a is None
    return a is not None and a == pytest.approx(float(b), rel=1e-9)


def test_headline_columns_are_the_summarys_and_compares_figures(faiss_run, cache_dir):
    cwd, run = faiss_run
    p = bench("regress", "--baseline", str(run), "--candidate", str(run), "--format", "json", cwd=cwd,
              cache_dir=cache_dir)
    assert p.returncode == 0, p.stdout + p.stderr
    out = json.loads(p.stdout)
    summary = pd.read_parquet(run / "summary.parquet")
    c = bench("compare", str(run), "--format", "json", cwd=cwd, cache_dir=cache_dir)
    assert c.returncode == 0, c.stderr
    compared = json.loads(c.stdout)["rows"]
    assert sorted(conf["key"]["ef_search"] for conf in out["configurations"]) == [16, 32]
    for conf in out["configurations"]:
        ef = conf["key"]["ef_search"]
        s = summary[summary["ef_search"] == ef].iloc[0]
        row = next(r for r in compared if r["ef_search"] == ef)
        for f in HEADLINE:
            for side in ("baseline", "candidate"):
                assert _same(conf[side][f], s[f]) and _same(conf[side][f], row[f]), (ef, f, conf[side][f], s[f])
        assert conf["baseline"]["p99_us"] is not None  # 5 x 2,500 searches: enough for the merged P99
        # every check's baseline and candidate are those figures; what the test compared is named beside them
        for chk in (x for x in out["checks"] if x["key"]["ef_search"] == ef):
            if chk["figure"] in HEADLINE:
                assert chk["baseline"] == conf["baseline"][chk["figure"]], chk
                assert chk["candidate"] == conf["candidate"][chk["figure"]], chk
        p99 = next(x for x in out["checks"] if x["key"]["ef_search"] == ef and x["figure"] == "p99_us")
        trial_p99s = pd.read_parquet(run / "trials.parquet").query("ef_search == @ef and status == 'ok'")["p99_us"]
        assert p99["statistic"] == "median of trial P99s" and p99["label"] == "P99 us"
        assert p99["tested_baseline"] == pytest.approx(float(trial_p99s.median()))
        qps = next(x for x in out["checks"] if x["key"]["ef_search"] == ef and x["figure"] == "qps")
        assert qps["statistic"] == "headline" and qps["tested_baseline"] == pytest.approx(qps["baseline"])


def test_the_table_markdown_and_html_show_the_same_figures(faiss_run, cache_dir):
    cwd, run = faiss_run
    summary = pd.read_parquet(run / "summary.parquet").set_index("ef_search")
    p99, p50 = (fmt(float(summary.loc[16, f])) for f in ("p99_us", "p50_us"))
    t = bench("regress", "--baseline", str(run), "--candidate", str(run), cwd=cwd, cache_dir=cache_dir,
              env={"COLUMNS": "120"})
    assert t.returncode == 0, t.stdout + t.stderr
    lines = t.stdout.splitlines()
    assert lines[0].startswith("no regression (") and "##" not in t.stdout
    i = lines.index(next(ln for ln in lines if ln.startswith("faiss ann-smoke search ef=16")))
    row = next(ln.split() for ln in lines[i:] if ln.split()[:2] == ["P99", "us"])
    assert row[2:4] == [p99, p99] and "median" in row, row
    md = bench("regress", "--baseline", str(run), "--candidate", str(run), "--format", "markdown", cwd=cwd,
               cache_dir=cache_dir).stdout
    assert f"| faiss ann-smoke search ef=16 c=1 | P50 us | {p50} | {p50} | median of trial P50s: " in md, md
    html = bench("regress", "--baseline", str(run), "--candidate", str(run), "--format", "html", cwd=cwd,
                 cache_dir=cache_dir).stdout
    assert html.startswith("<!doctype html>") and "no regression" in html and f">{p99}<" in html


def test_the_method_is_one_flag_away(faiss_run, cache_dir):
    cwd, run = faiss_run
    quiet = bench("regress", "--baseline", str(run), "--candidate", str(run), cwd=cwd, cache_dir=cache_dir)
    loud = bench("regress", "--baseline", str(run), "--candidate", str(run), "-v", cwd=cwd, cache_dir=cache_dir)
    assert quiet.returncode == loud.returncode == 0, quiet.stderr + loud.stderr
    assert "Holm-Bonferroni" not in quiet.stdout and "(-v explains the method)" in quiet.stdout
    assert "method: " in loud.stdout and "Holm-Bonferroni" in loud.stdout
    assert loud.stdout.splitlines()[0] == quiet.stdout.splitlines()[0]


def test_a_mismatch_names_the_keys_and_values_in_full(faiss_run, cache_dir):
    cwd, run = faiss_run
    other = real_run(cwd, cache_dir, "faiss", "--set", "dataset.n=1200", *RUN[:2], "--trials", "2", run_id="n1200")
    p = bench("regress", "--baseline", str(run), "--candidate", str(other), cwd=cwd, cache_dir=cache_dir)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert ("dataset (dataset_name) is synthetic-16d-cosine-1000-s42 in the baseline but "
            "synthetic-16d-cosine-1200-s42 in the candidate") in p.stderr, p.stderr
    assert "compare runs of the same dataset" in p.stderr and "bench compare" not in p.stderr
    fake = real_run(cwd, cache_dir, "fake-slow", *RUN[:2], "--trials", "2", run_id="fake")
    p = bench("regress", "--baseline", str(run), "--candidate", str(fake), cwd=cwd, cache_dir=cache_dir)
    assert p.returncode == 2 and "two different engines (faiss against fake-slow)" in p.stderr, p.stderr
    assert f"run `bench compare {run} {fake}`" in p.stderr and "--across" not in p.stderr


def test_a_narrow_terminal_wraps_names_and_never_cuts_a_word():
    from bench.analysis.regress import FigureCheck, RegressResult
    from bench.analysis.regress.render import render_terminal

    key = {"backend": "pgvector", "workload": "wordnet-mpnet-768-filtered-selectivity-sweep", "op": "filtered-search",
           "dataset_name": "synthetic-768d-cosine-1000000-s42", "ef_search": 64}
    worse = FigureCheck(key, "p99_us", 402.0, 520.0, 0.29, 0.1, True, 0.001, 5, 5, "regression", True,
                        test="run-noise", p_adjusted=0.004, headline_baseline=641.0, headline_candidate=802.0)
    same = FigureCheck(key, "qps", 1000.0, 1001.0, 0.001, 0.05, True, 0.9, 5, 5, "within tolerance", False,
                       test="run-noise", p_adjusted=0.9, headline_baseline=1000.0, headline_candidate=1001.0)
    moved = FigureCheck({**key, "backend": "null"}, "p50_us", 10.0, 10.5, 0.05, 0.1, True, 0.2, 5, 5,
                        "within tolerance", False, headline_baseline=10.0, headline_candidate=10.5)
    r = RegressResult("baselines/nightly", "results/2026-12-08", 0.05, checks=[worse, same], sentinel=[moved])
    for width in (60, 80, 120):
        text = render_terminal(r, width)
        lines = text.splitlines()
        assert lines[0].startswith("regression: pgvector wordnet-mpnet-768-filtered-selectivity-sweep") and \
            "P99 +29.0% (p=0.004)" in lines[0], lines[0]
        table = lines[2:lines.index(next(ln for ln in lines if ln.startswith("- ")))]
        assert all(len(ln) <= width for ln in table), (width, table)
        words = re.split(r"[\s;]+", " ".join(table))
        for w in ["wordnet-mpnet-768-filtered-selectivity-sweep", "filtered-search", "641", "802", "regression"]:
            assert w in words, (width, w, table)
        assert "- the sentinel (the machine's reference measurement) moved: P50 us +5.0% (-v for its table)" in text
        loud = render_terminal(r, width, verbose=True)
        assert "sentinel: how far the machine moved" in loud and "Holm-Bonferroni" in loud
