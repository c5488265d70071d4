"""`bench history`: the store (a parquet dataset by date read with DuckDB, or PostgreSQL, live against the
project's server), its series (the key registry decides what joins one), and the change points over real
night-to-night noise (tests/fixtures/history/nights.parquet, 24 nights of a small nightly recorded on the
development machine; steps are injected into copies of it, as benchmarks/history_detection.py does).

Runs are real (`bench run` on faiss, `bench import` of a VectorDBBench result)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pandas as pd
import pytest
from analysis_helpers import bench, real_run
from history_helpers import replay, runs_in_order, worsen, write_store

from bench.analysis.load import summary_frame
from bench.history import changes, series
from bench.history.rows import series_keys
from bench.history.store import ParquetStore, PostgresStore
from bench.results import keys

FIX = Path(__file__).parent / "fixtures"
NIGHTS = FIX / "history" / "nights.parquet"
VDBB_OWN = FIX / "vdbb" / "result_20261130_wordnet-side-by-side_pgvector.json"
FAST = ["--set", "search.ef_search=[32]", "--set", "run.duration_s=0.15", "--set", "run.trials=3"]
PG = os.environ.get("BENCH_PGVECTOR_DSN", "postgresql://bench@127.0.0.1:5432/bench")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cache_dir) -> dict[str, Path]:
    cwd = tmp_path_factory.mktemp("history-runs")
    out = {name: real_run(cwd, cache_dir, "faiss", *FAST, run_id=name) for name in ("night-a", "night-b")}
    out["other-data"] = real_run(cwd, cache_dir, "faiss", *FAST, "--set", "dataset.n=1200", run_id="other-data")
    p = bench("import", str(VDBB_OWN), "--out", str(cwd / "imported"), cwd=cwd, cache_dir=cache_dir)
    assert p.returncode == 0, p.stderr
    out["imported"] = cwd / "imported"
    return out


def _add(store: str, *folders: Path, cwd: Path, cache_dir: Path):
    return bench("history", "add", *map(str, folders), "--store", store, cwd=cwd, cache_dir=cache_dir)


def test_add_appends_by_date_and_adding_twice_is_a_no_op(runs, tmp_path, cache_dir):
    store = tmp_path / "hist"
    p = _add(str(store), runs["night-a"], runs["night-b"], cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 0, p.stderr
    assert "night-a: added 1 configuration(s)" in p.stdout and "night-b: added" in p.stdout
    files = sorted(store.glob("date=*/*.parquet"))
    assert [f.name for f in files] == ["night-a.parquet", "night-b.parquet"]
    for f in files:  # partitioned by the UTC date each run started
        started = summary_frame([runs[f.stem]])["started_utc"].iloc[0]
        assert f.parent.name == "date=" + pd.Timestamp(started).tz_convert("UTC").strftime("%Y-%m-%d")
    before = ParquetStore(store).read()
    again = _add(str(store), runs["night-a"], cwd=tmp_path, cache_dir=cache_dir)
    assert again.returncode == 0 and "night-a: already in" in again.stdout
    after = ParquetStore(store).read()
    assert len(after) == len(before) == 2
    # one configuration, two nights: one series; night keyed by date, commit and engine versions
    assert after["series_id"].nunique() == 1
    assert after["git_commit"].notna().all() and after["backend_client_version"].notna().all()
    assert set(after["night"]) == {f.parent.name.removeprefix("date=") for f in files}
    assert (after["qps"] > 0).all() and (after["qps_lo"] <= after["qps"]).all()


def test_other_data_and_imported_rows_are_series_of_their_own(runs, tmp_path, cache_dir):
    store = tmp_path / "hist"
    p = _add(str(store), runs["night-a"], runs["other-data"], runs["imported"], cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 0, p.stderr
    h = ParquetStore(store).read()
    a = h[h["run_id"] == "night-a"]["series_id"].iloc[0]
    other = h[h["run_id"] == "other-data"]["series_id"].iloc[0]
    imported = h[h["source_tool"].notna()]
    assert a != other and len(imported) >= 1 and a not in set(imported["series_id"])
    assert set(imported["source_tool"]) == {"vectordbbench"} and imported["p99_us"].notna().all()
    assert imported[imported["op"] == "search"]["qps"].notna().all()  # the tool's own figures, in the history's
    # the series key is the key registry's, not a hand list
    assert series_keys() == keys.match_names()
    assert {"dataset_hash", "index_m", "ef_search", "role", "source_tool"} <= set(series_keys())
    assert not {"backend_server_version", "backend_client_version", "run_id"} & set(series_keys())


def test_a_folder_without_results_is_refused_in_one_sentence(tmp_path, cache_dir):
    (tmp_path / "empty").mkdir()
    p = _add(str(tmp_path / "hist"), tmp_path / "empty", cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 2 and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    p = bench("history", "changes", "--store", str(tmp_path / "nothing"), cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 2 and "is empty" in p.stderr


def test_postgresql_store_live(runs, tmp_path, cache_dir):
    psycopg = pytest.importorskip("psycopg")
    schema = f"bench_history_test_{uuid.uuid4().hex[:10]}"
    url = f"{PG}?schema={schema}"
    try:
        p = _add(url, runs["night-a"], runs["night-b"], runs["imported"], cwd=tmp_path, cache_dir=cache_dir)
        assert p.returncode == 0, p.stderr
        again = _add(url, runs["night-b"], cwd=tmp_path, cache_dir=cache_dir)
        assert "night-b: already in" in again.stdout
        pg = PostgresStore(url).read()
        assert "bench@" not in PostgresStore(url).where
        _add(str(tmp_path / "local"), runs["night-a"], runs["night-b"], runs["imported"], cwd=tmp_path,
             cache_dir=cache_dir)
        local = ParquetStore(tmp_path / "local").read()
        cols = ["run_id", "series_id", "night", "qps", "p99_us", "recall", "busy", "git_commit"]
        key = ["run_id", "series_id"]
        pd.testing.assert_frame_equal(pg[cols].sort_values(key).reset_index(drop=True),
                                      local[cols].sort_values(key).reset_index(drop=True), check_dtype=False)
        p = bench("history", "changes", "--store", url, cwd=tmp_path, cache_dir=cache_dir)
        assert p.returncode == 0 and "0 change point(s) in the history (3 nights" in p.stdout, p.stdout + p.stderr
    finally:
        with psycopg.connect(PG, autocommit=True) as con:
            con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_messages_never_show_the_password(tmp_path, cache_dir):
    psycopg = pytest.importorskip("psycopg")
    schema = f"bench_history_test_{uuid.uuid4().hex[:10]}"
    url = PG.replace("bench@", "bench:s3cret-pw@", 1) + f"?schema={schema}"
    try:
        for args in (["changes"], ["report", "--out", str(tmp_path / "page")]):
            p = bench("history", *args, "--store", url, cwd=tmp_path, cache_dir=cache_dir)
            assert p.returncode == 2 and "is empty" in p.stderr and "s3cret" not in p.stderr + p.stdout, p.stderr
    finally:
        with psycopg.connect(PG, autocommit=True) as con:
            con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_an_unreachable_postgresql_is_one_sentence(tmp_path, cache_dir):
    p = bench("history", "changes", "--store", "postgresql://bench@127.0.0.1:9/bench", cwd=tmp_path,
              cache_dir=cache_dir)
    assert p.returncode == 2 and "Cannot connect to the history store" in p.stderr and "Traceback" not in p.stderr


# -- change points over the recorded real nights -------------------------------------------------------------

def _changes(store: Path, tmp_path: Path, cache_dir: Path, *extra: str):
    return bench("history", "changes", "--store", str(store), *extra, cwd=tmp_path, cache_dir=cache_dir)


def _versioned(df: pd.DataFrame, from_night: int) -> pd.DataFrame:
    """faiss's client version and the harness commit change at night from_night, as an upgrade would."""
    df = df.copy()
    later = df["run_id"].isin(runs_in_order(df)[from_night:])
    df.loc[later, "git_commit"] = "c0ffee" + "0" * 34
    df.loc[later & (df["backend"] == "faiss"), "backend_client_version"] = "1.99.0"
    return df


def test_flat_real_nights_have_no_change_in_the_engines_p50():
    df = replay()
    found = changes.find(series.build(df, ["p50_us"]))
    assert [c.line() for c in found if not c.series.sentinel] == []
    assert len(runs_in_order(df)) >= 20  # at least 20 real nights are kept


def test_a_step_is_found_at_its_night_and_attributed(tmp_path, cache_dir):
    df = _versioned(worsen(replay(), "faiss", "p50_us", 12, 0.30), 12)
    store = write_store(df, tmp_path / "hist")
    p = _changes(store, tmp_path, cache_dir)
    assert p.returncode == 0, p.stdout + p.stderr
    night = df[df["run_id"] == runs_in_order(df)[12]]["night"].iloc[0]
    mine = [line for line in p.stdout.splitlines() if "P50" in line and "faiss ann-nightly" in line]
    assert len(mine) == 1, p.stdout
    line = mine[0]
    assert line.startswith(f"{night} WORSE  P50 +")
    before = df[df["run_id"] == runs_in_order(df)[11]]["git_commit"].iloc[0][:12]
    assert f"commits {before}..c0ffee000000" in line and "client 1.15.1 -> 1.99.0" in line, line
    assert "sentinel moved too" not in line
    size = float(line.split("P50 +")[1].split("%")[0])
    assert 20 <= size <= 60  # +30% injected, on top of what the machine did over the recorded nights
    # the nightly's gate: not a change of the last two nights ...
    assert _changes(store, tmp_path, cache_dir, "--last", "2").returncode == 0
    # ... but on the night after it happened, it is
    cut = df[df["run_id"].isin(runs_in_order(df)[:14])]
    gate = _changes(write_store(cut, tmp_path / "cut"), tmp_path, cache_dir, "--last", "2")
    assert gate.returncode == 1 and "WORSE  P50" in gate.stdout, gate.stdout + gate.stderr


def test_a_step_the_sentinel_shares_is_the_machines(tmp_path, cache_dir):
    df = worsen(worsen(replay(), "faiss", "p50_us", 12, 0.50), "faiss", "p50_us", 12, 0.50, role="sentinel")
    cut = df[df["run_id"].isin(runs_in_order(df)[:14])]
    p = _changes(write_store(cut, tmp_path / "hist"), tmp_path, cache_dir, "--last", "2")
    engine = [line for line in p.stdout.splitlines() if "P50" in line and "faiss ann-nightly" in line]
    assert len(engine) == 1 and "sentinel moved too: the machine's" in engine[0], p.stdout
    assert p.returncode == 0, p.stdout  # the machine's change does not fail the night


def test_busy_nights_stay_in_the_series_and_are_marked():
    df = replay()
    s = next(s for s in series.build(df, ["qps"]) if s.config["backend"] == "faiss" and not s.sentinel)
    nights = df[(df["backend"] == "faiss") & df["role"].isna()]
    assert len(s.nights) == len(nights)
    assert s.nights["busy"].tolist() == nights.sort_values("started_utc")["busy"].tolist()
