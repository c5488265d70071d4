"""A full disk, on a real small file system: a tmpfs mounted for the test (needs root, as CI
runs; a non-root run skips, saying so).

- Before the run: the results need more room than the disk has -> one sentence naming the folder, the sizes and
  the fix, exit 2, no run folder made.
- During the run: the disk fills up after trial 0 (another process takes every free byte): the next write fails
  with ENOSPC, and the run ends in one sentence (exit 2, no traceback), with run.json saying "failed" and the
  trials written so far readable, thanks to the reserve the run held for its last writes (and then removed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI runs as root)")

RUN = ["run", "--backend", "null", "--workload", "ann-smoke", "--set", "dataset.n=500", "--set", "dataset.dim=16",
       "--set", "dataset.queries=50", "--set", "search.ef_search=[16]", "--set", "run.warmup_s=0",
       "--set", "run.min_operations=1", "--quiet"]


@pytest.fixture
def disk(tmp_path):
    """A 3 MiB tmpfs at tmp_path/disk, unmounted afterwards."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _bench(args: list[str], cwd: Path, cache_dir: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "BENCH_CACHE_DIR": str(cache_dir)}
    return subprocess.Popen([sys.executable, "-m", "bench.cli", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_a_run_that_cannot_fit_is_refused_before_it_starts(disk, tmp_path, cache_dir):
    proc = _bench([*RUN, "--results-dir", str(disk / "results"), "--trials", "1000",
                   "--set", "run.min_operations=5000"], tmp_path, cache_dir)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: The run needs about"), err
    assert str(disk / "results") in err and "MiB is free there" in err and "--results-dir" in err
    assert not (disk / "results").exists() or not list((disk / "results").iterdir())


def _fill(folder: Path) -> int:
    """Take every free byte of folder's file system (as another process on a shared disk would); return how many
    were taken."""
    taken, size = 0, 1 << 16
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while size:
            try:
                taken += os.write(fd, b"\xff" * size)
            except OSError:
                size //= 2  # the disk is full for this size: try smaller pieces, down to one byte
    finally:
        os.close(fd)
    return taken


def test_the_disk_filling_up_mid_run_ends_it_failed_with_what_was_written_kept(disk, tmp_path, cache_dir):
    results = disk / "results"
    proc = _bench([*RUN, "--results-dir", str(results), "--trials", "20", "--set", "run.duration_s=0.3"],
                  tmp_path, cache_dir)
    deadline = time.monotonic() + 120
    while not list(results.glob("*/trials.parquet")):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no trial written in 120 s"
        time.sleep(0.05)
    assert list(results.glob("*/.reserve")), "the run holds a reserve while it runs"
    assert _fill(disk) > 0
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err[-2000:]
    assert "Traceback" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0], err
    (run_dir,) = list(results.iterdir())
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "failed"
    trials = pq.read_table(run_dir / "trials.parquet").to_pylist()
    assert trials and all(r["run_status"] == "failed" for r in trials)
    assert run["rows"]["trials"] == len(trials)
    assert not (run_dir / ".reserve").exists()
    assert not list(run_dir.glob("**/*.tmp*")), "a half-written temporary file was left"


def test_baseline_save_onto_a_full_disk_names_the_destination(disk, tmp_path, cache_dir):
    """Issue 26, case C: the run is on a roomy disk, the baselines folder on a full one: one sentence naming the
    baseline and its folder (not the source run's file), exit 2, no baseline and no temporary folder left."""
    proc = _bench([*RUN, "--run-id", "src", "--trials", "1"], tmp_path, cache_dir)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    baselines = disk / "baselines"
    baselines.mkdir()
    _fill(disk)
    proc = _bench(["baseline", "save", "src", "--name", "main", "--baselines-dir", str(baselines)], tmp_path,
                  cache_dir)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: Cannot write the baseline 'main' in {baselines} ("), err
    assert "src" not in lines[0].split("(")[0] and "--baselines-dir" in lines[0]
    assert [p.name for p in baselines.iterdir()] == []
