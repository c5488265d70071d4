"""One writer per folder: a suite folder is locked by the process working in it, so a second
`bench suite --resume` of it is refused in one sentence naming the pid, and the first one ends as it would have
alone; concurrent `bench baseline save --append` into one baseline keep every run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from analysis_helpers import TINY, bench, real_run


def test_a_second_resume_of_a_suite_in_progress_is_refused_naming_the_pid(tmp_path, cache_dir):
    path = tmp_path / "slow.toml"
    sets = [s for s in TINY if "=" in s] + ["run.duration_s=1", "search.ef_search=[64]"]
    path.write_text(f'name = "slow"\nbackends = ["fake-slow", "null"]\nworkloads = ["ann-smoke"]\ntrials = 2\n'
                    f'set = {json.dumps(sets)}\n')
    env = {**os.environ, "BENCH_CACHE_DIR": str(cache_dir)}
    first = subprocess.Popen([sys.executable, "-m", "bench.cli", "suite", str(path), "--run-id", "s", "--quiet"],
                             cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    folder = tmp_path / "results" / "s"
    deadline = time.monotonic() + 120
    while not (folder / "fake-slow.ann-smoke.trials.parquet").exists():  # the first cell is measuring
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()[1][-2000:]
        time.sleep(0.05)
    p = bench("suite", str(path), "--resume", "s", "--quiet", cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines() == [
        f"error: The suite folder {os.path.join('results', 's')} is in use by another bench process (pid "
        f"{first.pid}); wait until it ends (or stop it), then resume."]
    out, err = first.communicate(timeout=180)
    assert first.returncode == 0, err[-2000:]
    doc = json.loads((folder / "suite.json").read_text())
    assert doc["status"] == "complete" and [c["status"] for c in doc["cells"]] == ["complete", "complete"]
    assert not (folder / ".bench.pid").exists()
    p = bench("suite", str(path), "--resume", "s", "--quiet", cwd=tmp_path, cache_dir=cache_dir)  # free again
    assert p.returncode == 0, p.stderr


def test_concurrent_baseline_appends_keep_every_run(tmp_path, cache_dir):
    first = real_run(tmp_path, cache_dir, "null", run_id="r0")
    runs = [first] + [Path(shutil.copytree(first, first.with_name(f"r{i}"))) for i in (1, 2)]  # three run folders
    env = {**os.environ, "BENCH_CACHE_DIR": str(cache_dir)}
    procs = [subprocess.Popen([sys.executable, "-m", "bench.cli", "baseline", "save", str(r), "--name", "nightly",
                               "--append"], cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for r in runs]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    note = json.loads((tmp_path / "baselines" / "nightly" / "baseline.json").read_text())
    assert sorted(e["folder"] for e in note["runs"]) == ["r0", "r1", "r2"]
    assert all((tmp_path / "baselines" / "nightly" / f"r{i}" / "trials.parquet").is_file() for i in range(3))
