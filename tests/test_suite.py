"""`bench suite`: a matrix of backends x workloads in one run id; a failing backend (here a server that does not
answer on 127.0.0.1) is recorded as failed and the suite goes on; `--resume` skips the cells already done."""

from __future__ import annotations

import json
import socket

import pyarrow.parquet as pq
import pytest
from analysis_helpers import bench

from bench.backends import registry
from bench.spec import REPO_ROOT, resolve_workload_path
from bench.suite import load_suite


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: nothing listens there


def _suite(tmp_path, port: int) -> str:
    path = tmp_path / "small.toml"
    path.write_text(f"""
name = "small"
backends = ["null", "fake-slow", "qdrant", "faiss"]
workloads = ["ann-smoke", "ycsb-c"]
trials = 3
set = ["dataset.n=500", "dataset.queries=20", "run.min_operations=1", "dataset.dim=8", "run.warmup_s=0.02", "search.ef_search=[16]"]

[backend.fake-slow]
set = ["backend.latency_us=50"]

[backend.qdrant]
set = ["backend.url=http://127.0.0.1:{port}", "backend.timeout_s=2"]

[workload.ycsb-c]
set = ["run.duration_s=0.2"]

[[exclude]]
backend = "faiss"
workload = "ycsb-c"
reason = "not this one"

[[exclude]]
backend = "qdrant"
workload = "ycsb-c"
""")
    return str(path)


def test_suite_records_a_failed_backend_and_goes_on_then_resumes(tmp_path, cache_dir):
    suite = _suite(tmp_path, _closed_port())
    p = bench("suite", suite, "--run-id", "s1", "--quiet", cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 1, p.stdout + p.stderr
    run_dir = tmp_path / "results" / "s1"
    doc = json.loads((run_dir / "suite.json").read_text())
    assert doc["status"] == "failed" and doc["run_id"] == "s1"
    cells = {(c["backend"], c["workload"]): c for c in doc["cells"]}
    assert len(cells) == 8
    for cell in [("null", "ann-smoke"), ("fake-slow", "ann-smoke"), ("faiss", "ann-smoke"), ("null", "ycsb-c"),
                 ("fake-slow", "ycsb-c")]:
        assert cells[cell]["status"] == "complete", cells[cell]
        b, w = cell
        assert f"{b}.{w}.trials.parquet" in cells[cell]["files"]
        rows = pq.read_table(run_dir / f"{b}.{w}.trials.parquet").to_pylist()
        assert {r["backend"] for r in rows} == {b} and {r["run_id"] for r in rows} == {"s1"}
        assert json.loads((run_dir / f"{b}.{w}.run.json").read_text())["status"] == "complete"
    failed = cells[("qdrant", "ann-smoke")]
    assert failed["status"] == "failed" and "answer" in failed["reason"] and "127.0.0.1:" in failed["reason"]
    assert cells[("faiss", "ycsb-c")]["status"] == "excluded" == cells[("qdrant", "ycsb-c")]["status"]
    assert cells[("faiss", "ycsb-c")]["reason"] == "not this one"
    assert "failed  qdrant x ann-smoke" in p.stdout
    # the results of the suite read like any run's: one compare over the folder
    p = bench("compare", str(run_dir), "--format", "csv", cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 0 and {"null", "fake-slow", "faiss"} <= set(
        line.split(",")[1] for line in p.stdout.split("\n\n")[0].splitlines()[1:])

    mtime = (run_dir / "null.ann-smoke.trials.parquet").stat().st_mtime_ns
    p = bench("suite", suite, "--resume", "s1", "--quiet", "--json", cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 1, p.stderr  # qdrant still does not answer
    out = json.loads(p.stdout)
    status = {(c["backend"], c["workload"]): c["status"] for c in out["cells"]}
    assert status[("null", "ann-smoke")] == "already done" and status[("fake-slow", "ycsb-c")] == "already done"
    assert status[("qdrant", "ann-smoke")] == "failed"
    assert (run_dir / "null.ann-smoke.trials.parquet").stat().st_mtime_ns == mtime  # not run again
    assert "qdrant x ann-smoke: running" in p.stderr and "null x ann-smoke: running" not in p.stderr


def test_resume_runs_a_cell_whose_run_did_not_complete(tmp_path, cache_dir):
    path = tmp_path / "one.toml"
    path.write_text('name = "one"\nbackends = ["null"]\nworkloads = ["ann-smoke"]\ntrials = 1\n'
                    'set = ["dataset.n=300", "dataset.queries=10", "run.min_operations=1", "dataset.dim=8", "run.warmup_s=0", '
                    '"search.ef_search=[8]"]\n')
    p = bench("suite", str(path), "--run-id", "s2", "--quiet", cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 0, p.stderr
    run_json = tmp_path / "results" / "s2" / "null.ann-smoke.run.json"
    doc = json.loads(run_json.read_text())
    doc["status"] = "interrupted"
    run_json.write_text(json.dumps(doc))
    p = bench("suite", str(path), "--resume", "s2", "--quiet", "--json", cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["cells"][0]["status"] == "complete"
    assert json.loads(run_json.read_text())["status"] == "complete"


def test_resume_reruns_damaged_cells_and_compare_names_what_it_cannot_read(tmp_path, cache_dir):
    """A missing summary file: compare reads the rest and says which file it left out; a truncated trials file
    (its checksum no longer matches): report refuses it in one sentence naming it (damage is never passed over);
    resume runs both cells again."""
    path = tmp_path / "two.toml"
    path.write_text('name = "two"\nbackends = ["null", "faiss"]\nworkloads = ["ann-smoke"]\ntrials = 1\n'
                    'set = ["dataset.n=300", "dataset.queries=10", "run.min_operations=1", "dataset.dim=8", '
                    '"run.warmup_s=0", "search.ef_search=[8]"]\n')
    assert bench("suite", str(path), "--run-id", "s3", "--quiet", cwd=tmp_path, cache_dir=cache_dir).returncode == 0
    run_dir = tmp_path / "results" / "s3"
    trials = run_dir / "null.ann-smoke.trials.parquet"
    (run_dir / "faiss.ann-smoke.summary.parquet").unlink()  # missing
    p = bench("compare", str(run_dir), "--format", "csv", cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 0 and "faiss.ann-smoke.trials.parquet has no faiss.ann-smoke.summary.parquet" in p.stderr
    assert "\nfaiss," not in p.stdout.split("\n\n")[0]
    trials.write_bytes(trials.read_bytes()[:200])  # truncated
    p = bench("report", str(run_dir), "--out", str(tmp_path / "rep"), cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 2 and f"{trials} cannot be read: it is damaged" in p.stderr, p.stderr
    assert not (tmp_path / "rep" / "index.html").exists()
    p = bench("suite", str(path), "--resume", "s3", "--quiet", "--json", cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 0, p.stderr
    assert [c["status"] for c in json.loads(p.stdout)["cells"]] == ["complete", "complete"]  # both ran again
    import pyarrow.parquet as pq

    assert pq.read_table(trials).num_rows == 1 and (run_dir / "faiss.ann-smoke.summary.parquet").is_file()


def test_suite_user_errors_exit_2(tmp_path, cache_dir):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nbackends = ["null"]\nworkloads = ["ann-smoke"]\ntrails = 3\n')
    p = bench("suite", str(bad), cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 2 and "unknown key 'trails'" in p.stderr and "Traceback" not in p.stderr
    bad.write_text('name = "x"\nbackends = ["null"]\nworkloads = ["ann-smoke"]\n[backend.faiss]\nset = []\n')
    p = bench("suite", str(bad), cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 2 and "[backend.faiss]" in p.stderr
    p = bench("suite", str(tmp_path / "missing.toml"), cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 2 and "does not exist" in p.stderr
    good = tmp_path / "good.toml"
    good.write_text('name = "x"\nbackends = ["null"]\nworkloads = ["ann-smoke"]\n')
    p = bench("suite", str(good), "--resume", "no-such-run", cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 2 and "no run folder" in p.stderr


@pytest.mark.parametrize("name", ["nightly"])
def test_shipped_suites_name_real_backends_and_workloads(name):
    spec = load_suite(REPO_ROOT / "configs" / "suites" / f"{name}.toml")
    known = set(registry.names())
    assert set(spec.backends) <= known, set(spec.backends) - known
    for w in spec.workloads:
        assert resolve_workload_path(w).exists()
    embedded = [b for b in spec.backends if not registry.get(b).capabilities.server]
    servers = [b for b in spec.backends if registry.get(b).capabilities.server]
    assert embedded and servers
    for ex in spec.exclude:  # every exclusion names a cell of the matrix and says why
        assert ex.backend in spec.backends and ex.workload in spec.workloads and ex.reason
