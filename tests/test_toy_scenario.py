"""A new kind of workload is one scenario file and its test: the toy scenario in toy_perturbed_scenario.py adds a
table, a result key and its own queries and reference without any edit to bench/, and combines with [filter]."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).parent
WORKLOAD = """
name = "toy-perturbed"
kind = "ann"
[dataset]
n = 2000
queries = 40
dim = 32
[search]
ef_search = [64]
[filter]
selectivities = [0.2]
[perturb]
sigma = [0.0, 0.3]
[run]
min_operations = 1
trials = 2
warmup_s = 0.1
"""


def _bench(*args: str, cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    code = "import toy_perturbed_scenario; from bench.cli import main; main()"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
           "BENCH_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


def test_toy_scenario_runs_end_to_end_combined_with_a_filter(tmp_path, cache_dir):
    (tmp_path / "toy.toml").write_text(WORKLOAD)
    p = _bench("run", "--backend", "qdrant-edge", "--workload", "toy.toml", "--json", cwd=tmp_path, cache=cache_dir)
    assert p.returncode == 0, p.stderr[-3000:]
    run = tmp_path / json.loads(p.stdout)["results"]
    trials = pq.read_table(run / "trials.parquet")
    assert "noise" in trials.schema.names  # its key became a column of the schema
    rows = trials.to_pylist()
    assert {(r["noise"], r["filter"]) for r in rows} == {(0.0, "sel_20=1"), (0.3, "sel_20=1")}
    assert all(r["status"] == "ok" and r["recall"] >= 0.8 for r in rows), [r["recall"] for r in rows]
    # each sigma was searched with its own queries: the kept ids differ between the two configurations
    from bench.metrics.scoring import Kept

    ids = {r["noise"]: Kept.load(run / r["ids_file"]) for r in rows if r["trial"] == 0}
    q0 = ids[0.0]
    q1 = ids[0.3]
    first0 = {int(q): tuple(i) for q, i in zip(q0.search_queries, q0.search_ids, strict=True)}
    first1 = {int(q): tuple(i) for q, i in zip(q1.search_queries, q1.search_ids, strict=True)}
    assert sum(first0[q] != first1[q] for q in first0) > len(first0) // 4
    # the labels and the compare table name the new axis without knowing it
    summary = json.loads(p.stdout)["summary"]
    assert sorted(r["noise"] for r in summary) == [0.0, 0.3]
    c = _bench("compare", str(run), "--format", "markdown", cwd=tmp_path, cache=cache_dir)
    assert c.returncode == 0 and "noise=0.3" in c.stdout and "noise=0 " in c.stdout.replace("|", " "), c.stdout
    # its figure: a column of both files (the summary with its spread), of compare's table, and a legend line
    summary_file = pq.read_table(run / "summary.parquet")
    assert {"noise_norm", "noise_norm_lo", "noise_norm_hi"} <= set(summary_file.schema.names)
    assert "noise_norm" in trials.schema.names and sorted(summary_file.column("noise_norm").to_pylist())[0] == 0.0
    assert "| noise norm |" in c.stdout
    t = _bench("compare", str(run), "--wide", cwd=tmp_path, cache=cache_dir)
    assert "noise norm = mean L2 norm" in t.stdout, t.stdout
    # its chart and caption: in the report, drawn by the function its Chart names
    r = _bench("report", str(run), "--out", "rep", cwd=tmp_path, cache=cache_dir)
    assert r.returncode == 0, r.stderr
    assert list((tmp_path / "rep").glob("noise-toy-perturbed-*.png"))
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "Toy: recall@k against the noise added to the queries" in page
    run_json = json.loads((run / "run.json").read_text())
    assert run_json["workload"]["perturb"] == {"sigma": [0.0, 0.3]}


def test_toy_scenario_table_is_validated_by_its_own_model(tmp_path, cache_dir):
    (tmp_path / "toy.toml").write_text(WORKLOAD.replace("sigma = [0.0, 0.3]", "sigma = 'lots'"))
    p = _bench("run", "--backend", "qdrant-edge", "--workload", "toy.toml", cwd=tmp_path, cache=cache_dir)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "perturb.sigma" in p.stderr


def test_without_the_scenario_its_table_is_an_unknown_key(tmp_path, cache_dir):
    from analysis_helpers import bench

    (tmp_path / "toy.toml").write_text(WORKLOAD)
    p = bench("run", "--backend", "qdrant-edge", "--workload", "toy.toml", cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "unknown key 'perturb'" in p.stderr
