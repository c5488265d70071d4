"""Status equals outcome: a run whose trial failed is `partial` in run.json, in its rows and in
suite.json, the exit code agrees, `bench baseline save` refuses it unless --allow-incomplete, and `bench regress`
names the failed trial on either side.

The failed trial is real: fake-slow stalls once (2.5 s) inside trial 1 of three 0.3 s trials, which then runs
past its duration by more than run.phase_margin_s (1 s) and fails; the other trials are ok."""

from __future__ import annotations

import json
import re

import pyarrow.parquet as pq
import pytest
from analysis_helpers import TINY, bench

STALL = ["--set", "search.ef_search=[64]", "--set", "run.duration_s=0.3", "--trials", "3",
         "--set", "backend.stall_after_s=0.6", "--set", "backend.stall_s=2.5", "--set", "run.phase_margin_s=1"]


@pytest.fixture(scope="module")
def partial_run(tmp_path_factory, cache_dir):
    cwd = tmp_path_factory.mktemp("partial")
    p = bench("run", "--backend", "fake-slow", "--workload", "ann-smoke", *TINY, *STALL, "--run-id", "part",
              cwd=cwd, cache_dir=cache_dir)
    return cwd, p


def test_a_run_with_a_failed_trial_is_partial_and_exits_1(partial_run):
    cwd, p = partial_run
    assert p.returncode == 1, p.stderr[-2000:]
    assert "1 trial rows failed" in p.stderr
    run = json.loads((cwd / "results" / "part" / "run.json").read_text())
    assert run["status"] == "partial"
    rows = pq.read_table(cwd / "results" / "part" / "trials.parquet").to_pylist()
    assert sorted(r["status"] for r in rows) == ["failed", "ok", "ok"]
    assert {r["run_status"] for r in rows} == {"partial"}


def test_baseline_save_refuses_a_partial_run_unless_allowed(partial_run, cache_dir):
    cwd, _ = partial_run
    p = bench("baseline", "save", "part", "--name", "b", cwd=cwd, cache_dir=cache_dir)
    assert p.returncode == 2, p.stderr
    assert "part (partial: 1 failed trial row(s))" in p.stderr and "--allow-incomplete" in p.stderr
    assert not (cwd / "baselines" / "b").exists()
    p = bench("baseline", "save", "part", "--name", "b", "--allow-incomplete", cwd=cwd, cache_dir=cache_dir)
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("side", ["baseline", "candidate"])
def test_regress_names_the_failed_trial_on_either_side(partial_run, cache_dir, side):
    cwd, _ = partial_run
    other = cwd / "results" / "part"
    args = ["--baseline", str(other), "--candidate", str(other)]
    p = bench("regress", *args, cwd=cwd, cache_dir=cache_dir)
    assert p.returncode == 2 and "partial: 1 failed trial row(s)" in p.stderr, p.stderr
    p = bench("regress", *args, "--allow-incomplete", cwd=cwd, cache_dir=cache_dir)
    assert p.returncode == 0, p.stderr
    note = next(line for line in p.stdout.splitlines() if f"the {side} holds 1 failed trial(s)" in line)
    assert "left out of the verdict" in note and re.search(r"trial \d \(the trial took", note)


def test_a_suite_with_a_partial_cell_is_partial_and_exits_1(tmp_path, cache_dir):
    path = tmp_path / "one.toml"
    sets = ", ".join(json.dumps(s) for s in [*TINY, *STALL] if "=" in s)
    path.write_text(f'name = "one"\nbackends = ["fake-slow"]\nworkloads = ["ann-smoke"]\ntrials = 3\nset = [{sets}]\n')
    p = bench("suite", str(path), "--run-id", "s1", "--quiet", cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 1, p.stderr[-2000:]
    doc = json.loads((tmp_path / "results" / "s1" / "suite.json").read_text())
    assert doc["status"] == "partial" and [c["status"] for c in doc["cells"]] == ["partial"]
    assert "suite partial" in p.stdout
