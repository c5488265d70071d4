"""SIGKILL the harness at random points of several runs, then read every result file that exists: each parquet
is readable and whole, each JSON parses (writes are atomic: a temporary file, fsync, then rename), and the rows
agree with each other (every trial has all its operation rows; the summary covers exactly the trials written).

The kill times are drawn from a fixed seed, spread from start-up through dataset generation, loading and the
trials, so the same points are hit on every CI run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow

SEED = 20240611
RUNS = 8
ARGS = ["run", "--backend", "null", "--workload", "ycsb-a", "--set", "dataset.n=3000", "--set", "dataset.dim=64",
        "--set", "dataset.queries=50", "--set", "run.min_operations=1", "--set", "dataset.holdout=500", "--set", "run.warmup_s=0",
        "--set", "run.duration_s=0.15", "--trials", "40", "--concurrency", "2", "--quiet"]


def _kill_run(tmp: Path, cache: Path, after_s: float) -> int | None:
    env = {**os.environ, "BENCH_CACHE_DIR": str(cache)}
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", *ARGS, "--results-dir", str(tmp / "results")],
                            cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + after_s
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    rc = proc.poll()
    if rc is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        return None
    return rc


def _check_run_dir(run_dir: Path) -> int:
    """Every file readable and consistent; returns how many trials were written."""
    for f in run_dir.rglob("*.json"):
        if not f.name.startswith("."):
            json.loads(f.read_text())
    run = json.loads((run_dir / "run.json").read_text())  # written first, before any trial
    assert run["status"] in ("running", "complete")  # SIGKILL leaves no chance to write "interrupted"
    trials_f, summary_f = run_dir / "trials.parquet", run_dir / "summary.parquet"
    for f in run_dir.rglob("*.parquet"):
        pq.read_table(f)  # readable: footer, schema and every row group intact
    if not trials_f.exists():
        assert not summary_f.exists()
        return 0
    trials = pq.read_table(trials_f).to_pylist()
    ops_per_trial: dict[int, set[str]] = {}
    for r in trials:
        ops_per_trial.setdefault(r["trial"], set()).add(r["op"])
        assert r["count"] > 0 and r["hdr"], r
    assert sorted(ops_per_trial) == list(range(len(ops_per_trial))), "trials are written in order, none missing"
    assert all(ops == {"read", "update", "total"} for ops in ops_per_trial.values())
    # summary.parquet is written right after trials.parquet: it covers the same trials or one fewer
    summary = {r["op"]: r for r in pq.read_table(summary_f).to_pylist()}
    assert set(summary) == {"read", "update", "total"}
    assert summary["total"]["n_trials"] in (len(ops_per_trial), len(ops_per_trial) - 1)
    return len(ops_per_trial)


def test_sigkill_at_random_points_leaves_only_whole_files(tmp_path):
    rng = np.random.default_rng(SEED)
    # the first runs generate the dataset in a fresh cache (kills may land in generation), the others reuse it
    shared_cache = tmp_path / "cache-shared"
    (tmp_path / "warm").mkdir()
    _kill_run(tmp_path / "warm", shared_cache, 120)  # complete run: fills the cache
    written, killed = [], 0
    for i in range(RUNS):
        cache = tmp_path / f"cache-{i}" if i < 2 else shared_cache
        work = tmp_path / f"run-{i}"
        work.mkdir()
        after = float(rng.uniform(0.5, 2.0) if i < 2 else rng.uniform(1.0, 6.0))
        rc = _kill_run(work, cache, after)
        killed += rc is None
        for run_dir in (work / "results").glob("*") if (work / "results").exists() else []:
            written.append(_check_run_dir(run_dir))
        if i < 2 and cache.exists():  # an interrupted generation leaves no file that passes for a finished one
            from bench.datasets import DatasetSpec, load

            spec = DatasetSpec(n=3000, dim=64, queries=50, holdout=500)
            ds = load(spec, cache, progress=False)
            fresh = load(spec, tmp_path / f"fresh-{i}", progress=False)
            assert ds.content_hash == fresh.content_hash
            assert np.array_equal(np.asarray(ds.base), np.asarray(fresh.base))
    assert killed >= RUNS - 1, "the kills should land before the runs finish"
    assert any(n > 0 for n in written), f"some kill should land after trials were written: {written}"
    warm = next((tmp_path / "warm" / "results").iterdir())
    assert _check_run_dir(warm) == 40
    assert json.loads((warm / "run.json").read_text())["status"] == "complete"
