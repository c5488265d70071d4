"""`bench regress` and `bench baseline`: real runs on the fake-slow backend (a known service time) show a
regression when the service time doubles, and none when a result set is compared with itself."""

from __future__ import annotations

import itertools
import json
import random
import statistics

import pytest
from analysis_helpers import bench, real_run, schema_run
from scipy.stats import mannwhitneyu

from bench.analysis.load import trials_frame
from bench.analysis.regress import (
    FigureRule,
    RegressConfig,
    check_figure,
    compare_frames,
    mann_whitney_p,
    smallest_p,
)

FAKE = ["--set", "search.ef_search=[64]", "--set", "run.operations=200", "--trials", "5"]


# The tests on these runs are `serial` (tests/conftest.py): their p50 and QPS verdicts are timings, and the
# fixture then runs once, in the serial part.
@pytest.fixture(scope="module")
def fake_runs(tmp_path_factory, cache_dir):
    cwd = tmp_path_factory.mktemp("regress")
    fast = real_run(cwd, cache_dir, "fake-slow", *FAKE, "--set", "backend.latency_us=200", run_id="fast")
    slow = real_run(cwd, cache_dir, "fake-slow", *FAKE, "--set", "backend.latency_us=400", run_id="slow")
    return cwd, fast, slow


@pytest.mark.serial  # on fake_runs: two timed runs, whose verdicts the machine's load can blur
def test_slower_candidate_is_a_regression_naming_the_figure(fake_runs):
    cwd, fast, slow = fake_runs
    p = bench("regress", "--baseline", str(fast), "--candidate", str(slow), "--out", "summary.md",
              cwd=cwd, cache_dir=cwd)
    assert p.returncode == 1, p.stdout + p.stderr
    # the answer first: one line per regression, the configuration in full, the figure, its change and p
    lines = p.stdout.splitlines()
    assert lines[0].startswith("regression: fake-slow ann-smoke search ef=64"), p.stdout
    verdicts = [ln for ln in lines if ln.startswith("regression: ")]
    assert any(" P50 +" in ln and "(p=" in ln for ln in verdicts), p.stdout
    # QPS halves too; on a loaded 2-core machine one stalled trial can blur it, so it may only be "unclear"
    assert any(" QPS -" in ln for ln in verdicts) or "QPS looks worse" in p.stdout
    assert not any(" recall " in ln for ln in verdicts)  # fake-slow returns nothing either way: recall 0 == 0
    assert "##" not in p.stdout and "Holm-Bonferroni" not in p.stdout  # no raw markdown, no method paragraph
    md = (cwd / "summary.md").read_text()  # --out writes the markdown: the same verdict, the method
    assert md.startswith("## bench regress: ") and "Holm-Bonferroni" in md
    assert "**regression: fake-slow ann-smoke search ef=64" in md and "| P50 us |" in md
    p = bench("regress", "--baseline", str(fast), "--candidate", str(slow), "--format", "markdown", cwd=cwd,
              cache_dir=cwd)
    assert p.stdout == md
    # the other way round it is an improvement, not a regression
    p = bench("regress", "--baseline", str(slow), "--candidate", str(fast), "--json", cwd=cwd, cache_dir=cwd)
    assert p.returncode == 0, p.stdout + p.stderr
    out = json.loads(p.stdout)
    verdicts = {c["figure"]: c["verdict"] for c in out["checks"]}
    assert verdicts["p50_us"] == "improvement" and verdicts["qps"] in ("improvement", "unclear")
    p50 = next(c for c in out["checks"] if c["figure"] == "p50_us")
    # one run a side: tested against the run-to-run spread configs/regress.toml gives (run_sd)
    assert p50["test"] == "run-noise" and p50["p"] < 1e-4 and p50["n_baseline"] == 5 and p50["n_candidate"] == 5
    assert p50["baseline"] > 1.5 * p50["candidate"]
    # without run_sd in the config, the trials' Mann-Whitney test, and the summary says what it cannot see
    cfg = cwd / "no-run-sd.toml"
    cfg.write_text("[figures.p50_us]\nbetter = \"lower\"\nrelative = 0.1\n")
    p = bench("regress", "--baseline", str(fast), "--candidate", str(slow), "--config", str(cfg), "--json",
              cwd=cwd, cache_dir=cwd)
    p50 = json.loads(p.stdout)["checks"][0]
    assert p.returncode == 1 and p50["test"] == "mann-whitney" and p50["p"] == pytest.approx(2 / 252)
    p = bench("regress", "--baseline", str(fast), "--candidate", str(slow), "--config", str(cfg), cwd=cwd,
              cache_dir=cwd)
    assert "the baseline is one run: its Mann-Whitney test sees how the trials of one run spread" in p.stdout


@pytest.mark.serial  # on fake_runs: two timed runs, whose verdicts the machine's load can blur
def test_a_result_set_compared_with_itself_is_clean(fake_runs):
    cwd, fast, _ = fake_runs
    p = bench("regress", "--baseline", str(fast), "--candidate", str(fast), cwd=cwd, cache_dir=cwd)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith("no regression (") and "regression:" not in p.stdout
    p = bench("regress", "--baseline", str(fast), "--candidate", str(fast), "--format", "markdown", cwd=cwd,
              cache_dir=cwd)
    assert p.stdout.startswith("## bench regress: no regression") and "| within tolerance |" in p.stdout


@pytest.mark.serial  # on fake_runs: two timed runs, whose verdicts the machine's load can blur
def test_baseline_save_show_and_regress_by_name(fake_runs):
    cwd, fast, slow = fake_runs
    p = bench("baseline", "save", "fast", "--name", "main", cwd=cwd, cache_dir=cwd)  # run id under results/
    assert p.returncode == 0, p.stderr
    base = cwd / "baselines" / "main"
    note = json.loads((base / "baseline.json").read_text())
    assert note["run_ids"] == ["fast"] and note["backends"] == ["fake-slow"] and note["replaced"] is None
    assert note["source"] == str(fast.resolve()) and "trials.parquet" in note["runs"][0]["files"]
    assert (base / "fast" / "trials.parquet").is_file() and not (base / "fast" / "intervals").exists()
    p = bench("baseline", "show", cwd=cwd, cache_dir=cwd)
    assert p.returncode == 0 and p.stdout.startswith("main  (baselines/main)"), p.stdout
    shown = dict(ln.split(None, 1) for ln in p.stdout.splitlines()[1:] if ln.startswith("  ") and " " in ln.strip())
    assert shown["runs"].strip() == "fast" and shown["backends"].strip() == "fake-slow", shown
    p = bench("regress", "--baseline", "main", "--candidate", "slow", cwd=cwd, cache_dir=cwd)
    assert p.returncode == 1 and any(ln.startswith("regression: ") and " P50 +" in ln for ln in p.stdout.splitlines())
    # saving again under the same name replaces the copy and says what it replaced
    p = bench("baseline", "save", str(slow), "--name", "main", cwd=cwd, cache_dir=cwd)
    assert p.returncode == 0 and "replaced" in p.stdout
    note = json.loads((base / "baseline.json").read_text())
    assert note["run_ids"] == ["slow"] and note["replaced"] == [str(fast.resolve())]
    assert sorted(d.name for d in base.iterdir()) == ["baseline.json", "slow"]
    # --append adds a run; --keep keeps the newest
    p = bench("baseline", "save", "fast", "--name", "main", "--append", cwd=cwd, cache_dir=cwd)
    assert p.returncode == 0 and "2 run(s)" in p.stdout
    note = json.loads((base / "baseline.json").read_text())
    assert note["run_ids"] == ["fast", "slow"] and [r["folder"] for r in note["runs"]] == ["slow", "fast"]
    p = bench("baseline", "save", "fast", "--name", "main", "--append", "--keep", "1", cwd=cwd, cache_dir=cwd)
    assert p.returncode == 0
    assert sorted(d.name for d in base.iterdir()) == ["baseline.json", "fast"]
    assert [d.name for d in (cwd / "baselines").iterdir()] == ["main"]  # no temporary folders left
    p = bench("baseline", "show", "nope", cwd=cwd, cache_dir=cwd)
    assert p.returncode == 2 and "no baseline 'nope'" in p.stderr


@pytest.mark.serial  # on fake_runs: two timed runs, whose verdicts the machine's load can blur
def test_a_baseline_of_several_runs_counts_their_spread(fake_runs, tmp_path):
    """Against several baseline runs the unit is the run: a candidate among them is no regression, however
    clearly its trials differ from the nearest run's."""
    cwd, fast, slow = fake_runs
    p = bench("baseline", "save", str(fast), "--name", "both", cwd=tmp_path, cache_dir=tmp_path)
    assert p.returncode == 0, p.stderr
    p = bench("baseline", "save", str(slow), "--name", "both", "--append", cwd=tmp_path, cache_dir=tmp_path)
    assert p.returncode == 0, p.stderr
    for candidate in (fast, slow):
        p = bench("regress", "--baseline", "both", "--candidate", str(candidate), "--json", cwd=tmp_path,
                  cache_dir=tmp_path)
        assert p.returncode == 0, p.stdout + p.stderr
        checks = {c["figure"]: c for c in json.loads(p.stdout)["checks"]}
        p50 = checks["p50_us"]
        assert p50["baseline_runs"] == 2 and p50["test"] == "prediction" and p50["n_baseline"] == 2
        assert p50["p"] > 0.05 and p50["verdict"] == "unclear"  # 26% off the mean, but so are the runs
        lo, hi = p50["baseline_range"]
        assert lo < p50["tested_baseline"] < hi and hi > 1.5 * lo
        assert p50["statistic"] == "median of trial P50s, baseline the mean of 2 runs'"
    p = bench("regress", "--baseline", "both", "--candidate", str(slow), "--format", "markdown", cwd=tmp_path,
              cache_dir=tmp_path)
    assert "| median of trial P50s, baseline the mean of 2 runs' (" in p.stdout, p.stdout


def test_prediction_interval_over_baseline_runs():
    from scipy.stats import t as student_t

    from bench.analysis.regress import prediction_p

    runs = [100.0, 102.0, 98.0, 101.0, 99.0]
    assert prediction_p(runs, 100.0) == pytest.approx(1.0)
    s = statistics.stdev(runs)
    edge = 100.0 + student_t.ppf(0.975, 4) * s * (1 + 1 / 5) ** 0.5  # the 95% prediction interval's upper end
    assert prediction_p(runs, edge) == pytest.approx(0.05)
    assert prediction_p(runs, edge + 1) < 0.05 < prediction_p(runs, edge - 1)
    assert prediction_p([100.0], 500.0) == 1.0  # one run: no spread to test against
    rule = FigureRule(better="lower", relative=0.10)
    # runs whose medians spread 95-130: a candidate at 128 (12.5% above their mean) is among them, whatever its
    # trials say; a one-run baseline of the fastest run would call it a regression
    base_runs = [[95, 95, 96, 94, 95], [130, 131, 129, 130, 130], [110, 111, 109, 110, 110], [120, 119, 121, 120, 120]]
    flat = [v for r in base_runs for v in r]
    cand = [128, 129, 127, 128, 128]
    c = check_figure({"backend": "b"}, "p99_us", rule, flat, cand, 0.05, base_runs)
    assert c is not None and c.test == "prediction" and c.worse and c.verdict == "unclear"
    assert c.baseline == pytest.approx(113.75) and c.p > 0.3
    assert check_figure({"backend": "b"}, "p99_us", rule, base_runs[0], cand, 0.05).verdict == "regression"
    c = check_figure({"backend": "b"}, "p99_us", rule, flat, [300, 301, 299, 300, 300], 0.05, base_runs)
    assert c is not None and c.verdict == "regression" and c.p < 0.05


def test_recall_is_tested_on_queries_paired_across_runs():
    """Per-query recall that differs between two builds in no direction is no regression; a drop common to
    many queries is."""
    import numpy as np

    from bench.analysis.regress import paired_queries_p

    rng = np.random.default_rng(3)
    base = rng.choice([0.7, 0.8, 0.9], size=400)
    noisy = base + rng.choice([-0.1, 0.0, 0.1], size=400)  # another build: per query up or down
    p, n = paired_queries_p(base, noisy)
    assert n == 400 and p > 0.05
    shifted = base.copy()
    shifted[rng.choice(400, 80, replace=False)] -= 0.1  # 20% of the queries lose one neighbour of ten
    p, n = paired_queries_p(base, shifted)
    assert p < 1e-6
    base[:10] = np.nan  # queries one side did not search are left out of the pairs
    assert paired_queries_p(base, shifted)[1] == 390
    assert paired_queries_p(base, base) == (1.0, 390)
    rule = FigureRule(better="higher", absolute=0.01)
    c = check_figure({"backend": "b"}, "recall", rule, [0.95] * 5, [0.93] * 5, 0.05, None,
                     (np.full(100, 0.95), np.where(np.arange(100) < 20, 0.85, 0.95)))
    assert c is not None and c.test == "wilcoxon" and c.verdict == "regression" and c.n_baseline == 100


@pytest.mark.serial  # on fake_runs: two timed runs, whose verdicts the machine's load can blur
def test_bad_input_exits_2_with_one_sentence(fake_runs, tmp_path):
    cwd, fast, _ = fake_runs
    other = schema_run(tmp_path / "other", backend="someone-else", workload="w")
    p = bench("regress", "--baseline", str(fast), "--candidate", str(other), cwd=tmp_path, cache_dir=tmp_path)
    assert p.returncode == 2 and "Nothing in" in p.stderr and "comparable" in p.stderr
    assert "Traceback" not in p.stderr
    # two engines: the fix is compare, not an --across
    assert "two different engines (fake-slow against someone-else)" in p.stderr, p.stderr
    assert f"`bench compare {fast} {other}`" in p.stderr and "--across" not in p.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "trials.parquet").write_bytes(b"PAR1 this is not parquet")
    (broken / "summary.parquet").write_bytes(b"nope")
    p = bench("regress", "--baseline", str(fast), "--candidate", str(broken), cwd=tmp_path, cache_dir=tmp_path)
    assert p.returncode == 2 and "cannot be read" in p.stderr and "Traceback" not in p.stderr
    p = bench("regress", "--baseline", str(fast), "--candidate", str(tmp_path / "missing"), cwd=tmp_path,
              cache_dir=tmp_path)
    assert p.returncode == 2 and "No results at" in p.stderr
    cfg = tmp_path / "bad.toml"
    cfg.write_text("alpha = 0.05\n[figures.qps]\nbetter = \"higher\"\n")  # no tolerance
    p = bench("regress", "--baseline", str(fast), "--candidate", str(fast), "--config", str(cfg), cwd=tmp_path,
              cache_dir=tmp_path)
    assert p.returncode == 2 and "exactly one of 'relative' or 'absolute'" in p.stderr
    cfg.write_text("[figures.speed]\nbetter = \"higher\"\nrelative = 0.1\n")
    p = bench("regress", "--baseline", str(fast), "--candidate", str(fast), "--config", str(cfg), cwd=tmp_path,
              cache_dir=tmp_path)
    assert p.returncode == 2 and "'speed'" in p.stderr


def test_too_few_trials_are_said_not_counted(tmp_path):
    """Without run_sd, 3 against 3 trials can never give p < 0.05 (Mann-Whitney), so a large change is reported as
    untestable, not a regression; with the machine's run_sd (the default config) the doubling is clear."""
    a = schema_run(tmp_path / "a", latencies_us=[100, 101, 102])
    b = schema_run(tmp_path / "b", latencies_us=[200, 201, 202])
    cfg = tmp_path / "trials-only.toml"
    cfg.write_text("[figures.p50_us]\nbetter = \"lower\"\nrelative = 0.1\n")
    p = bench("regress", "--baseline", str(a), "--candidate", str(b), "--config", str(cfg), cwd=tmp_path,
              cache_dir=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith("no regression") and "can never reach p < 0.05" in p.stdout
    p = bench("regress", "--baseline", str(a), "--candidate", str(b), "--config", str(cfg), "--format", "markdown",
              cwd=tmp_path, cache_dir=tmp_path)
    assert "| too few trials |" in p.stdout
    p = bench("regress", "--baseline", str(a), "--candidate", str(b), cwd=tmp_path, cache_dir=tmp_path)
    assert p.returncode == 1 and any(ln.startswith("regression: ") and " P50 +" in ln for ln in p.stdout.splitlines())
    p = bench("regress", "--baseline", str(a), "--candidate", str(b), "--format", "markdown", cwd=tmp_path,
              cache_dir=tmp_path)
    assert "| P50 us |" in p.stdout and "configured run-to-run spread" in p.stdout


def test_mann_whitney_exact_p_values():
    assert mann_whitney_p([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == pytest.approx(2 / 252)
    assert smallest_p(5, 5) == pytest.approx(2 / 252) and smallest_p(3, 3) == pytest.approx(0.1)
    assert mann_whitney_p([0.9] * 5, [0.9] * 5) == 1.0
    # all ties within each side, separated between them: still the most extreme split
    assert mann_whitney_p([0.95] * 5, [0.93] * 5) == pytest.approx(2 / 252)
    rng = random.Random(7)
    for _ in range(20):  # without ties, the exact enumeration agrees with scipy's exact test
        x = [rng.random() for _ in range(rng.randint(3, 6))]
        y = [rng.random() + rng.choice([0, 0.3]) for _ in range(rng.randint(3, 6))]
        assert mann_whitney_p(x, y) == pytest.approx(mannwhitneyu(x, y, method="exact").pvalue)
    # the p-value is the share of splits at least as extreme as the observed one (checked by brute force)
    x, y = [1.0, 2.0, 2.0, 5.0], [2.0, 3.0, 4.0, 6.0, 6.0]
    pooled = x + y
    center = len(x) * len(y) / 2

    def u(a, b):
        return sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in a for q in b)

    obs = abs(u(x, y) - center)
    splits = list(itertools.combinations(range(9), 4))
    extreme = sum(abs(u([pooled[i] for i in s], [pooled[i] for i in range(9) if i not in s]) - center) >= obs
                  for s in splits)
    assert mann_whitney_p(x, y) == pytest.approx(extreme / len(splits))


def test_tolerance_and_significance_both_needed():
    rule = FigureRule(better="lower", relative=0.10)
    key = {"backend": "b"}
    # clearly separated but within 10%: not a regression
    c = check_figure(key, "p99_us", rule, [100, 101, 102, 103, 104], [105, 106, 107, 108, 109], 0.05)
    assert c is not None and c.verdict == "within tolerance" and c.p < 0.05
    # 30% worse in the median but the trials overlap: unclear, not a regression
    c = check_figure(key, "p99_us", rule, [100, 60, 180, 90, 150], [130, 70, 170, 120, 200], 0.05)
    assert c is not None and c.verdict == "unclear" and c.worse
    # 30% worse and separated: regression
    c = check_figure(key, "p99_us", rule, [100, 101, 102, 103, 104], [130, 131, 132, 133, 134], 0.05)
    assert c is not None and c.verdict == "regression"
    recall = FigureRule(better="higher", absolute=0.01)
    c = check_figure(key, "recall", recall, [0.95] * 5, [0.93] * 5, 0.05)
    assert c is not None and c.verdict == "regression" and c.change == pytest.approx(-0.02)


def test_a_different_built_index_is_noted(tmp_path, cache_dir):
    a = real_run(tmp_path, cache_dir, "faiss", "--set", "search.ef_search=[16]", "--set", "index.m=8", "--trials", "4",
                 run_id="m8")
    b = real_run(tmp_path, cache_dir, "faiss", "--set", "search.ef_search=[16]", "--set", "index.m=16", "--trials", "4",
                 run_id="m16")
    # different indexes measured different things: refused, naming the real reason ...
    p = bench("regress", "--baseline", str(a), "--candidate", str(b), cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "M (index_m) is 8 in the baseline but 16 in the candidate" in p.stderr and "--across index" in p.stderr
    # ... unless the user pairs across the index on purpose (an A/B of index settings)
    p = bench("regress", "--baseline", str(a), "--candidate", str(b), "--json", "--across", "index", cwd=tmp_path,
              cache_dir=cache_dir)
    assert p.returncode in (0, 1), p.stderr
    notes = json.loads(p.stdout)["notes"]
    assert any("built another index" in n and "m: 8 -> 16" in n for n in notes), notes
    # recall at ef_search=16 rises with M: tested on the 40 queries paired, not on the trials (one index each)
    recall = next(c for c in json.loads(p.stdout)["checks"] if c["figure"] == "recall")
    assert recall["test"] == "wilcoxon" and recall["n_baseline"] == 40 and recall["change"] > 0.01
    assert recall["verdict"] == "improvement" and recall["p"] < 0.05
    p = bench("regress", "--baseline", str(b), "--candidate", str(a), "--across", "index", "--format", "markdown",
              cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 1 and "**regression: faiss ann-smoke search" in p.stdout and "40 queries paired" in p.stdout
    assert any(ln.startswith("- **regression: ") and " recall -" in ln for ln in p.stdout.splitlines()), p.stdout
    # a busier machine cannot explain a recall change on the same queries: still a regression, where a latency
    # change would be unclear
    base, cand = trials_frame([b]), trials_frame([a])
    cand["host_other_cores"] = base["host_other_cores"].mean() + 1.0
    res = compare_frames(base, cand, RegressConfig(), across=["index"])
    rec = next(c for c in res.checks if c.figure == "recall")
    assert rec.verdict == "regression" and not rec.reason, (rec.verdict, rec.reason)


def test_recall_per_query_averages_each_querys_searches():
    import numpy as np

    from bench.metrics.recall import recall_at_k, recall_per_query

    truth = np.array([[1, 2], [3, 4], [5, -1]])  # query 2 has one qualifying record (a filtered search)
    queries = np.array([0, 0, 2])  # query 0 searched twice, query 1 never
    found = np.array([[1, 2], [1, 9], [5, 7]])
    per = recall_per_query(queries, found, truth[queries], 2, 3)
    assert per[0] == pytest.approx(0.75) and np.isnan(per[1]) and per[2] == pytest.approx(1.0)
    assert recall_at_k(found, truth[queries], 2) == pytest.approx((1 + 0.5 + 1) / 3)


def test_one_run_a_side_is_tested_against_the_machines_run_to_run_spread():
    from bench.analysis.regress import run_noise_p

    rule = FigureRule(better="higher", relative=0.05, run_sd=0.07)
    base, cand = [1000, 1002, 998, 1001, 999], [900, 901, 899, 902, 898]  # -10%, the trials far apart
    c = check_figure({"backend": "b"}, "qps", rule, base, cand, 0.05)
    assert c is not None and c.test == "run-noise" and c.worse and c.verdict == "unclear"
    # z = 0.1 / sqrt(2 * 0.07^2 + tiny): about 1.01, p about 0.31
    assert c.p == pytest.approx(0.31, abs=0.01)
    c = check_figure({"backend": "b"}, "qps", rule, base, [500, 501, 499, 502, 498], 0.05)  # halved
    assert c is not None and c.verdict == "regression" and c.p < 1e-6
    # the runs' own trial spread adds to the run-to-run spread
    wide = [700, 1300, 1000, 850, 1150]
    assert run_noise_p(-0.3, base, wide, 1000, 1000, True, 0.07) > run_noise_p(-0.3, base, base, 1000, 1000, True, 0.07)
    assert run_noise_p(0.0, base, base, 1000, 1000, True, 0.0) == 1.0
    # against several baseline runs the prediction interval is used, whatever run_sd says
    c = check_figure({"backend": "b"}, "qps", rule, base + cand, cand, 0.05, [base, cand])
    assert c is not None and c.test == "prediction"
