"""Nightly verdicts on a noisy machine: `bench ab` (two arms' trials alternate in one run) and the paired regress
of an A/B run; the suite's sentinel (its own rows, never mixed with an engine's); the machine's part in a
verdict (a regression the sentinel shows too, or one measured on a busier host, is unclear, never a regression).

Runs are real (`fake-slow`, a fake backend that sleeps a set service time, carries a known slowdown; null and
faiss measure the sentinel); frames are edited only to give one side a busier host or a moved sentinel, which a
real run cannot produce on demand."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from analysis_helpers import bench

from bench.ab import order
from bench.analysis.load import trials_frame
from bench.analysis.regress import (
    FigureRule,
    RegressConfig,
    compare_frames,
    compare_paired,
    paired_check,
    render_markdown,
)

SMALL = ["--set", "dataset.n=500", "--set", "dataset.queries=20", "--set", "dataset.dim=8", "--set",
         "search.ef_search=[16]", "--set", "run.warmup_s=0.05", "--set", "run.duration_s=0.15", "--set",
         "run.min_operations=1"]


@pytest.fixture(scope="module")
def ab_run(tmp_path_factory, cache_dir):
    """One A/B run: arm B three times slower than arm A (fake-slow 300 us against 900 us)."""
    cwd = tmp_path_factory.mktemp("ab")
    p = bench("ab", "--backend", "fake-slow", "--workload", "ann-smoke", *SMALL, "--a-set",
              "backend.latency_us=300", "--b-set", "backend.latency_us=900", "--trials", "5", "--run-id", "ab1",
              cwd=cwd, cache_dir=cache_dir)
    assert p.returncode == 0, p.stderr
    return cwd, cwd / "results" / "ab1"


def test_ab_alternates_the_arms_trial_by_trial_into_one_run(ab_run):
    cwd, run = ab_run
    doc = json.loads((run / "ab.json").read_text())
    assert doc["status"] == "complete" and [a["name"] for a in doc["arms"]] == ["A", "B"]
    assert all(a["trials"] == 5 for a in doc["arms"])
    df = trials_frame([run])
    assert sorted(df["ab_arm"].unique()) == ["A", "B"]
    assert {(a, int(t)) for a, t in zip(df["ab_arm"], df["trial"], strict=True)} == {
        (a, t) for a in "AB" for t in range(5)}
    # the pairs alternate the order: A B, B A, A B, ... (ab.json keeps the sequence the trials ran in)
    seq = [x.split()[0] + x.split()[-1] for x in doc["sequence"]]
    assert seq == ["A0", "B0", "B1", "A1", "A2", "B2", "B3", "A3", "A4", "B4"]
    assert order(0) == (0, 1) and order(1) == (1, 0)


def test_regress_of_an_ab_run_tests_the_pairs_and_finds_the_slower_arm(ab_run, cache_dir):
    cwd, run = ab_run
    p = bench("regress", "--candidate", str(run), cwd=cwd, cache_dir=cache_dir)
    assert p.returncode == 1, p.stdout + p.stderr
    assert p.stdout.startswith("regression: fake-slow"), p.stdout  # the answer first
    assert any(ln.startswith("regression: fake-slow") and " P50 +" in ln for ln in p.stdout.splitlines())
    p = bench("regress", "--candidate", str(run), "--format", "markdown", cwd=cwd, cache_dir=cache_dir)
    assert "**regression: fake-slow" in p.stdout and "5 pairs of interleaved trials" in p.stdout
    assert "interleaved A/B run" in p.stdout and "trimmed mean of 5 paired ratios" in p.stdout


def test_regress_without_a_baseline_refuses_a_run_that_is_not_ab(ab_run, cache_dir, tmp_path):
    cwd, run = ab_run
    one_arm = run.parent / "ab-one-arm"
    one_arm.mkdir()
    for f in run.glob("A.*"):
        (one_arm / f.name).write_bytes(f.read_bytes())
    p = bench("regress", "--candidate", str(one_arm), cwd=cwd, cache_dir=cache_dir)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "is not an A/B run" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_paired_check_needs_a_consistent_move_beyond_tolerance():
    rule = FigureRule(better="lower", relative=0.10)
    rng = np.random.default_rng(3)
    a = {t: 1000.0 * (1 + 0.05 * rng.standard_normal()) for t in range(6)}
    same = {t: v * (1 + 0.02 * rng.standard_normal()) for t, v in a.items()}
    slower = {t: v * 1.3 * (1 + 0.02 * rng.standard_normal()) for t, v in a.items()}
    k = {"backend": "x", "workload": "w", "op": "search"}
    assert paired_check(k, "p50_us", rule, a, same, 0.05).verdict == "within tolerance"
    c = paired_check(k, "p50_us", rule, a, slower, 0.05)
    assert c.verdict == "regression" and 0.25 < c.change < 0.35 and c.test == "paired"
    few = paired_check(k, "p50_us", rule, {0: 1.0, 1: 1.0}, {0: 2.0, 1: 2.0}, 0.05)
    assert few.verdict == "too few trials"


def test_a_regression_on_a_busier_host_is_unclear_with_the_reason(ab_run):
    _, run = ab_run
    df = trials_frame([run])
    cfg = RegressConfig()
    assert compare_paired(df, cfg).regressions  # the slower arm is found...
    busy = df.copy()
    b = busy["ab_arm"] == "B"
    busy.loc[b, "host_other_cores"] = busy.loc[~b, "host_other_cores"].mean() + 1.0
    res = compare_paired(busy, cfg)
    assert not res.regressions  # ...but not when its trials saw a busier machine
    unclear = [c for c in res.checks if c.figure == "p50_us"][0]
    assert unclear.verdict == "unclear" and "busier machine" in unclear.reason
    assert "busier machine" in render_markdown(res)
    assert compare_paired(busy, cfg.model_copy(update={"host": False})).regressions  # the rule can be off


def _sides(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Arm A as a stored baseline, arm B as the candidate (separate runs, no arms)."""
    a, b = df[df["ab_arm"] == "A"].copy(), df[df["ab_arm"] == "B"].copy()
    for side, rid in ((a, "base"), (b, "cand")):
        side["ab_arm"], side["run_id"] = None, rid
    return a, b


def _as_sentinel(rows: pd.DataFrame) -> pd.DataFrame:
    s = rows.copy()
    s["role"], s["workload"] = "sentinel", "sentinel"
    return s


def test_a_regression_the_sentinel_shows_too_is_the_machine(ab_run):
    _, run = ab_run
    a, b = _sides(trials_frame([run]))
    cfg = RegressConfig(figures={"p50_us": FigureRule(better="lower", relative=0.10, run_sd=0.05)})
    # the sentinel did not move: the engine regressed
    still = compare_frames(pd.concat([a, _as_sentinel(a)]), pd.concat([b, _as_sentinel(a)]), cfg)
    assert [c.figure for c in still.regressions] == ["p50_us"] and len(still.sentinel) == 1
    assert all(c.key.get("role") is None for c in still.checks)  # sentinel rows never mixed in
    # the sentinel moved as much: the machine
    moved = compare_frames(pd.concat([a, _as_sentinel(a)]), pd.concat([b, _as_sentinel(b)]), cfg)
    assert not moved.regressions
    c = moved.checks[0]
    assert c.verdict == "unclear" and "the sentinel moved" in c.reason and "the machine" in c.reason
    assert "### sentinel" in render_markdown(moved)
    off = compare_frames(pd.concat([a, _as_sentinel(a)]), pd.concat([b, _as_sentinel(b)]),
                         cfg.model_copy(update={"sentinel": False}))
    assert off.regressions


def test_a_suite_records_the_sentinel_first_in_its_own_rows(tmp_path, cache_dir):
    suite = tmp_path / "s.toml"
    suite.write_text('name = "s"\nbackends = ["null"]\nworkloads = ["ann-smoke"]\ntrials = 3\nsentinel = true\n'
                     'set = ["dataset.n=500", "dataset.queries=20", "dataset.dim=8", "search.ef_search=[16]", '
                     '"run.warmup_s=0.05", "run.duration_s=0.1"]\n')
    p = bench("suite", str(suite), "--run-id", "s1", "--quiet", cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 0, p.stdout + p.stderr
    run = tmp_path / "results" / "s1"
    cells = json.loads((run / "suite.json").read_text())["cells"]
    assert [(c["backend"], c["workload"], c["role"]) for c in cells] == [
        ("null", "sentinel", "sentinel"), ("faiss", "sentinel", "sentinel"), ("null", "ann-smoke", None)]
    df = trials_frame([run])
    s = df[df["role"] == "sentinel"]
    assert set(s["backend"]) == {"null", "faiss"} and set(s["workload"]) == {"sentinel"}
    assert set(s["dataset_n"]) == {2000}  # fixed: the suite's overrides do not reach it
    assert df[df["role"].isna()]["workload"].unique().tolist() == ["ann-smoke"]
    res = compare_frames(df, df, RegressConfig())
    assert {c.key["backend"] for c in res.sentinel} == {"null", "faiss"}
    assert {c.key["workload"] for c in res.checks} == {"ann-smoke"}


def test_an_ab_run_of_one_trial_is_refused_before_anything_is_written(tmp_path):
    from bench.ab import Arm, run_ab
    from bench.errors import UserError

    with pytest.raises(UserError, match="pairs trials"):
        run_ab("ann-smoke", [Arm("A", "null"), Arm("B", "null")], trials=1, results_dir=tmp_path / "results")
    assert not (tmp_path / "results").exists()


def test_one_pair_hit_by_a_burst_neither_hides_a_slowdown_nor_swings_the_change():
    # ten pairs, arm B 30% slower; in two pairs a burst of load made A's trial three and two times slower (the
    # pairs' ratios fall to 0.43 and 0.65): the trimmed test still finds the move, and the change stays near +30%
    # where the mean log ratio would say otherwise
    rule = FigureRule(better="lower", relative=0.10)
    rng = np.random.default_rng(7)
    a = {t: 1000.0 * (1 + 0.03 * rng.standard_normal()) for t in range(10)}
    b = {t: v * 1.3 * (1 + 0.03 * rng.standard_normal()) for t, v in a.items()}
    a[3] *= 3.0
    a[8] *= 2.0
    k = {"backend": "x", "workload": "w", "op": "search"}
    c = paired_check(k, "p50_us", rule, a, b, 0.05)
    assert c.verdict == "regression" and c.p < 1e-4 and 0.25 < c.change < 0.35, (c.p, c.change)
    d = np.log(np.array([b[t] / a[t] for t in range(10)]))
    assert abs(np.expm1(d.mean()) - 0.3) > 0.03  # what an untrimmed mean would have reported
    # the same ten pairs with no slowdown, one burst pair included, are not a regression
    same = {t: v * (1 + 0.03 * rng.standard_normal()) for t, v in a.items()}
    same[5] *= 3.0
    assert paired_check(k, "p50_us", rule, a, same, 0.05).verdict != "regression"


def test_a_busy_run_stays_out_of_a_rolling_baseline(ab_run, cache_dir, tmp_path):
    cwd, run = ab_run
    bdir = tmp_path / "baselines"
    for name, busy in (("busy-run", lambda t: t % 2 == 0), ("quiet-run", lambda t: False)):  # 3 of 5 busy, or none
        shutil.copytree(run, tmp_path / name)
        for f in (tmp_path / name).glob("*trials.parquet"):
            df = pd.read_parquet(f)
            df["host_busy"] = [busy(t) for t in df["trial"]]
            df.to_parquet(f)
            f.with_name(f.name + ".sha256").unlink()  # edited by hand: no checksum, as files before them
    p = bench("baseline", "save", str(tmp_path / "busy-run"), "--name", "rolling", "--append", "--keep", "5",
              "--skip-busy", "--baselines-dir", str(bdir), cwd=cwd, cache_dir=cache_dir)
    assert p.returncode == 0, p.stderr
    assert "left as it was" in p.stdout and "6/10 trials busy" in p.stdout and not (bdir / "rolling").exists()
    p = bench("baseline", "save", str(tmp_path / "quiet-run"), "--name", "rolling", "--append", "--keep", "5",
              "--skip-busy", "--baselines-dir", str(bdir), cwd=cwd, cache_dir=cache_dir)
    assert p.returncode == 0 and (bdir / "rolling" / "quiet-run").is_dir(), p.stdout + p.stderr


def _slower_harness(where) -> tuple[str, str]:
    """A bench checkout of HEAD plus one commit that makes the harness slower: fake-slow's every operation sleeps
    its service time three times (a harness change, not an engine's). Returns (folder, HEAD's commit)."""
    import subprocess

    from bench.spec import REPO_ROOT

    def git(*a: str, cwd=where) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *a], cwd=cwd,
                              check=True, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "HEAD", cwd=REPO_ROOT)
    git("clone", "--quiet", "--shared", str(REPO_ROOT), str(where), cwd=REPO_ROOT)
    f = where / "bench" / "backends" / "fake_slow.py"
    text = f.read_text()
    assert text.count("time.sleep(o.latency_us / 1e6)") == 1
    f.write_text(text.replace("time.sleep(o.latency_us / 1e6)", "time.sleep(3 * o.latency_us / 1e6)"))
    git("commit", "--quiet", "-am", "fake-slow: three times the service time")
    return str(where), head


def test_two_harness_commits_alternate_and_regress_finds_the_slower_one(tmp_path, cache_dir):
    slower, head = _slower_harness(tmp_path / "slower")
    p = bench("ab", "--backend", "fake-slow", "--workload", "ann-smoke", *SMALL, "--set", "backend.latency_us=300",
              "--a-harness", "HEAD", "--b-harness", slower, "--trials", "5", "--run-id", "h1", cwd=tmp_path,
              cache_dir=cache_dir)
    assert p.returncode == 0, p.stdout + p.stderr
    run = tmp_path / "results" / "h1"
    doc = json.loads((run / "ab.json").read_text())
    arms = {a["name"]: a for a in doc["arms"]}
    assert arms["A"]["harness_commit"] == head and arms["B"]["harness_commit"] not in (None, head)
    assert arms["A"]["harness_path"] == str(cache_dir / "harness" / head)
    seq = [x.split()[0] + x.split()[-1] for x in doc["sequence"]]
    assert seq == ["A0", "B0", "B1", "A1", "A2", "B2", "B3", "A3", "A4", "B4"]
    df = trials_frame([run])
    # each arm's rows were written by its own harness: they carry its commit
    assert {a: set(df[df["ab_arm"] == a]["git_commit"]) for a in "AB"} == {
        "A": {head}, "B": {arms["B"]["harness_commit"]}}
    p = bench("regress", "--candidate", str(run), "--format", "markdown", cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "**regression: fake-slow" in p.stdout and "5 pairs of interleaved trials" in p.stdout


def test_a_bad_or_too_old_harness_is_one_sentence(tmp_path, cache_dir):
    p = bench("ab", "--backend", "null", "--workload", "ann-smoke", *SMALL, "--trials", "2", "--a-harness",
              "no-such-revision", cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "--a-harness no-such-revision is neither a folder nor a revision" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and not (tmp_path / "results").exists()
    old = tmp_path / "old"  # a harness from before `bench ab`: no stepwise in its runner
    (old / "bench").mkdir(parents=True)
    (old / "bench" / "__init__.py").write_text("")
    (old / "bench" / "runner.py").write_text("def run(req):\n    pass\n")
    p = bench("ab", "--backend", "null", "--workload", "ann-smoke", *SMALL, "--trials", "2", "--b-harness",
              str(old), cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "it predates `bench ab`" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "results").exists()
