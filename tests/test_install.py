"""`pip install .` (not editable) gives a `bench` that finds its own workloads and configs from any directory,
while a user's own `workloads/` or `configs/` folder in the working directory wins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.spec import REPO_ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package built as a wheel and installed into a folder of its own (no dependencies: the venv has them)."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(REPO_ROOT),
                    "-w", str(tmp / "dist")], check=True, capture_output=True, timeout=300)
    wheel = next((tmp / "dist").glob("bench-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp / "site"),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    return tmp / "site"


def _bench(site: Path, cwd: Path, cache: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "BENCH_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def test_installed_bench_runs_a_shipped_workload_from_an_empty_directory(installed, tmp_path, cache_dir):
    probe = subprocess.run([sys.executable, "-c", "import bench, sys; print(bench.__file__)"], capture_output=True,
                           text=True, env={**os.environ, "PYTHONPATH": str(installed)}, cwd=tmp_path)
    assert probe.stdout.strip().startswith(str(installed)), probe.stdout  # the installed copy, not the checkout
    p = _bench(installed, tmp_path, cache_dir, "run", "--backend", "qdrant-edge", "--workload", "ann-smoke",
               "--set", "dataset.n=1000", "--set", "dataset.dim=16", "--set", "dataset.queries=20", "--set", "run.min_operations=1",
               "--trials", "1", "--quiet", "--json")
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout)
    assert (tmp_path / out["results"] / "trials.parquet").is_file()
    assert json.loads((tmp_path / out["results"] / "run.json").read_text())["backend_options"]["indexing_threshold_kb"]


def test_a_users_own_workloads_and_configs_folders_win(installed, tmp_path, cache_dir):
    (tmp_path / "workloads").mkdir()
    (tmp_path / "workloads" / "ann-smoke.toml").write_text(
        (REPO_ROOT / "workloads" / "ann-smoke.toml").read_text().replace('name = "ann-smoke"', 'name = "mine"'))
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "qdrant-edge.toml").write_text("indexing_threshold_kb = 7\n")
    p = _bench(installed, tmp_path, cache_dir, "run", "--backend", "qdrant-edge", "--workload", "ann-smoke",
               "--set", "dataset.n=1000", "--set", "dataset.dim=16", "--set", "dataset.queries=20", "--set", "run.min_operations=1",
               "--trials", "1", "--quiet", "--json")
    assert p.returncode == 0, p.stderr[-2000:]
    run = json.loads((tmp_path / json.loads(p.stdout)["results"] / "run.json").read_text())
    assert run["workload"]["name"] == "mine" and run["backend_options"]["indexing_threshold_kb"] == 7
