#!/usr/bin/env python3
"""VectorDBBench and bench on the same case, the same files and the same pgvector server, in one table.

1. writes the wordnet set (the full 20,000 + 200 rows of shared/data/wordnet-mpnet-768 when it is there, else the
   4,000-row fixture) in VectorDBBench's custom-dataset layout (train/test/neighbors.parquet, exact top 100);
2. runs VectorDBBench on it (`vectordbbench pgvectorhnsw --case-type PerformanceCustomDataset`), k = 10, HNSW
   M = 16, ef_construction = 64, ef_search = 64, concurrency 1 and 2 for `--duration` seconds each;
3. runs bench on the same folder (`source = "file"`), the same k and index, at concurrency 1 and 2;
4. `bench import`s VectorDBBench's result JSON and prints `bench compare`: one table, a `tool` column, and each
   tool's figures in its own columns with their definition.

VectorDBBench must be installed in its own environment (it pins its own dependencies, ~1.3 GB):
    python3 -m venv /tmp/vdbb-venv && /tmp/vdbb-venv/bin/pip install 'vectordb-bench[pgvector]==2.0.0'
    python benchmarks/vdbb_side_by_side.py --vdbb /tmp/vdbb-venv/bin/vectordbbench
With `--vdbb-result FILE` an existing VectorDBBench result is imported instead of running VectorDBBench (its
recorded dataset folder should be the one this script writes, so both rows carry the same data hash).
Needs the pgvector server of configs/pgvector.toml (`python scripts/services.py up pgvector`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import _smoke
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.datasets.wordnet import QUERY_ROWS, VECTORS, resolve_dir  # noqa: E402
from bench.importers.vdbb_export import write_custom_dataset  # noqa: E402

M, EFC, EF, K = 16, 64, 64, 10
VDBB_FIXTURE = "result_20261130_wordnet-side-by-side_pgvector.json"  # --smoke imports it instead of running VDBB


def _bench(*args: str, cache: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "BENCH_CACHE_DIR": str(cache)}
    p = subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"bench {' '.join(args[:3])} failed ({p.returncode}): {p.stderr.strip()}")
    return p.stdout


def _run_vdbb(exe: str, folder: Path, n: int, out: Path, duration: int, host: str, port: int, user: str,
              db: str) -> Path:
    env = {**os.environ, "RESULTS_LOCAL_DIR": str(out), "DATASET_LOCAL_DIR": str(out / "ds"),
           "LOG_FILE": str(out / "vdbb.log"), "POSTGRES_PASSWORD": os.environ.get("POSTGRES_PASSWORD", "")}
    args = [exe, "pgvectorhnsw", "--case-type", "PerformanceCustomDataset", "--custom-case-name",
            f"wordnet-{n}", "--custom-dataset-name", folder.name, "--custom-dataset-dir", str(folder),
            "--custom-dataset-size", str(n), "--custom-dataset-dim", "768", "--custom-dataset-metric-type",
            "COSINE", "--custom-dataset-file-count", "1", "--k", str(K), "--num-concurrency", "1,2",
            "--concurrency-duration", str(duration), "--user-name", user, "--password",
            env["POSTGRES_PASSWORD"], "--host", host, "--port", str(port), "--db-name", db, "--m", str(M),
            "--ef-construction", str(EFC), "--ef-search", str(EF), "--db-label", "side-by-side",
            "--task-label", "wordnet-side-by-side", "--load-concurrency", "1"]
    p = subprocess.run(args, capture_output=True, text=True, env=env, cwd=out)
    found = sorted(out.rglob("result_*.json"))
    if p.returncode != 0 or not found:
        sys.exit(f"VectorDBBench failed ({p.returncode}): {(p.stderr or p.stdout).strip()[-600:]}")
    return found[-1]


def _workload(path: Path, folder: Path, n: int, duration: int, trials: int) -> Path:
    path.write_text(f"""name = "wordnet-side-by-side"
kind = "ann"
description = "the wordnet set in VectorDBBench's custom-dataset layout, as VectorDBBench ran it"
[dataset]
source = "file"
path = "{folder}"
n = {n}
queries = {QUERY_ROWS}
metric = "cosine"
ground_truth = "file"
[index]
kind = "hnsw"
m = {M}
ef_construction = {EFC}
[search]
k = {K}
ef_search = [{EF}]
[run]
trials = {trials}
warmup_s = 1.0
duration_s = {duration}
""")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vdbb", default=shutil.which("vectordbbench"), help="the vectordbbench executable")
    ap.add_argument("--vdbb-result", type=Path, help="import this VectorDBBench result instead of running it")
    ap.add_argument("--out", type=Path, default=REPO / "results" / "vdbb-side-by-side")
    ap.add_argument("--duration", type=int, default=10, help="seconds per concurrency level (both tools)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5432)
    ap.add_argument("--user", default="bench")
    ap.add_argument("--db", default="bench")
    ap.add_argument("--trials", type=int, default=3, help="bench's trials per concurrency level")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 2], help="bench's concurrency levels")
    ap.add_argument("--rows", type=int, default=0, help="use only the first ROWS base rows (0: all)")
    _smoke.add(ap, vdbb_result=REPO / "tests" / "fixtures" / "vdbb" / VDBB_FIXTURE, out=_smoke.temp_dir, duration=1, rows=1_000,
               trials=1, concurrency=[1])
    a = _smoke.parse(ap)
    if a.vdbb_result is None and not a.vdbb:
        sys.exit("vectordbbench was not found: install it in its own venv and pass --vdbb PATH (see the docstring)")
    a.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="vdbb-", dir=a.out))
    v = np.load(resolve_dir() / VECTORS).astype(np.float32)
    base, queries = v[:-QUERY_ROWS], v[-QUERY_ROWS:]
    base = base[:a.rows] if a.rows else base
    folder = write_custom_dataset(work / "wordnet-mpnet-768", base, queries, "cosine")
    print(f"dataset: {folder} ({len(base):,} + {len(queries)} rows)", flush=True)
    result = a.vdbb_result or _run_vdbb(a.vdbb, folder, len(base), work, a.duration, a.host, a.port, a.user, a.db)
    print(f"VectorDBBench result: {result}", flush=True)
    cache, results = work / "cache", work / "results"
    wl = _workload(work / "wordnet-side-by-side.toml", folder, len(base), a.duration, a.trials)
    for c in a.concurrency:
        _bench("run", "--backend", "pgvector", "--workload", str(wl), "--concurrency", str(c), "--quiet",
               "--results-dir", str(results), cache=cache)
    print(_bench("import", str(result), "--out", str(results), cache=cache), end="", flush=True)
    print(_bench("compare", str(results), "--format", "markdown", cache=cache))


if __name__ == "__main__":
    main()
