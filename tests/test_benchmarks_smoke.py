"""Every script in benchmarks/ runs end to end with --smoke (a tiny size, seconds): a benchmark that no longer runs
fails here, not on the day someone needs its figure. Only that it runs is checked: figures at that size mean
nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p.name for p in (REPO / "benchmarks").glob("*.py") if not p.name.startswith("_"))


def test_every_benchmark_script_is_here():
    assert len(SCRIPTS) >= 18, SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_with_smoke(script, tmp_path, cache_dir):
    if script == "ray_overhead.py":
        from bench.load import ray_netns

        why = ray_netns.usable()
        if why:  # as tests/test_ray_cluster.py: a namespaced Ray cluster needs root and ip netns
            pytest.skip(f"a namespaced Ray cluster cannot run here: {why}")
    env = {**os.environ, "PYTHONPATH": str(REPO), "BENCH_CACHE_DIR": str(cache_dir)}
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), "--smoke"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"{script} --smoke exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    assert p.stdout.strip(), f"{script} --smoke printed nothing"
