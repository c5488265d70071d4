"""Helpers for the analysis tests (compare, report, regress, suite, notebook).

`real_run` makes results with the real `bench` command line (small datasets, a few seconds). `schema_run` writes
parquet with the results schema from given per-trial latencies; it is for inputs a real run cannot produce on
demand (a chosen spread, a corrupt file), never in place of a real run where one can be made.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.metrics import hdr
from bench.results.aggregate import summarize
from bench.results.schema import summary_schema, table, trials_schema
from bench.results.writer import write_json, write_parquet

BENCH = [sys.executable, "-m", "bench.cli"]
TINY = ["--set", "dataset.n=1000", "--set", "dataset.queries=40", "--set", "run.min_operations=1", "--set", "dataset.dim=16",
        "--set", "run.warmup_s=0.05", "--quiet"]


def bench(*args: str, cwd: Path, cache_dir: Path, timeout: float = 300, env: dict | None = None
          ) -> subprocess.CompletedProcess:
    e = {**os.environ, "BENCH_CACHE_DIR": str(cache_dir), **(env or {})}
    return subprocess.run([*BENCH, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=e)


def real_run(cwd: Path, cache_dir: Path, backend: str, *extra: str, run_id: str | None = None,
             workload: str = "ann-smoke") -> Path:
    """One real `bench run`; returns its run folder."""
    args = ["run", "--backend", backend, "--workload", workload, *TINY, *extra, "--json"]
    if run_id:
        args += ["--run-id", run_id]
    p = bench(*args, cwd=cwd, cache_dir=cache_dir)
    assert p.returncode == 0, p.stderr[-3000:]
    return cwd / json.loads(p.stdout)["results"]


_MEMO: dict[tuple, Path] = {}


def shared_run(tmp_path_factory, cache_dir: Path, backend: str, *extra: str, workload: str = "ann-smoke") -> Path:
    """A real run made once per test session for these arguments (several test modules read the same results;
    none of them may change them)."""
    key = (backend, workload, extra)
    if key not in _MEMO:
        cwd = tmp_path_factory.mktemp(f"run-{backend}-{workload}")
        _MEMO[key] = real_run(cwd, cache_dir, backend, *extra, workload=workload)
    return _MEMO[key]


def schema_run(folder: Path, backend: str = "b", workload: str = "w", op: str = "search",
               latencies_us: list[float] | None = None, qps: list[float] | None = None,
               recall: list[float] | None = None, ef_search: int = 64, run_id: str | None = None,
               capabilities: dict | None = None, substitutions: list[str] | None = None) -> Path:
    """A run folder with trials.parquet and summary.parquet made with the schema (one trial per latency)."""
    lat = latencies_us or [100.0, 101.0, 99.0, 100.5, 100.2]
    n = len(lat)
    qps = qps or [1e6 / v for v in lat]
    recall = recall or [0.95] * n
    run_id = run_id or folder.name
    rng = np.random.default_rng(len(lat))
    rows = []
    for t, (v, q, r) in enumerate(zip(lat, qps, recall, strict=True)):
        h = hdr.new_histogram()
        for x in rng.normal(v, v * 0.05, 500):
            h.record_value(max(1, int(x)))
        st = hdr.stats(h)
        rows.append({
            "run_id": run_id, "workload": workload, "workload_kind": "ann", "backend": backend, "phase": "search",
            "op": op, "ef_search": ef_search, "k": 10, "concurrency": 1, "target_rate": None, "arrival": None,
            "trial": t, "status": "ok", "count": 500, "errors": 0, "error_rate": 0.0, "duration_s": 500 / q,
            "qps": q, **{k: st[k] for k in ("mean_us", "p90_us", "p999_us", "max_us")},
            "p50_us": v, "p99_us": v * 1.5, "recall": r, "hdr": hdr.encode(h),
            "server_rss_peak_bytes": 100 * 1024 * 1024,
            "load_s": 0.5, "build_s": 0.1, "index_requested": "{}", "index_built": "{}",
            "index_substitutions": json.dumps(substitutions or []),
            "capabilities": json.dumps(capabilities or {"filters": True, "quantization": ["int8"]}),
            "dataset_name": "synthetic", "dataset_hash": "abc", "dataset_n": 1000, "dataset_dim": 16,
            "started_utc": datetime.now(UTC), "run_status": "complete", "git_commit": "test",
        })
    folder.mkdir(parents=True, exist_ok=True)
    write_parquet(table(rows, trials_schema()), folder / "trials.parquet", checked=True)
    write_parquet(table(summarize(rows), summary_schema()), folder / "summary.parquet", checked=True)
    write_json(folder / "run.json", {"run_id": run_id, "backend": backend, "status": "complete"}, checked=True)
    return folder
