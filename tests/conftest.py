import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = [sys.executable, "-m", "bench.cli"]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One dataset cache for the whole session (generated data and ground truth are reused)."""
    return tmp_path_factory.mktemp("bench-cache")


@pytest.fixture
def bench_cli(cache_dir, tmp_path):
    """Run the real `bench` command line in a subprocess; returns CompletedProcess."""

    def run(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
        e = {**os.environ, "BENCH_CACHE_DIR": str(cache_dir), **(env or {})}
        return subprocess.run([*BENCH, *args], capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=e)

    return run
