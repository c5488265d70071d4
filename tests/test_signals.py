"""SIGTERM and SIGHUP end `bench run` like Ctrl-C: the finished trials are written, run.json and every row say
`interrupted`, the work folder is removed, worker processes and the collection are gone, and the exit code is
128 + the signal (143, 129)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

ARGS = ["run", "--workload", "ycsb-c", "--set", "dataset.n=2000", "--set", "dataset.dim=32",
        "--set", "dataset.queries=40", "--set", "run.min_operations=1", "--set", "run.warmup_s=0", "--set", "run.duration_s=0.5",
        "--trials", "200", "--quiet"]


def _signal_after_first_trial(tmp: Path, cache: Path, backend: str, sig: int, *extra: str,
                              args: list[str] = ARGS) -> tuple[int, Path, int]:
    env = {**os.environ, "BENCH_CACHE_DIR": str(cache), "TMPDIR": str(tmp)}
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", *args, "--backend", backend, *extra,
                             "--results-dir", str(tmp / "results")], cwd=tmp, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((tmp / "results").glob("*/trials.parquet")):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    proc.send_signal(sig)
    rc = proc.wait(timeout=60)
    run_dir = next((tmp / "results").iterdir())
    return rc, run_dir, len(children)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_ends_an_embedded_run_honestly(tmp_path, cache_dir, sig, code):
    rc, run_dir, _ = _signal_after_first_trial(tmp_path, cache_dir, "qdrant-edge", sig)
    assert rc == code
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    rows = pq.read_table(run_dir / "trials.parquet").to_pylist()
    assert rows and {r["run_status"] for r in rows} == {"interrupted"}
    assert not list(tmp_path.glob("bench-qdrant-edge-*"))  # the work folder went with it


def test_sigterm_stops_server_workers_and_drops_the_collection(tmp_path, cache_dir):
    pytest.importorskip("psycopg")
    from backend_options import server_options

    opts = server_options("pgvector")
    rc, run_dir, n_children = _signal_after_first_trial(tmp_path, cache_dir, "pgvector", signal.SIGTERM,
                                                        "--concurrency", "2")
    assert rc == 143 and n_children >= 2
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    time.sleep(1)
    workers = [p for p in psutil.process_iter(["cmdline"]) if "bench-worker" in " ".join(p.info["cmdline"] or [])
               and str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    assert not workers
    import psycopg

    with psycopg.connect(opts["dsn"], connect_timeout=5) as conn:
        names = [r[0] for r in conn.execute("select tablename from pg_tables where tablename like 'bench_ycsb_c_%'")]
    run_id = json.loads((run_dir / "run.json").read_text())["run_id"]
    from bench.run_context import collection_name

    assert collection_name("ycsb-c", f"{run_id}/") not in names
    assert not list(tmp_path.glob("bench-pgvector-*"))  # the run's TMPDIR was tmp_path: nothing of it stays


def test_an_interrupted_run_is_marked_and_refused_downstream(tmp_path, cache_dir):
    """compare marks it; regress and baseline save refuse it (one sentence, exit 2) unless asked for."""
    from analysis_helpers import TINY, bench, real_run

    good = real_run(tmp_path, cache_dir, "faiss", "--set", "search.ef_search=[32, 64]", "--trials", "2",
                    run_id="good")
    (tmp_path / "x").mkdir()
    args = ["run", "--workload", "ann-smoke", *TINY, "--set", "search.ef_search=[32, 64]", "--trials", "200"]
    rc, cut, _ = _signal_after_first_trial(tmp_path / "x", cache_dir, "faiss", signal.SIGTERM, args=args)
    assert rc == 143
    md = bench("compare", str(good), str(cut), "--format", "markdown", cwd=tmp_path, cache_dir=cache_dir).stdout
    assert f"{cut.name} (interrupted)" in md
    p = bench("regress", "--baseline", str(good), "--candidate", str(cut), cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 2 and "did not complete" in p.stderr and "--allow-incomplete" in p.stderr, p.stderr
    p = bench("regress", "--baseline", str(good), "--candidate", str(cut), "--allow-incomplete", cwd=tmp_path,
              cache_dir=cache_dir)
    assert p.returncode in (0, 1) and "did not complete, used on request" in p.stdout, p.stderr
    p = bench("baseline", "save", str(cut), "--name", "nightly", cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 2 and "did not complete" in p.stderr
    assert not (tmp_path / "baselines" / "nightly").exists()
