"""`bench compare`: tables across backends and runs from real runs, in every format, with the capability
matrix and substituted indexes marked; bad inputs end in one sentence and exit code 2."""

from __future__ import annotations

import io
import json
import shutil

import pandas as pd
import pyarrow.parquet as pq
import pytest
from analysis_helpers import bench, real_run, shared_run

EFS = ["--set", "search.ef_search=[8, 64]", "--trials", "3"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cache_dir):
    return [shared_run(tmp_path_factory, cache_dir, "faiss", *EFS),
            shared_run(tmp_path_factory, cache_dir, "null", *EFS)]


def test_csv_carries_the_summary_figures_and_spreads(runs, tmp_path):
    p = bench("compare", *map(str, runs), "--format", "csv", "--out", "cmp.csv", cwd=tmp_path, cache_dir=tmp_path)
    assert p.returncode == 0, p.stderr
    text = (tmp_path / "cmp.csv").read_text()
    figures_csv, caps_csv = text.split("\n\n")
    df = pd.read_csv(io.StringIO(figures_csv), keep_default_na=False, na_values=[""])  # a backend is "null"
    assert set(df["backend"]) == {"faiss", "null"} and set(df["ef_search"]) == {8, 64}
    for run in runs:
        for s in pq.read_table(run / "summary.parquet").to_pylist():
            row = df[(df.backend == s["backend"]) & (df.ef_search == s["ef_search"])].iloc[0]
            for col in ("qps", "qps_lo", "qps_hi", "p50_us", "p99_us", "p999_us", "recall", "load_s", "build_s"):
                if s[col] is None:  # a percentile its samples cannot support is withheld in both
                    assert pd.isna(row[col]) and col in (s["percentiles_withheld"] or ""), col
                else:
                    assert row[col] == pytest.approx(s[col]), col
            assert row["qps_lo"] <= row["qps"] <= row["qps_hi"]
            assert (row["n_kept"], row["n_ok"], row["n_trials"]) == (1, 3, 3)
    caps = pd.read_csv(io.StringIO(caps_csv), keep_default_na=False).set_index("backend")
    assert caps.loc["null", "filters"] == "yes" and caps.loc["faiss", "filters"] == "no"
    assert caps.loc["faiss", "quantization"] == "int8, fp16, pq" and caps.loc["null", "hybrid"] == "no"
    assert list(caps.columns) == ["filters", "hybrid", "quantization", "multi_vector", "replication", "sharding",
                                  "tenants"]
    assert caps.loc["faiss", "tenants"] == "no"
    # the null backend reports that it built nothing: its rows are marked, faiss's are not
    assert df[df.backend == "null"]["substituted"].str.contains("null backend").all()
    assert df[df.backend == "faiss"]["substituted"].isna().all()
    # memory: faiss (in process) reports its serialized index size and the harness's RSS growth across the build
    faiss_rows = df[df.backend == "faiss"]
    assert (faiss_rows["index_size_bytes"] > 0).all() and faiss_rows["client_rss_growth_bytes"].notna().all()
    assert (faiss_rows["quantization"].isna()).all() and (faiss_rows["rescore"].isna()).all()


def test_markdown_and_html_group_by_workload(runs, tmp_path):
    p = bench("compare", *map(str, runs), "--format", "markdown", cwd=tmp_path, cache_dir=tmp_path)
    assert p.returncode == 0, p.stderr
    md = p.stdout
    assert "### ann-smoke" in md and "### capabilities" in md
    assert ("| backend | run | op | index | quant | ef | k | conc | rate | QPS | P50 us | P99 us | P99.9 us | recall "
            "| searchable s | load s | build s | peak RSS MiB | index MiB | RSS growth MiB |") in md
    assert "| hnsw M=16 efc=100 |" in md  # the index as built is on every row
    null_rows = [line for line in md.splitlines() if line.startswith("| null *")]
    assert len(null_rows) == 2 and all("| other than asked, note 1 |" in r for r in null_rows)
    assert "1. built other than asked: the null backend stores and indexes nothing" in md
    frows = [line for line in md.splitlines() if line.startswith("| faiss |") and "search" in line]
    assert len(frows) == 2 and all("| as asked |" in r for r in frows)
    p = bench("compare", *map(str, runs), "--format", "html", cwd=tmp_path, cache_dir=tmp_path)
    assert p.returncode == 0 and p.stdout.count("<table class='sortable'>") == 2 and "<h3>ann-smoke on synthetic" in p.stdout
    assert p.stdout.startswith("<!doctype html>") and "<style>" in p.stdout  # a page of its own, styled, sortable
    p = bench("compare", *map(str, runs), "--format", "xml", cwd=tmp_path, cache_dir=tmp_path)
    assert p.returncode == 2 and "Unknown format 'xml'" in p.stderr


def test_default_reads_every_run_under_results_and_table_prints(runs, tmp_path):
    for r in runs:  # each run lives under its own results/; gather them under this folder's results/
        shutil.copytree(r, tmp_path / "results" / r.name)
    p = bench("compare", cwd=tmp_path, cache_dir=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "workload ann-smoke" in p.stdout and "faiss" in p.stdout and "null *" in p.stdout
    assert p.stdout.startswith("ann-smoke on synthetic") and "leads with" in p.stdout.split("workload ann-smoke")[0]
    assert "capabilities" not in p.stdout.replace("the capability matrix", "")  # one -v away
    p = bench("compare", "-v", cwd=tmp_path, cache_dir=tmp_path)
    assert p.returncode == 0 and "capabilities" in p.stdout and "Priced runs" in p.stdout


def test_a_trials_file_can_be_named_and_suite_files_are_found(runs, tmp_path):
    src = runs[0]
    suite = tmp_path / "suite"
    suite.mkdir()
    for kind in ("trials", "summary"):
        (suite / f"faiss.ann-smoke.{kind}.parquet").write_bytes((src / f"{kind}.parquet").read_bytes())
    p = bench("compare", str(suite / "faiss.ann-smoke.trials.parquet"), "--format", "csv", cwd=tmp_path,
              cache_dir=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("faiss,") == 3  # two figure rows and one capability row


def test_bad_inputs_exit_2(tmp_path):
    p = bench("compare", str(tmp_path / "nope"), cwd=tmp_path, cache_dir=tmp_path)
    assert p.returncode == 2 and "does not exist" in p.stderr and "Traceback" not in p.stderr
    p = bench("compare", cwd=tmp_path, cache_dir=tmp_path)  # no results/ here
    assert p.returncode == 2 and "run `bench run` first" in p.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    p = bench("compare", str(empty), cwd=tmp_path, cache_dir=tmp_path)
    assert p.returncode == 2 and "No summary.parquet file was found" in p.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "summary.parquet").write_text("not parquet")
    (bad / "trials.parquet").write_text("not parquet")
    p = bench("compare", str(bad), cwd=tmp_path, cache_dir=tmp_path)
    assert p.returncode == 2 and "cannot be read" in p.stderr


def test_json_capabilities_of_each_backend_are_what_the_adapter_declares(runs):
    from bench.backends import registry

    for run in runs:
        row = pq.read_table(run / "summary.parquet").to_pylist()[0]
        declared = json.loads(json.dumps(registry.get(row["backend"]).capabilities.as_dict()))
        assert json.loads(row["capabilities"]) == declared


def test_quantization_label_names_kind_and_rescore():
    from bench.analysis.compare import quantization_label

    assert quantization_label(None, None) == "none" and quantization_label(float("nan"), None) == "none"
    assert quantization_label("int8", True) == "int8+rescore" and quantization_label("pq", False) == "pq"


def test_runs_on_two_datasets_get_a_table_each_titled_by_the_dataset(tmp_path, cache_dir):
    """faiss on 1,000 vectors and faiss on 1,500 must never share a table: one each, titled by what it measured."""
    a = real_run(tmp_path, cache_dir, "faiss", "--set", "search.ef_search=[32]", "--trials", "1", run_id="small")
    b = real_run(tmp_path, cache_dir, "faiss", "--set", "search.ef_search=[32]", "--set", "dataset.n=1500",
                 "--trials", "1", run_id="large")
    p = bench("compare", str(a), str(b), "--format", "markdown", cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 0, p.stderr
    titles = [line for line in p.stdout.splitlines() if line.startswith("### ann-smoke on ")]
    assert len(titles) == 2, p.stdout
    assert any("n=1,000" in t for t in titles) and any("n=1,500" in t for t in titles)
    tables = p.stdout.split("### ann-smoke on ")[1:]
    assert sum("| small |" in t for t in tables) == 1 and sum("| large |" in t for t in tables) == 1
    assert not any("| small |" in t and "| large |" in t for t in tables)
