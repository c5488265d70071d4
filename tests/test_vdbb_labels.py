"""VectorDBBench's label-filter cases (LabelFilterPerformanceCase, `labels == "label_5p"`) as bench workloads.

A tiny set in VectorDBBench's published layout (shuffle_train, test, neighbors, scalar_labels.parquet and one label
ground-truth file, as its backend/dataset.py and backend/filter.py name them) is served on a loopback HTTP server,
fetched, and run end to end with `bench run` on real engines; bench's exact filtered top-k is checked against the
label ground-truth file written in that layout.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_datasets_fetch import FAST, serve_files

from bench.datasets import DatasetSpec, exact_topk, fetch, load
from bench.datasets.fetch import CATALOG, VDBB_LABEL_FILES, datasets_dir
from bench.datasets.filtered import LABEL_PERCENTAGES, label_ground_truth_file, label_value, read_labels
from bench.importers import vdbb
from bench.metrics.recall import per_search_recall
from bench.metrics.scoring import Kept
from bench.spec import REPO_ROOT
from bench.workload_file import load_workload

N, NQ, K = 2000, 8, 10
CASE = "label-filter-5.0p-medium-cohere-768dim-1m"  # Label-Filter-5.0% - Medium Cohere (768dim, 1M)
SIZED = ("Small Cohere (768dim, 100K)", "Medium Cohere (768dim, 1M)", "Large Cohere (768dim, 10M)",
         "Small OpenAI (1536dim, 50K)", "Medium OpenAI (1536dim, 500K)", "Large OpenAI (1536dim, 5M)")


def test_label_names_are_vectordbbench_s() -> None:
    # backend/filter.py LabelFilter.label_value / groundtruth_file, backend/cases.py LabelFilterPerformanceCase.name
    assert [label_value(p) for p in LABEL_PERCENTAGES] == [
        "label_0.1p", "label_0.2p", "label_0.5p", "label_1p", "label_2p", "label_5p", "label_10p", "label_20p",
        "label_50p"]
    assert label_ground_truth_file(0.01) == "neighbors_labels_label_1p.parquet"
    assert vdbb.label_case_name(0.05, SIZED[1]) == "Label-Filter-5.0% - Medium Cohere (768dim, 1M)"
    assert vdbb.label_case_name(0.001, SIZED[3]) == "Label-Filter-0.1% - Small OpenAI (1536dim, 50K)"


def test_every_label_filter_workload_is_its_case() -> None:
    files = sorted((REPO_ROOT / "workloads" / "vdbb").glob("label-filter-*.toml"))
    want = {vdbb.label_case_workload(p, s): (p, s) for s in SIZED for p in LABEL_PERCENTAGES}
    assert sorted(p.stem for p in files) == sorted(want) and len(files) == 54
    for path in files:
        p, sized = want[path.stem]
        spec = load_workload(f"vdbb/{path.stem}")
        source, n, dim = vdbb.SIZED[sized]
        entry = CATALOG[source]
        assert (spec.name, spec.dataset.source, spec.dataset.n, spec.dataset.dim, spec.search.k) == (
            f"vdbb-{path.stem}", source, n, dim, 100) and (entry.base, entry.dim) == (n, dim)
        assert vdbb.label_case_name(p, sized) in spec.description and spec.dataset.ground_truth == "exact"
        f = spec.feature("filter")
        assert f.kind == "label" and f.selectivities == [p]
        assert f'labels == "{label_value(p)}"' in path.read_text()
        assert {f.name for f in entry.files if not f.required} >= set(VDBB_LABEL_FILES)
    # bench import names a VectorDBBench label-filter result by the same workload, filter and selectivity
    got = vdbb.case({"case_id": 300, "custom_case": {"dataset_with_size_type": "CohereMedium",
                                                     "label_percentage": 0.05}})
    assert (got["workload"], got["filter"], got["selectivity"]) == (f"vdbb-{CASE}", "labels=label_5p", 0.05)


def _layout(tmp: Path) -> tuple[dict[str, bytes], np.ndarray]:
    """VectorDBBench's layout: shuffled train ids, scalar_labels.parquet (id, labels) in another order, and
    neighbors_labels_label_5p.parquet: the exact top-k among the rows labelled label_5p, by id."""
    rng = np.random.default_rng(17)
    train = rng.standard_normal((N, 768)).astype(np.float32)
    test = rng.standard_normal((NQ, 768)).astype(np.float32)
    ids = rng.permutation(N)
    counts = [round(p * N) for p in LABEL_PERCENTAGES]
    labels_by_id = np.array(sum(([label_value(p)] * c for p, c in zip(LABEL_PERCENTAGES, counts, strict=True)),
                                []) + ["label_rest"] * (N - sum(counts)), dtype=object)
    rng.shuffle(labels_by_id)
    by_id = np.empty_like(train)
    by_id[ids] = train
    files: dict[str, bytes] = {}

    def put(name: str, table: pa.Table) -> None:
        pq.write_table(table, tmp / name)
        files[f"/cohere/{name}"] = (tmp / name).read_bytes()

    emb = pa.list_(pa.float32())
    put("shuffle_train.parquet", pa.table({"id": ids, "emb": pa.array(list(train), type=emb)}))
    put("test.parquet", pa.table({"id": np.arange(NQ), "emb": pa.array(list(test), type=emb)}))
    label_order = rng.permutation(N)
    put("scalar_labels.parquet", pa.table({"id": label_order, "labels": pa.array(labels_by_id[label_order].tolist())}))
    for name, keep in (("neighbors.parquet", None), (label_ground_truth_file(0.05), labels_by_id == "label_5p")):
        nb = exact_topk(by_id, test, K, "cosine", mask=keep)
        put(name, pa.table({"id": np.arange(NQ), "neighbors_id": pa.array([list(r) for r in nb])}))
    return files, labels_by_id


@pytest.fixture(scope="module")
def label_set(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vdbb-labels")
    files, labels_by_id = _layout(tmp)
    cache = tmp / "cache"
    said: list[str] = []
    with serve_files(files) as (url, _):
        fetch("cohere-768-1m", datasets_dir(cache), url_override=url + "/cohere/", say=said.append, **FAST)
    return tmp, cache, labels_by_id, said


def test_fetch_keeps_the_label_files_and_skips_unpublished_ones(label_set) -> None:
    tmp, cache, labels_by_id, said = label_set
    folder = datasets_dir(cache) / "cohere-768-1m"
    assert (folder / "scalar_labels.parquet").is_file() and (folder / label_ground_truth_file(0.05)).is_file()
    skipped = {line.split(":")[0] for line in said if "not published" in line}
    assert skipped == {f.name for f in CATALOG["cohere-768-1m"].files if not f.required} - {
        "scalar_labels.parquet", label_ground_truth_file(0.05)}
    ds = load(DatasetSpec(source="cohere-768-1m", n=N, queries=NQ, ground_truth="file"), cache, progress=False)
    assert list(read_labels(ds)) == list(labels_by_id[ds.row_ids])  # joined on the file's ids, not row order


def _published(tmp: Path, row_ids: np.ndarray) -> np.ndarray:
    """The label ground-truth file, its ids mapped to bench's row numbers."""
    pos = np.empty(N, dtype=np.int64)
    pos[row_ids] = np.arange(N)
    return pos[np.array(pq.read_table(tmp / label_ground_truth_file(0.05)).column("neighbors_id").to_pylist())]


def test_exact_label_filtered_top_k_is_the_published_label_ground_truth(label_set) -> None:
    from bench.scenarios.base import Prep
    from bench.scenarios.filtered import FilterScenario

    tmp, cache, labels_by_id, _ = label_set
    spec = load_workload(f"vdbb/{CASE}", [f"dataset.n={N}", f"dataset.queries={NQ}"])
    ds = load(spec.dataset, cache, progress=False)
    sc = FilterScenario(spec.feature("filter"), spec)
    sc.prepare(Prep(spec, ds, cache, False, print, None))  # type: ignore[arg-type]
    (case,) = sc.cases
    assert case.label == "labels=label_5p" and sc.payload_fields() == {"labels": "keyword"}
    mask = sc.masks[case.key]
    assert np.array_equal(mask, labels_by_id[ds.row_ids] == "label_5p") and mask.sum() == 100
    mine = exact_topk(ds.base_rows, ds.queries, K, "cosine", mask=mask)
    assert np.array_equal(mine, _published(tmp, ds.row_ids))


ENGINES = ["qdrant-edge", pytest.param("pgvector", marks=pytest.mark.server)]


@pytest.mark.parametrize("backend", ENGINES)
def test_label_filter_case_runs_end_to_end(bench_cli, label_set, tmp_path, backend) -> None:
    tmp, cache, labels_by_id, _ = label_set
    sets = [f"dataset.n={N}", f"dataset.queries={NQ}", f"search.k={K}", "search.ef_search=[64]", "run.trials=1",
            "run.warmup_s=0", "run.duration_s=0.5", "run.min_operations=1", "index.ef_construction=64"]
    r = bench_cli("run", "--backend", backend, "--workload", f"vdbb/{CASE}", "--cache-dir", str(cache), "--quiet",
                  "--json", "--results-dir", str(tmp_path / "res"), *[a for s in sets for a in ("--set", s)])
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout)["summary"]
    assert (row["filter"], row["selectivity"]) == ("labels=label_5p", 0.05)
    (run,) = (tmp_path / "res").glob("*/trials.parquet")
    t = pd.read_parquet(run).query("op == 'search'")
    kept = Kept.load(run.parent / t["ids_file"].iloc[0])
    ds = load(DatasetSpec(source="cohere-768-1m", n=N, queries=NQ), cache, progress=False)
    found = kept.search_ids
    assert len(found) and np.isin(found[found >= 0], np.flatnonzero(labels_by_id[ds.row_ids] == "label_5p")).all()
    # the recall bench stored is the recall against the label ground truth VectorDBBench's layout publishes
    against_file = per_search_recall(found, _published(tmp, ds.row_ids)[kept.search_queries], K).mean()
    assert t["recall"].iloc[0] == pytest.approx(against_file) and against_file > 0.8


def test_a_set_without_labels_is_refused_in_one_sentence(bench_cli, label_set, tmp_path) -> None:
    tmp, _, _, _ = label_set
    folder = tmp_path / "nolabels"
    folder.mkdir()
    for name in ("shuffle_train.parquet", "test.parquet"):
        (folder / name).write_bytes((tmp / name).read_bytes())
    wl = tmp_path / "w.toml"
    wl.write_text(f'name = "nolabels"\nkind = "ann"\n[dataset]\nsource = "file"\npath = "{folder}"\nn = {N}\n'
                  f'queries = {NQ}\nmetric = "cosine"\n[search]\nk = {K}\n[filter]\nkind = "label"\n'
                  'selectivities = [0.05]\n[run]\ntrials = 1\nwarmup_s = 0\nmin_operations = 1\n')
    r = bench_cli("run", "--backend", "qdrant-edge", "--workload", str(wl), "--quiet", "--results-dir",
                  str(tmp_path / "res"))
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
    assert "has no scalar_labels.parquet beside its vectors" in r.stderr
