"""`bench rescore`: quality figures come from the ids each sampled search returned, kept beside the trial, so a run
already made can be scored again: the recomputed recall equals what the run stored, row for row."""

from __future__ import annotations

import pyarrow.compute as pc
import pyarrow.parquet as pq
from analysis_helpers import bench, real_run

from bench.metrics.scoring import Kept
from bench.results.writer import write_parquet


def test_rescore_recomputes_recall_from_the_kept_ids(tmp_path, cache_dir):
    run = real_run(tmp_path, cache_dir, "qdrant-edge", "--set", "search.ef_search=[8, 64]", "--trials", "2",
                   "--set", "filter.selectivities=[0.2]", workload="ann-filtered")
    trials = pq.read_table(run / "trials.parquet")
    before = trials.column("recall").to_pylist()
    assert all(0 < r <= 1 for r in before) and len(set(before)) > 1
    # the ids are there: one file per trial, one row per search the trial ran
    for f, count in zip(trials.column("ids_file").to_pylist(), trials.column("count").to_pylist(), strict=True):
        assert len(Kept.load(run / f)) == count
    # wipe the figures, as an old run without them would be, then rescore
    wiped = trials.set_column(trials.schema.get_field_index("recall"), "recall",
                              pc.multiply(trials.column("recall"), 0.0))
    write_parquet(wiped, run / "trials.parquet", checked=True)  # as bench writes results: with their checksum
    p = bench("rescore", str(run), cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 0, p.stderr
    assert "4 trial rows rescored" in p.stdout, p.stdout
    after = pq.read_table(run / "trials.parquet").column("recall").to_pylist()
    assert after == before
    summary = pq.read_table(run / "summary.parquet").to_pylist()
    assert all(r["recall"] and r["recall"] > 0 for r in summary)


def test_rescore_leaves_ycsb_rows_and_says_why(tmp_path, cache_dir):
    run = real_run(tmp_path, cache_dir, "faiss", "--trials", "1", "--set", "run.operations=300", workload="ycsb-c")
    p = bench("rescore", str(run), cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 0, p.stderr
    assert "left as it is" in p.stdout and "0 trial rows rescored" in p.stdout
