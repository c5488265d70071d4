"""kind = "streaming" through `bench run`: the idle baseline, open-loop ingest at each rate on a fresh collection,
rows per stage of ingest progress, recall against what was acknowledged when each search started, the knee; and
the sentences it refuses with."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from backend_options import server_options

from bench.analysis.compare import compare, render
from bench.analysis.report import build
from bench.errors import UserError
from bench.metrics.scoring import Kept
from bench.run_context import RunRequest, check
from bench.scenarios.streaming import NEVER, knee_of, recall_growing, stage_ends

TINY = ["--workload", "streaming", "--set", "dataset.source=\"synthetic\"", "--set", "dataset.dim=32",
        "--set", "dataset.n=400", "--set", "dataset.queries=40", "--set", "index.ef_construction=32",
        "--set", "streaming.idle_s=0.3", "--set", "streaming.stages=5", "--set", "run.warmup_s=0",
        "--set", "run.recall_sample_every=1", "--quiet", "--json"]


def _rows(tmp_path: Path, out: dict, name: str = "trials.parquet") -> list[dict]:
    return pq.read_table(tmp_path / out["results"] / name).to_pylist()


def _check_streaming(tmp_path: Path, p, rates: list[float]) -> list[dict]:
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    trials = _rows(tmp_path, out)
    idle = [r for r in trials if r["ingest_rate"] == 0]
    assert [r["op"] for r in idle] == ["search"] and idle[0]["recall"] > 0.5 and idle[0]["count"] > 0
    for rate in rates:
        mine = [r for r in trials if r["ingest_rate"] == rate]
        whole = {r["op"]: r for r in mine if r["ingest_stage"] is None}
        assert set(whole) == {"search", "insert"}
        assert whole["insert"]["count"] == 36  # 360 streamed rows in batches of 10, every one acknowledged
        assert whole["insert"]["hdr"] and whole["insert"]["p50_us"] > 0  # the insert latency histogram
        assert 0 < whole["search"]["ingest_achieved"] <= rate * 1.1
        stages = sorted(r["ingest_stage"] for r in mine if r["op"] == "insert" and r["ingest_stage"] is not None)
        assert stages == [20, 40, 60, 80, 100]
        assert sum(r["count"] for r in mine if r["op"] == "insert" and r["ingest_stage"]) <= 36
        recalls = [r["recall"] for r in mine if r["op"] == "search" and r["recall"] is not None]
        assert recalls and all(0 <= x <= 1 for x in recalls)
    run = json.loads((tmp_path / out["results"] / "run.json").read_text())
    assert "streaming_knee" in run and run["workload"]["streaming"]["rates"] == rates
    return trials


def test_streaming_on_qdrant_edge(bench_cli, tmp_path):
    p = bench_cli("run", "--backend", "qdrant-edge", *TINY, "--set", "streaming.rates=[1000.0]")
    trials = _check_streaming(tmp_path, p, [1000.0])
    summary = _rows(tmp_path, json.loads(p.stdout), "summary.parquet")
    assert {r["ingest_stage"] for r in summary if r["ingest_rate"] == 1000} == {None, 20, 40, 60, 80, 100}
    assert len(trials) == len(summary)  # one trial per configuration
    run_dir = tmp_path / json.loads(p.stdout)["results"]
    text = render(compare([run_dir]), "markdown")  # compare: a line per stage, the knee under the table
    assert "ingest=1,000/s at 20%" in text and "ingest/s" in text and "knee, qdrant-edge" in text
    rep = build([run_dir], tmp_path / "report")  # report: the chart against ingest progress
    assert any(p.name.startswith("streaming-") for p in rep.pictures)


@pytest.mark.server
def test_streaming_on_pgvector(bench_cli, tmp_path):
    server_options("pgvector")
    p = bench_cli("run", "--backend", "pgvector", *TINY, "--set", "streaming.rates=[1000.0]")
    _check_streaming(tmp_path, p, [1000.0])


def test_streaming_refusals(bench_cli):
    with pytest.raises(UserError, match="sweeps its own ingest rates"):
        check(RunRequest("qdrant-edge", "streaming", rate_sweep=True))
    with pytest.raises(UserError, match="initial_fraction 0.001 of dataset.n 4000 loads 4 rows"):
        check(RunRequest("qdrant-edge", "streaming", ["streaming.initial_fraction=0.001"]))
    with pytest.raises(UserError, match="missing key 'streaming.rates'"):
        check(RunRequest("qdrant-edge", "ann-smoke", ["kind=\"streaming\""]))
    p = bench_cli("run", "--backend", "qdrant-edge", *TINY, "--set", "streaming.rates=[0]")  # one sentence, exit 2
    assert p.returncode == 2 and "streaming.rates" in p.stderr and "Traceback" not in p.stderr


class _DS:
    metric = "l2"

    def __init__(self) -> None:
        self.base = np.array([[0.0], [1.0], [2.0], [3.0]], dtype=np.float32)
        self.queries = np.array([[0.0]], dtype=np.float32)


def test_recall_is_against_what_was_acknowledged_when_the_search_started():
    ds = _DS()
    acked = np.array([0, 0, 100, NEVER], dtype=np.int64)  # rows 0, 1 loaded; row 2 acked at t=100; row 3 never
    found = np.array([[0, 1], [0, 1], [0, 2]], dtype=np.int64)
    kept = Kept(np.zeros(3, np.int64), found, np.array([50, 150, 150]), np.zeros(3, bool))
    # at t=50 the top-2 of what was acked is {0, 1}; at t=150 it is still {0, 1} (row 2 is farther than row 1)
    assert recall_growing(kept, acked, ds, 2).tolist() == [1.0, 1.0, 0.5]
    acked = np.array([NEVER, 0, 100, 0], dtype=np.int64)  # row 0 never acked: at t=50 the truth is {1, 3}
    assert recall_growing(kept, acked, ds, 2).tolist()[0] == 0.5


def test_stage_ends_and_the_knee():
    t = np.arange(1, 11, dtype=np.int64) * 10
    assert stage_ends(t, 10, 5) == [20, 40, 60, 80, 100]
    assert stage_ends(t[:7], 10, 5)[-2:] == [float("inf"), float("inf")]
    row = {"op": "search", "ingest_stage": None}
    summary = [{**row, "ingest_rate": 0.0, "p99_us": 100.0},
               {**row, "ingest_rate": 100.0, "p99_us": 150.0, "ingest_achieved": 99.0},
               {**row, "ingest_rate": 200.0, "p99_us": 190.0, "ingest_achieved": 150.0},  # did not keep up
               {**row, "ingest_rate": 300.0, "p99_us": 250.0, "ingest_achieved": 300.0}]  # P99 beyond 2x idle
    assert knee_of(summary, 2.0)["ingest_rate"] == 100.0
    assert knee_of(summary, 3.0)["ingest_rate"] == 300.0
    assert knee_of(summary[1:], 2.0) is None  # no idle baseline, no knee
    nan = [{**r, "ingest_stage": float("nan")} for r in summary]  # nulls as a pandas frame has them
    assert knee_of(nan, 2.0)["ingest_rate"] == 100.0
