import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Modules whose assertions depend on the machine's timing or load (pacing, stalls, busy-host detection, kill and
# freeze points, restart times) or that kill and restart servers: scripts/test.sh runs them one at a time after
# the rest, which runs on three pytest workers (pytest-xdist), so the rest's parallel load never reaches them.
SERIAL_MODULES = {
    "test_trust", "test_openloop", "test_driver", "test_server_faults", "test_timeouts",
    "test_signals", "test_faults", "test_resources", "test_report_prometheus",
    "test_disk_full", "test_datasets_fetch", "test_streaming",
    "test_searchable", "test_ray_cluster", "test_fault_node", "test_replica_faults", "test_phase_faults",
    "test_server_identity",
}
# Not here, though they kill or load things: test_soak (its kill points are drawn in time, but what it checks after
# each kill, files whole and statuses honest, holds wherever a kill lands), test_capacity (stops at a memory cap or a
# vector count, not a time). A module with only a few timed tests marks those alone `@pytest.mark.serial`
# (test_load_recipes' Milvus latency check, test_regress's verdicts on timed fake-slow runs).


# The longest modules first (seconds of a full run on three pytest-xdist workers, --dist loadfile hands out whole
# modules in collection order): collected alphabetically, test_readme.py (the README's every command, then the
# report in a browser) started last and ran alone for minutes at the end of the parallel part.
LONGEST_FIRST = ["test_readme", "test_benchmarks_smoke", "test_quantized", "test_ycsb_e2e", "test_regress", "test_import", "test_robustness",
                 "test_report", "test_soak", "test_hybrid", "test_multivector", "test_compare", "test_scenarios",
                 "test_ycsb_filtered", "test_conformance", "test_suite", "test_bad_input", "test_run_e2e"]


def pytest_collection_modifyitems(config, items):
    def module(item) -> str:
        return item.module.__name__.rsplit(".", 1)[-1]

    for item in items:
        if module(item) in SERIAL_MODULES:
            item.add_marker(pytest.mark.serial)
    rank = {m: i for i, m in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda it: rank.get(module(it), len(rank)))  # stable: in-module order kept
BENCH = [sys.executable, "-m", "bench.cli"]


@pytest.fixture
def private_server():
    """Start private servers for one test: `private_server("pgvector")`; each is stopped after the test. A server
    that cannot start fails the test under BENCH_REQUIRE_SERVERS, else skips it (tests/backend_options.py)."""
    from backend_options import start_private_server

    started = []

    def start(kind: str):
        srv = start_private_server(kind)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


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
