"""Results written by the oldest results schema (tests/fixtures/schema-oldest, written by commit b8438bf) are
promoted, not refused: every registry key is there, the index axes come from the old JSON
columns, percentiles the old trials had too few samples for are withheld as today's are, and compare, regress,
report, baseline save and rescore run on them without an error."""

from __future__ import annotations

import io
import shutil
from csv import DictReader
from pathlib import Path

import pytest
from analysis_helpers import bench

from bench.analysis.load import summary_frame, trials_frame
from bench.results import keys

OLD = Path(__file__).parent / "fixtures" / "schema-oldest"
ANN = OLD / "20261130T100944Z-faiss-ann-smoke-ba0c38"
YCSB = OLD / "20261130T101009Z-qdrant-edge-ycsb-a-256d6b"


@pytest.fixture
def old(tmp_path) -> Path:
    """A copy of the fixtures (rescore and baseline save must not touch the originals)."""
    dst = tmp_path / "old"
    shutil.copytree(OLD, dst)
    return dst


def test_promoted_frames_have_every_key_the_index_axes_and_honest_percentiles():
    s = summary_frame([ANN, YCSB])
    assert set(keys.names()) <= set(s.columns)
    ann = s[s["workload"] == "ann-smoke"]
    assert set(ann["index_m"]) == {16} and set(ann["index_ef_construction"]) == {100}
    assert set(ann["index_kind"]) == {"hnsw"}
    # 3 trials x 100 queries: 300 samples support a P50 and a P90, not a P99 (1,000) or a P99.9 (10,000)
    assert ann["p99_us"].isna().all() and ann["p999_us"].isna().all() and ann["p50_us"].notna().all()
    assert all("p99_us" in w and "p999_us" in w for w in ann["percentiles_withheld"])
    t = trials_frame([ANN])
    assert t["p999_us"].isna().all() and (t["p50_us"] > 0).all()


def test_compare_report_and_regress_read_the_oldest_files(tmp_path, cache_dir):
    c = bench("compare", str(ANN), str(YCSB), cwd=tmp_path, cache_dir=cache_dir, env={"COLUMNS": "250"})
    assert c.returncode == 0, c.stderr
    assert "Traceback" not in c.stderr and "ann-smoke" in c.stdout and "ycsb-a" in c.stdout
    csv = bench("compare", str(ANN), "--format", "csv", cwd=tmp_path, cache_dir=cache_dir)
    assert csv.returncode == 0, csv.stderr
    rows = [r for r in DictReader(io.StringIO(csv.stdout)) if r["run_id"] == ANN.name]
    assert len(rows) == 3 and all(r["p50_us"] and not r["p99_us"] and not r["p999_us"] for r in rows), rows
    r = bench("report", str(ANN), str(YCSB), "--out", str(tmp_path / "rep"), cwd=tmp_path, cache_dir=cache_dir)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "rep" / "index.html").stat().st_size > 1000
    g = bench("regress", "--baseline", str(ANN), "--candidate", str(ANN), cwd=tmp_path, cache_dir=cache_dir)
    assert g.returncode == 0, g.stderr
    assert "QPS" in g.stdout and "recall" in g.stdout and "P99.9" not in g.stdout


def test_baseline_save_and_rescore_of_the_oldest_files(old, tmp_path, cache_dir):
    run = old / ANN.name
    b = bench("baseline", "save", str(run), "--name", "oldest", "--baselines-dir", str(tmp_path / "baselines"),
              cwd=tmp_path, cache_dir=cache_dir)
    assert b.returncode == 0, b.stderr
    assert (tmp_path / "baselines" / "oldest" / ANN.name / "trials.parquet").is_file()
    before = (run / "trials.parquet").read_bytes()
    r = bench("rescore", str(run), cwd=tmp_path, cache_dir=cache_dir)
    assert r.returncode == 0, r.stderr
    assert "nothing to rescore" in r.stdout and (run / "trials.parquet").read_bytes() == before
