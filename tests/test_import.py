"""Standard cases by name, other tools' results in (`bench import`), and both side by side (`bench compare`).

Real files only: VectorDBBench result JSON written by vectordb-bench 2.0.0 here against pgvector on the wordnet
fixture, and two it published (tests/fixtures/vdbb/README.md says where from); ann-benchmarks result HDF5 written
the way ann-benchmarks' results.store_results writes it (erikbern/ann-benchmarks, ann_benchmarks/results.py and
runner.py), from a real faiss HNSW search; VectorDBBench's parquet layout served on a loopback HTTP server.
"""

from __future__ import annotations

import json
import re
import time
import tomllib
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_datasets_fetch import FAST, serve_files

from bench.datasets import DatasetSpec, exact_topk, fetch, load
from bench.datasets.fetch import CATALOG, VDBB_LABEL_FILES, datasets_dir
from bench.importers import vdbb
from bench.importers.vdbb_export import write_custom_dataset
from bench.spec import REPO_ROOT, resolve_workload_path
from bench.workload_file import load_workload

FIX = REPO_ROOT / "tests" / "fixtures"
VDBB_OWN = FIX / "vdbb" / "result_20261130_wordnet-side-by-side_pgvector.json"
VDBB_PG_2023 = FIX / "vdbb" / "result_20230808_standard_pgvector.json"
VDBB_MILVUS_2026 = FIX / "vdbb" / "result_20260403_standard_milvus.json"
WORDNET = FIX / "wordnet-mpnet-768-small" / "vectors.f16.npy"


def _one_line_error(r) -> None:
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and r.stderr.startswith("error: ") and r.stderr.strip().count("\n") == 0


def _rows(run_dir: Path, kind: str = "trials") -> pd.DataFrame:
    return pd.read_parquet(run_dir / f"{kind}.parquet")


def _imported(stdout: str) -> list[Path]:
    return [Path(m) for m in re.findall(r"-> (\S+)", stdout)]


# -- VectorDBBench ----------------------------------------------------------------------------------------------

def test_vdbb_result_written_by_its_runner_imports_with_every_parameter(bench_cli, tmp_path) -> None:
    r = bench_cli("import", str(VDBB_OWN), "--out", str(tmp_path / "res"), "--tool-version", "2.0.0")
    assert r.returncode == 0, r.stderr
    (run,) = _imported(r.stdout)
    run = tmp_path / run if not run.is_absolute() else run
    t = _rows(run).sort_values(["op", "concurrency"]).reset_index(drop=True)
    assert list(t["op"]) == ["search", "search", "search-serial"] and list(t["concurrency"]) == [1, 2, 1]
    assert set(t["source_tool"]) == {"vectordbbench"} and set(t["source_version"]) == {"2.0.0"}
    assert t["qps"].isna().all() and t["p99_us"].isna().all()  # bench's own figures: not what VDBB measured
    assert t.loc[0, "source_qps"] == pytest.approx(339.8933) and t.loc[1, "source_qps"] == pytest.approx(497.0868)
    assert list(t["source_headline_qps"]) == pytest.approx([497.0868] * 3)  # its headline: the max over levels
    assert t.loc[2, "source_p99_us"] == pytest.approx(6600) and t.loc[0, "source_p99_us"] == pytest.approx(11727.4, 0.01)
    assert list(t["recall"]) == pytest.approx([0.9985] * 3) and set(t["k"]) == {10}
    row = t.iloc[0]
    assert (row["backend"], row["dataset_name"], row["dataset_n"], row["dataset_dim"], row["dataset_metric"]) == (
        "pgvector", "wordnet-mpnet-768", 4000, 768, "cosine")
    assert (row["index_kind"], row["index_m"], row["index_ef_construction"], row["ef_search"]) == ("hnsw", 16, 64, 64)
    assert "no warm-up excluded" in row["figure_definition"] and "maximum" in row["figure_definition"]
    params = json.loads(row["source_params"])
    assert params["task_config"]["db_case_config"]["ef_construction"] == 64
    assert params["task_config"]["db_config"]["user_name"] == "(removed)"  # secrets never reach results
    assert params["metrics"]["conc_qps_list"] == [339.8933, 497.0868]
    assert "sha256 da3e060f" in row["source_file"]
    run_json = json.loads((run / "run.json").read_text())
    assert run_json["source_tool"] == "vectordbbench" and run_json["vdbb_task_label"] == "wordnet-side-by-side"
    s = _rows(run, "summary")
    assert len(s) == 3 and set(s["n_kept"]) == {1} and set(s["source_tool"]) == {"vectordbbench"}


def test_vdbb_published_results_of_2023_and_2026_import(tmp_path) -> None:
    from bench.importers import import_files

    old, new = import_files([VDBB_PG_2023, VDBB_MILVUS_2026], tmp_path, version=None)
    t = _rows(old.run_dir)
    assert len(t) == 6 and set(t["op"]) == {"search-serial"} and set(t["k"]) == {100}  # no k recorded: VDBB's 100
    assert all("default 100 is assumed" in d for d in t["figure_definition"])
    failed = t[t["status"] == "failed"]
    assert len(failed) == 3 and failed["recall"].isna().all() and all("label ?" in s for s in failed["status_reason"])
    ok = t[t["status"] == "ok"].set_index("workload")
    assert ok.loc["vdbb-performance-1536d-500k", "recall"] == pytest.approx(0.8528)
    assert ok.loc["vdbb-performance-1536d-500k", "source_p99_us"] == pytest.approx(2_523_000)
    # VectorDBBench's "Filter 1%" drops 1% (id >= 5,000 of 500K), its "Filter 99%" keeps 1%
    assert ok.loc["vdbb-performance-1536d-500k-1p", "filter"] == "file_id>=5000"
    assert ok.loc["vdbb-performance-1536d-500k-99p", ["filter", "selectivity"]].tolist() == ["file_id>=495000", 0.01]
    assert set(ok["index_kind"]) == {"ivf_flat"} and ok["source_version"].isna().all()
    m = _rows(new.run_dir)
    assert len(m) == 32 * 9 and set(m["dataset_name"]) == {"cohere-768-1m", "cohere-768-10m"}
    assert set(m["index_kind"]) == {"hnsw_sq"} and set(m["index_m"]) == {16} and set(m["index_ef_construction"]) == {300}
    levels = m[m["op"] == "search"]
    best = levels.loc[levels.groupby(["workload", "ef_search", "backend_server_version", "source_params"])["source_qps"]
                      .idxmax()]
    assert np.allclose(best["source_qps"], best["source_headline_qps"])  # the headline is the best level


def test_import_refuses_unreadable_or_unknown_files_in_one_sentence(bench_cli, tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "other.json").write_text('{"a": 1}')
    (tmp_path / "broken.json").write_text('{"run_id": ')
    (tmp_path / "trunc.hdf5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 50)
    with h5py.File(tmp_path / "dataset.hdf5", "w") as f:  # an ann-benchmarks dataset, not a result
        f.create_dataset("train", data=np.zeros((4, 2), dtype=np.float32))
    for name in ("notes.txt", "other.json", "broken.json", "trunc.hdf5", "dataset.hdf5", "missing.json"):
        _one_line_error(bench_cli("import", str(tmp_path / name), "--out", str(tmp_path / "res")))
    assert bench_cli("import", str(VDBB_OWN), "--out", str(tmp_path / "res")).returncode == 0
    again = bench_cli("import", str(VDBB_OWN), "--out", str(tmp_path / "res"))
    _one_line_error(again)
    assert "imported already" in again.stderr


# -- ann-benchmarks ---------------------------------------------------------------------------------------------

def _annb_dataset(path: Path, train: np.ndarray, test: np.ndarray) -> None:
    with h5py.File(path, "w") as f:
        f.attrs["distance"] = "euclidean"
        f.create_dataset("train", data=train)
        f.create_dataset("test", data=test)
        f.create_dataset("neighbors", data=exact_topk(train, test, 100, "l2").astype(np.int32))


def _annb_result(path: Path, train: np.ndarray, test: np.ndarray, count: int, m: int, efc: int, ef: int) -> None:
    """Search with faiss HNSW and store the result as ann-benchmarks' runner and results.store_results do."""
    faiss = pytest.importorskip("faiss")
    index = faiss.IndexHNSWFlat(train.shape[1], m)
    index.hnsw.efConstruction = efc
    t0 = time.time()
    index.add(train)
    build_time = time.time() - t0
    index.hnsw.efSearch = ef
    results, best = [], float("inf")
    for _ in range(3):  # run_count passes; best_search_time is the fastest pass's mean per query
        results = []
        for v in test:
            start = time.time()
            _, ids = index.search(v[None, :], count)
            total = time.time() - start
            results.append((total, [(int(i), float(np.linalg.norm(v - train[i]))) for i in ids[0] if i >= 0]))
        best = min(best, sum(t for t, _ in results) / len(test))
    method = {"M": m, "efConstruction": efc}
    attrs = {"batch_mode": False, "best_search_time": best, "candidates": float(count), "expect_extra": False,
             "name": f"faiss ({method}, 'efSearch': {ef})", "run_count": 3, "distance": "euclidean",
             "count": count, "build_time": build_time, "index_size": 2048.0, "algo": "faiss-hnsw",
             "dataset": "tiny-16-euclidean"}
    with h5py.File(path, "w") as f:  # results.store_results, line for line
        for k, v in attrs.items():
            f.attrs[k] = v
        times = f.create_dataset("times", (len(results),), "f")
        neighbors = f.create_dataset("neighbors", (len(results), count), "i")
        distances = f.create_dataset("distances", (len(results), count), "f")
        for i, (t, ds) in enumerate(results):
            times[i] = t
            neighbors[i] = [n for n, d in ds] + [-1] * (count - len(ds))
            distances[i] = [d for n, d in ds] + [float("inf")] * (count - len(ds))


def test_annb_result_imports_with_recall_from_its_ids(bench_cli, tmp_path) -> None:
    rng = np.random.default_rng(3)
    train, test = rng.standard_normal((2000, 16)).astype(np.float32), rng.standard_normal((50, 16)).astype(np.float32)
    _annb_dataset(tmp_path / "tiny.hdf5", train, test)
    res = tmp_path / "results" / "tiny-16-euclidean" / "10" / "faiss-hnsw" / "M_8_efConstruction_40_4.hdf5"
    res.parent.mkdir(parents=True)
    _annb_result(res, train, test, 10, 8, 40, 4)
    r = bench_cli("import", str(res), "--out", str(tmp_path / "out"), "--dataset", str(tmp_path / "tiny.hdf5"))
    assert r.returncode == 0, r.stderr
    (run,) = _imported(r.stdout)
    row = _rows(run).iloc[0]
    with h5py.File(res) as f:
        found, best = np.asarray(f["neighbors"]), float(f.attrs["best_search_time"])
        times = np.asarray(f["times"], dtype=np.float64)
    truth = exact_topk(train, test, 10, "l2")
    want = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)])
    assert row["recall"] == pytest.approx(want) and 0 < row["recall"] <= 1
    assert row["source_qps"] == pytest.approx(1 / best) and row["source_headline_qps"] == pytest.approx(1 / best)
    assert row["source_p50_us"] == pytest.approx(np.percentile(times, 50) * 1e6, rel=1e-4) and np.isnan(row["qps"])
    assert (row["source_tool"], row["backend"], row["k"], row["dataset_metric"], row["dataset_n"]) == (
        "ann-benchmarks", "faiss-hnsw", 10, "l2", 2000)
    assert (row["index_m"], row["index_ef_construction"], row["ef_search"]) == (8, 40, 4)
    assert "best of the passes" in row["figure_definition"] and json.loads(row["source_params"])["run_count"] == 3
    assert len(row["recall_per_query"]) == 50
    alone = bench_cli("import", str(res), "--out", str(tmp_path / "out2"))  # no dataset: no recall, and why
    row2 = _rows(_imported(alone.stdout)[0]).iloc[0]
    assert np.isnan(row2["recall"]) and "recall not computed" in row2["status_reason"]


# -- side by side -----------------------------------------------------------------------------------------------

def _wordnet_folder(tmp_path: Path) -> Path:
    v = np.load(WORDNET).astype(np.float32)
    return write_custom_dataset(tmp_path / "wordnet-mpnet-768", v[:-200], v[-200:], "cosine")


def _workload(tmp_path: Path, folder: Path, m: int = 16, efc: int = 64, k: int = 10) -> Path:
    path = tmp_path / f"wordnet-{m}-{efc}-{k}.toml"
    path.write_text(f"""name = "wordnet-side-by-side"
kind = "ann"
[dataset]
source = "file"
path = "{folder}"
n = 4000
queries = 200
metric = "cosine"
ground_truth = "file"
[index]
kind = "hnsw"
m = {m}
ef_construction = {efc}
[search]
k = {k}
ef_search = [64]
[run]
trials = 1
warmup_s = 0
min_operations = 1
""")
    return path


def test_compare_puts_vdbb_rows_beside_bench_rows_of_the_same_case(bench_cli, tmp_path) -> None:
    folder = _wordnet_folder(tmp_path)
    own = bench_cli("run", "--backend", "faiss", "--workload", str(_workload(tmp_path, folder)), "--quiet",
                    "--results-dir", str(tmp_path / "res"), "--trials", "1")
    assert own.returncode == 0, own.stderr
    # the file records VectorDBBench's folder; point a copy at this test's copy of the same files
    data = json.loads(VDBB_OWN.read_text())
    data["results"][0]["task_config"]["case_config"]["custom_case"]["dataset_config"]["dir"] = str(folder)
    (tmp_path / "vdbb.json").write_text(json.dumps(data))
    assert bench_cli("import", str(tmp_path / "vdbb.json"), str(VDBB_MILVUS_2026), "--out",
                     str(tmp_path / "res")).returncode == 0
    r = bench_cli("compare", str(tmp_path / "res"), "--format", "markdown")
    assert r.returncode == 0, r.stderr
    tables = r.stdout.split("### ")
    (side,) = [t for t in tables if t.startswith("wordnet-side-by-side on wordnet-mpnet-768")]
    body = [line for line in side.splitlines() if line.startswith("| faiss") or line.startswith("| pgvector")]
    assert len(body) == 4  # bench's faiss row and VectorDBBench's three pgvector rows, in one table
    assert any("| bench |" in b for b in body) and sum("| vectordbbench |" in b for b in body) == 3
    assert "data#" in side.splitlines()[0] and "definition 1:" in side  # same data hash; figures defined
    milvus = [t for t in tables if t and "cohere-768-1m" in t.splitlines()[0]]
    assert milvus and "| bench |" not in milvus[0]
    apart = [line for line in r.stdout.splitlines() if line.startswith("- The vectordbbench rows")]
    assert apart and all("not shown beside bench's rows" in a and a.endswith(").") for a in apart)
    assert "k 100 against 10" in apart[0]
    html = bench_cli("report", str(tmp_path / "res"), "--out", str(tmp_path / "rep"))
    assert html.returncode == 0, html.stderr
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "vectordbbench" in page and "not shown beside bench&#x27;s rows" in page


def test_other_index_settings_stand_apart(bench_cli, tmp_path) -> None:
    folder = _wordnet_folder(tmp_path)
    own = bench_cli("run", "--backend", "faiss", "--workload", str(_workload(tmp_path, folder, m=32)), "--quiet",
                    "--results-dir", str(tmp_path / "res"), "--trials", "1")
    assert own.returncode == 0, own.stderr
    assert bench_cli("import", str(VDBB_OWN), "--out", str(tmp_path / "res")).returncode == 0
    r = bench_cli("compare", str(tmp_path / "res"), "--format", "markdown")
    (note,) = [line for line in r.stdout.splitlines() if line.startswith("- The vectordbbench rows")]
    assert "M 16 against 32" in note and "size" not in note  # only what differs is named


@pytest.mark.server
def test_pgvector_run_and_vdbb_result_in_one_table(bench_cli, tmp_path) -> None:
    from backend_options import server_options

    server_options("pgvector")
    folder = _wordnet_folder(tmp_path)
    own = bench_cli("run", "--backend", "pgvector", "--workload", str(_workload(tmp_path, folder)), "--quiet",
                    "--results-dir", str(tmp_path / "res"), "--trials", "1", "--set", "run.duration_s=2")
    assert own.returncode == 0, own.stderr
    assert bench_cli("import", str(VDBB_OWN), "--out", str(tmp_path / "res")).returncode == 0
    r = bench_cli("compare", str(tmp_path / "res"), "--format", "csv")
    df = pd.read_csv(__import__("io").StringIO(r.stdout.split("\n\n")[0]))
    assert df["table"].nunique() == 1 and set(df["backend"]) == {"pgvector"}
    assert set(df["source_tool"].fillna("bench")) == {"bench", "vectordbbench"}


# -- standard cases by name -------------------------------------------------------------------------------------

def _numerize(n: int) -> str:  # VectorDBBench's backend/utils.numerize
    for suffix, bound in (("", 1e3), ("K", 1e6), ("M", 1e9)):
        if n < bound:
            return f"{int(n / (bound / 1e3))}{suffix}"
    return f"{int(n / 1e9)}B"


# VectorDBBench 2.0.0's dataset.py: name, (size -> label, files); every set cosine
VDBB_SETS = {"cohere": ("Cohere", 768, {100_000: ("SMALL", 1), 1_000_000: ("MEDIUM", 1), 10_000_000: ("LARGE", 10)}),
             "openai": ("OpenAI", 1536, {50_000: ("SMALL", 1), 500_000: ("MEDIUM", 1), 5_000_000: ("LARGE", 10)})}


def test_catalog_sets_are_vectordbbench_sets_as_its_dataset_py_names_them() -> None:
    entries = [e for e in CATALOG.values() if e.origin == "VectorDBBench"]
    assert len(entries) == 6
    for e in entries:
        family, dim, sizes = VDBB_SETS[e.name.split("-")[0]]
        label, parts = sizes[e.base]
        folder = f"{family}_{label}_{_numerize(e.base)}".lower()  # BaseDataset.dir_name
        train = (["shuffle_train.parquet"] if parts == 1  # utils.compose_train_files(parts, use_shuffled=True)
                 else [f"shuffle_train-{i:02d}-of-{parts}.parquet" for i in range(parts)])
        required = [f.name for f in e.files if f.required]
        assert required == [*train, "test.parquet", "neighbors.parquet"] and e.dim == dim and e.metric == "cosine"
        assert all(f.url == f"https://assets.zilliz.com/benchmark/{folder}/{f.name}" for f in e.files)


def test_every_vdbb_workload_is_its_case() -> None:
    files = sorted((REPO_ROOT / "workloads" / "vdbb").glob("performance-*.toml"))  # label-filter-*: test_vdbb_labels
    cases = {c.workload: c for c in vdbb.CASES.values() if c.dataset}
    assert len(files) == len(cases) == 13
    for path in files:
        spec = load_workload(f"vdbb/{path.stem}")
        c = cases[spec.name]
        entry = CATALOG[c.dataset]
        assert (spec.dataset.source, spec.dataset.n, spec.dataset.dim, spec.dataset.metric, spec.search.k) == (
            c.dataset, c.n, c.dim, c.metric, 100) and (entry.base, entry.dim) == (c.n, c.dim)
        assert c.name in spec.description and c.name in path.read_text()
        f = spec.feature("filter")
        if c.filter_rate is None:
            assert f is None and spec.dataset.ground_truth == "file"
        else:
            assert f.kind == "id_ge" and f.selectivities == [pytest.approx(1 - c.filter_rate)]
            assert f"id >= {int(c.n * c.filter_rate):,}" in path.read_text()
    for path in sorted((REPO_ROOT / "workloads" / "annb").glob("*.toml")):
        spec = load_workload(f"annb/{path.stem}")
        entry = CATALOG[path.stem]
        assert (spec.dataset.source, spec.dataset.n, spec.dataset.dim, spec.dataset.metric, spec.dataset.queries,
                spec.search.k, spec.dataset.ground_truth) == (entry.name, entry.base, entry.dim, entry.metric,
                                                               entry.queries, 10, "file")
    assert resolve_workload_path("vdbb/performance-768d-1m").name == "performance-768d-1m.toml"
    globs = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["bench"]
    assert {"workloads/vdbb/*.toml", "workloads/annb/*.toml"} <= set(globs)


def _vdbb_folder(tmp_path: Path, n: int = 2000, nq: int = 8) -> dict[str, bytes]:
    """A small set in VectorDBBench's published layout: shuffled ids, queries, neighbours, filtered neighbours."""
    rng = np.random.default_rng(9)
    train = rng.standard_normal((n, 768)).astype(np.float32)
    test = rng.standard_normal((nq, 768)).astype(np.float32)
    ids = rng.permutation(n)  # shuffle_train: a shuffled set keeps its ids
    files: dict[str, bytes] = {}

    def put(name: str, table: pa.Table) -> None:
        pq.write_table(table, tmp_path / name)
        files[f"/cohere/{name}"] = (tmp_path / name).read_bytes()

    emb = pa.list_(pa.float32())
    put("shuffle_train.parquet", pa.table({"id": ids, "emb": pa.array(list(train), type=emb)}))
    put("test.parquet", pa.table({"id": np.arange(nq), "emb": pa.array(list(test), type=emb)}))
    by_id = np.empty_like(train)
    by_id[ids] = train
    for name, keep in (("neighbors.parquet", None), ("neighbors_head_1p.parquet", np.arange(n) >= int(n * 0.01)),
                       ("neighbors_tail_1p.parquet", np.arange(n) >= int(n * 0.99))):
        nb = exact_topk(by_id, test, 10, "cosine", mask=keep)
        put(name, pa.table({"id": np.arange(nq), "neighbors_id": pa.array([list(r) for r in nb])}))
    return files


def test_vdbb_parquet_set_with_its_int_filter_ground_truth(tmp_path: Path) -> None:
    """Fetched over loopback in VectorDBBench's layout: bench's id_ge filter keeps the rows VectorDBBench's
    `id >= int(n * rate)` keeps, and its exact filtered top-k is the ground truth VectorDBBench publishes."""
    from bench.scenarios.base import Prep
    from bench.scenarios.filtered import FilterModel, FilterScenario

    files = _vdbb_folder(tmp_path)
    cache = tmp_path / "cache"
    with serve_files(files) as (url, st):
        fetch("cohere-768-1m", datasets_dir(cache), url_override=url + "/cohere/", **FAST)
    label_files = [f"/cohere/{f}" for f in VDBB_LABEL_FILES]  # asked for too; not served here, so skipped
    assert sorted(p for p, _ in st.requests) == sorted([*files, *label_files])
    ds = load(DatasetSpec(source="cohere-768-1m", n=2000, queries=8, ground_truth="file"), cache, progress=False)
    ids = pq.read_table(tmp_path / "shuffle_train.parquet").column("id").to_numpy()
    assert np.array_equal(ds.row_ids, ids)
    spec = load_workload("vdbb/performance-768d-1m-1p", ["dataset.n=2000", "dataset.queries=8"])
    sc = FilterScenario(FilterModel(kind="id_ge", selectivities=[0.99, 0.01]), spec)
    sc.prepare(Prep(spec, ds, cache, False, print, None))  # type: ignore[arg-type]
    for case, gt_file in zip(sc.cases, ("neighbors_head_1p.parquet", "neighbors_tail_1p.parquet"), strict=True):
        mask = sc.masks[case.key]
        assert np.array_equal(mask, ids >= int(2000 * round(1 - case.selectivity, 12)))
        published = pq.read_table(tmp_path / gt_file).column("neighbors_id").to_pylist()
        pos = np.empty(2000, dtype=np.int64)
        pos[ids] = np.arange(2000)
        mine = exact_topk(ds.base_rows, ds.queries, 10, "cosine", mask=mask)
        assert np.array_equal(mine, pos[np.array(published)])
    assert [c.label for c in sc.cases] == ["file_id>=20", "file_id>=1980"]


def test_id_ge_filter_runs_end_to_end_on_the_file_ids(bench_cli, tmp_path) -> None:
    folder = _wordnet_folder(tmp_path)
    ids = np.random.default_rng(1).permutation(4000)  # a shuffled file: the filter must follow its ids
    t = pq.read_table(folder / "train.parquet")
    pq.write_table(t.set_column(0, "id", pa.array(ids)), folder / "train.parquet")
    wl = _workload(tmp_path, folder)
    text = wl.read_text().replace('ground_truth = "file"', 'ground_truth = "exact"')
    wl.write_text(text + '[filter]\nkind = "id_ge"\nselectivities = [0.01]\n')
    r = bench_cli("run", "--backend", "qdrant-edge", "--workload", str(wl), "--quiet", "--json",
                  "--results-dir", str(tmp_path / "res"))
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout)["summary"]
    assert row["filter"] == "file_id>=3960" and row["recall"] > 0.9


@pytest.mark.parametrize(("field", "value"), [("recall", "0.9"), ("qps", "fast"), ("conc_qps_list", [339.8, "x"]),
                                              ("serial_latency_p99", True)])
def test_vdbb_import_refuses_a_value_of_the_wrong_type_naming_file_field_and_row(bench_cli, tmp_path, field,
                                                                                  value) -> None:
    """Issue 26, case L: a string where a number belongs is refused (exit 2, one sentence naming the file, the
    field and the result), never imported as an empty figure beside an `ok` status."""
    data = json.loads(VDBB_OWN.read_text())
    data["results"][0]["metrics"][field] = value
    bad = tmp_path / "result_bad.json"
    bad.write_text(json.dumps(data))
    r = bench_cli("import", str(bad), "--out", str(tmp_path / "res"))
    _one_line_error(r)
    shown = f"{field}[1]" if isinstance(value, list) else field
    assert f"{bad}: result 0 has metrics.{shown} = " in r.stderr and "which is not a number" in r.stderr, r.stderr
    assert not (tmp_path / "res").exists() or not list((tmp_path / "res").rglob("*.parquet"))
