"""`bench run --concurrency 1,2`: every configuration at each level in one run (a pool per level), rows and files
kept apart by level, and `bench report` draws QPS and P99 against concurrency from that one run. Also the
command-line checks of --concurrency / --workers-per-node, and how client CPU is judged per node on a cluster."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from analysis_helpers import TINY, bench

from bench.errors import UserError
from bench.results.trial import per_node_cpu
from bench.results.worker import WorkerResult


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, cache_dir):
    cwd = tmp_path_factory.mktemp("sweep")
    p = bench("run", "-b", "null", "-w", "ycsb-c", *TINY, "--concurrency", "1,2", "--trials", "2",
              "--set", "run.duration_s=0.3", "--json", cwd=cwd, cache_dir=cache_dir)
    assert p.returncode == 0, p.stderr[-3000:]
    return cwd, cwd / json.loads(p.stdout)["results"]


def test_a_sweep_measures_each_level_in_one_run(sweep):
    _, run = sweep
    rows = pq.read_table(run / "trials.parquet").to_pylist()
    assert sorted({(r["concurrency"], r["trial"]) for r in rows}) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert len({r["run_id"] for r in rows}) == 1 and all(r["status"] == "ok" for r in rows)
    summary = pq.read_table(run / "summary.parquet").to_pylist()
    assert sorted(r["concurrency"] for r in summary if r["op"] == "total") == [1, 2]
    logs = sorted(p.name for p in (run / "intervals").iterdir())
    assert any(".c1.t0" in n for n in logs) and any(".c2.t0" in n for n in logs), logs  # one file per level


def test_report_draws_qps_against_concurrency_from_one_sweep(sweep, cache_dir):
    cwd, run = sweep
    p = bench("report", str(run), "--out", str(cwd / "report"), cwd=cwd, cache_dir=cache_dir)
    assert p.returncode == 0, p.stderr
    (png,) = (cwd / "report").glob("concurrency-ycsb-c-*.png")  # named by workload and dataset
    assert png.stat().st_size > 10_000


@pytest.mark.parametrize("text, words", [
    ("1,two", "--concurrency '1,two' is not a whole number"),
    ("2,2", "must list different levels"),
    ("0", "each from 1 to 1024"),
    ("1,2000", "each from 1 to 1024"),
])
def test_bad_levels_are_refused(text, words):
    from bench.cli import _levels

    with pytest.raises(UserError, match=words):
        _levels(text)
    assert _levels("8") == [8] and _levels("1,2,4") == [1, 2, 4]


@pytest.mark.parametrize("args, words", [
    (["--concurrency", "1,two"], "--concurrency '1,two' is not a whole number"),
    (["--workers-per-node", "2"], "--workers-per-node needs --cluster"),
])
def test_bad_levels_are_one_sentence(tmp_path, cache_dir, args, words):
    p = bench("run", "-b", "null", "-w", "ann-smoke", *TINY, *args, "--results-dir", str(tmp_path / "r"),
              cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert words in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "r").exists()


def _worker(node: str, cpu_s: float, cpus: int = 2) -> WorkerResult:
    r = WorkerResult(worker=0, started_wall=0.0, ended_wall=1.0, cpu_s=cpu_s)
    r.extra.update(node=node, node_cpus=cpus)
    return r


def test_client_limited_is_judged_per_node():
    # two nodes of 2 cores: 0.6 + 0.6 cores on node a is below 90% of its 2 cores; no worker reached a core
    cores, limited = per_node_cpu([_worker("a", 0.6), _worker("a", 0.6), _worker("b", 0.2)], duration=1.0)
    assert cores == {"a": 1.2, "b": 0.2} and limited is False
    # one worker using a whole core limits its node, whatever the others do
    assert per_node_cpu([_worker("a", 0.95), _worker("b", 0.1)], duration=1.0)[1] is True
    # four workers at 0.5 core on one 2-core node use all of it: that node was the limit
    assert per_node_cpu([_worker("a", 0.5)] * 4 + [_worker("b", 0.1)], duration=1.0)[1] is True
