"""Scenarios combine: filtered + multi-vector, filtered + hybrid, and the rate sweep with each, end to end on
qdrant-edge; an engine that cannot run a combination is refused with one sentence. Plus the structural checks
that keep the shape: the runner names no workload feature, and no function in bench/ passes 60 lines."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from analysis_helpers import bench

from bench.spec import REPO_ROOT

BASE = """
name = "{name}"
kind = "ann"
[dataset]
n = 1500
queries = 30
dim = 32
[search]
ef_search = [64]
[run]
min_operations = 1
trials = 1
warmup_s = 0.05
"""
TABLES = {
    "filter": "[filter]\nselectivities = [0.2]\n",
    "multivector": "[multivector]\nvectors = { text = 32, image = 16 }\n",
    "hybrid": "[hybrid]\nfusion = [\"rrf\"]\n",
}


def _workload(tmp_path: Path, *features: str) -> Path:
    name = "combo-" + "-".join(features)
    path = tmp_path / f"{name}.toml"
    path.write_text(BASE.format(name=name) + "".join(TABLES[f] for f in features))
    return path


def _run(tmp_path, cache_dir, backend, wl, *extra):
    p = bench("run", "--backend", backend, "--workload", str(wl), "--json", *extra, cwd=tmp_path, cache_dir=cache_dir)
    return p


@pytest.mark.parametrize("features, axes", [
    (("filter", "multivector"), {("sel_20=1", "text"), ("sel_20=1", "image")}),
    (("filter", "hybrid"), {("sel_20=1", "rrf")}),
])
def test_features_combine_on_qdrant_edge(tmp_path, cache_dir, features, axes):
    p = _run(tmp_path, cache_dir, "qdrant-edge", _workload(tmp_path, *features))
    assert p.returncode == 0, p.stderr[-3000:]
    run = tmp_path / json.loads(p.stdout)["results"]
    rows = pq.read_table(run / "trials.parquet").to_pylist()
    second = "vector_name" if "multivector" in features else "fusion"
    assert {(r["filter"], r[second]) for r in rows} == axes
    # scored against the exact reference of that very combination: against another (the unfiltered top-k, or the
    # other vector's) recall would sit near the selectivity, 0.2; qdrant-edge's graph, built on every thread, gives
    # 0.66-1.0 here from build to build on a loaded machine
    for r in rows:
        assert r["status"] == "ok" and r["recall"] >= 0.5, (r["filter"], r[second], r["recall"])


@pytest.mark.parametrize("features", [("filter",), ("multivector",), ("hybrid",)])
def test_rate_sweep_runs_with_every_feature(tmp_path, cache_dir, features):
    p = _run(tmp_path, cache_dir, "qdrant-edge", _workload(tmp_path, *features), "--rate-sweep")
    assert p.returncode in (0, 1), p.stderr[-3000:]  # 1: a sweep point past the knee may fail
    run = tmp_path / json.loads(p.stdout)["results"]
    rows = pq.read_table(run / "trials.parquet").to_pylist()
    by_variant: dict = {}
    for r in rows:
        by_variant.setdefault((r["filter"], r["vector_name"], r["fusion"]), set()).add(r["target_rate"])
    for rates in by_variant.values():  # each configuration: closed loop, then 8 rates offered from its own QPS
        assert None in rates and len(rates) == 9, rates
    assert json.loads((run / "run.json").read_text())["status"] == "complete"


@pytest.mark.parametrize("backend, features, words", [
    ("faiss", ("filter", "multivector"), "cannot store several named vectors"),
    ("faiss", ("filter",), "cannot push payload filters"),
    ("chroma", ("filter", "hybrid"), "cannot run hybrid"),
])
def test_an_engine_that_cannot_is_refused_in_one_sentence(tmp_path, cache_dir, backend, features, words):
    p = _run(tmp_path, cache_dir, backend, _workload(tmp_path, *features))
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert words in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "results").exists()  # refused before anything was written


FEATURE_WORDS = re.compile(r"filter|hybrid|fusion|alpha|multivector|vector_name|selectiv|named vector", re.I)


def test_the_runner_names_no_workload_feature():
    source = (REPO_ROOT / "bench" / "runner.py").read_text()
    code = [line for line in source.splitlines() if not line.lstrip().startswith("#")]
    hits = [line for line in code if FEATURE_WORDS.search(line)]
    assert not hits, hits


def test_no_function_in_bench_is_longer_than_60_lines():
    long = []
    for f in (REPO_ROOT / "bench").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 60:
                long.append(f"{f.relative_to(REPO_ROOT)}:{node.lineno} {node.name} "
                            f"({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long
