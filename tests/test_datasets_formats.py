"""Vector file loaders, each on a tiny file made here: npy, fvecs/bvecs/ivecs, HDF5 (ann-benchmarks), parquet."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.datasets import DatasetSpec, exact_topk, formats, load
from bench.datasets.formats import read_ivecs
from bench.errors import UserError

RNG = np.random.default_rng(11)


def vectors(n: int, dim: int = 12) -> np.ndarray:
    return RNG.standard_normal((n, dim)).astype(np.float32)


def write_vecs(path: Path, arr: np.ndarray, dtype: str) -> Path:
    d = arr.shape[1]
    rec = np.empty(len(arr), dtype=[("d", "<i4"), ("v", dtype, (d,))])
    rec["d"] = d
    rec["v"] = arr
    rec.tofile(path)
    return path


def file_spec(path: Path, **kw: object) -> DatasetSpec:
    return DatasetSpec(source="file", path=str(path), **kw)


def write_hdf5(path: Path, train: np.ndarray, test: np.ndarray, distance: str = "euclidean", k: int = 10,
               **dataset_kw: object) -> np.ndarray:
    metric = {"euclidean": "l2", "angular": "cosine", "dot": "ip"}[distance]
    nb = exact_topk(train, test, k, metric)
    with h5py.File(path, "w") as f:
        f.create_dataset("train", data=train, **dataset_kw)
        f.create_dataset("test", data=test)
        f.create_dataset("neighbors", data=nb.astype(np.int32))
        f.create_dataset("distances", data=np.zeros(nb.shape, dtype=np.float32))
        f.attrs["distance"] = distance
        f.attrs["type"] = "dense"
    return nb


# -- .npy ----------------------------------------------------------------------------------------------------

def test_npy_is_memory_mapped_and_split_into_base_queries_holdout(tmp_path: Path) -> None:
    data = vectors(300)
    np.save(tmp_path / "v.npy", data)
    ds = load(file_spec(tmp_path / "v.npy", n=200, queries=40, holdout=30), tmp_path / "cache", progress=False)
    assert isinstance(ds.base, np.memmap)
    assert ds.dim == 12 and ds.name == "v"
    assert np.array_equal(ds.base, data[:200])
    assert np.array_equal(ds.queries, data[200:240])
    assert np.array_equal(ds.holdout, data[240:270])
    assert np.array_equal(np.concatenate([v for _, v in ds.batches(64)]), data[:200])


def test_npy_float16_and_float64_are_converted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = vectors(120)
    np.save(tmp_path / "h.npy", data.astype(np.float16))
    ds = load(file_spec(tmp_path / "h.npy", n=100, queries=20), tmp_path / "c", progress=False)
    assert ds.base.dtype == np.float32
    np.testing.assert_allclose(ds.base, data[:100], atol=5e-3)
    # Large conversions go to a cached float32 .npy, memory-mapped.
    monkeypatch.setattr(formats, "IN_MEMORY_LIMIT", 0)
    np.save(tmp_path / "d.npy", data.astype(np.float64))
    ds = load(file_spec(tmp_path / "d.npy", n=100, queries=20), tmp_path / "c", progress=False)
    assert isinstance(ds.base, np.memmap) and ds.base.dtype == np.float32
    assert np.array_equal(ds.base, data[:100])
    assert len(list((tmp_path / "c" / "converted").glob("*.npy"))) == 1


def test_separate_queries_file(tmp_path: Path) -> None:
    base, queries = vectors(100), vectors(30)
    np.save(tmp_path / "b.npy", base)
    write_vecs(tmp_path / "q.fvecs", queries, "<f4")
    ds = load(file_spec(tmp_path / "b.npy", queries_path=str(tmp_path / "q.fvecs"), n=100, queries=25),
              tmp_path / "c", progress=False)
    assert np.array_equal(ds.queries, queries[:25]) and ds.n == 100
    np.save(tmp_path / "q8.npy", vectors(30, 8))
    with pytest.raises(UserError, match="dimension 8 but the vectors .* have 12"):
        load(file_spec(tmp_path / "b.npy", queries_path=str(tmp_path / "q8.npy"), n=100, queries=25), tmp_path / "c")


# -- .fvecs / .bvecs / .ivecs --------------------------------------------------------------------------------

def test_fvecs_bvecs_ivecs(tmp_path: Path) -> None:
    data = vectors(80, 10)
    write_vecs(tmp_path / "a.fvecs", data, "<f4")
    ds = load(file_spec(tmp_path / "a.fvecs", n=60, queries=20), tmp_path / "c", progress=False)
    assert isinstance(ds.base, np.memmap) and ds.base.shape == (60, 10)
    assert np.array_equal(ds.base, data[:60]) and np.array_equal(ds.queries, data[60:])
    assert np.array_equal(np.concatenate([v for _, v in ds.batches(7)]), data[:60])

    raw = RNG.integers(0, 256, (50, 16)).astype(np.uint8)
    write_vecs(tmp_path / "b.bvecs", raw, "u1")
    ds = load(file_spec(tmp_path / "b.bvecs", n=40, queries=10, metric="l2"), tmp_path / "c", progress=False)
    assert ds.base.dtype == np.float32 and np.array_equal(ds.base, raw[:40].astype(np.float32))

    ids = RNG.integers(0, 1000, (5, 7)).astype(np.int32)
    write_vecs(tmp_path / "gt.ivecs", ids, "<i4")
    assert np.array_equal(read_ivecs(tmp_path / "gt.ivecs"), ids)
    with pytest.raises(UserError, match="integer ids"):
        load(file_spec(tmp_path / "gt.ivecs"), tmp_path / "c")


def test_neighbors_path_serves_as_ground_truth(tmp_path: Path) -> None:
    data = vectors(120)
    np.save(tmp_path / "v.npy", data)
    nb = exact_topk(data[:100], data[100:110], 10, "l2")
    write_vecs(tmp_path / "gt.ivecs", nb.astype(np.int32), "<i4")
    spec = file_spec(tmp_path / "v.npy", n=100, queries=10, metric="l2", neighbors_path=str(tmp_path / "gt.ivecs"),
                     ground_truth="file")
    ds = load(spec, tmp_path / "c", progress=False)
    assert np.array_equal(ds.ground_truth(10), nb)
    with pytest.raises(UserError, match="publishes 10 neighbours per query but k = 11"):
        ds.ground_truth(11)


# -- HDF5 ----------------------------------------------------------------------------------------------------

def test_hdf5_ann_benchmarks_layout(tmp_path: Path) -> None:
    train, test = vectors(500, 16), vectors(40, 16)
    nb = write_hdf5(tmp_path / "tiny-16-euclidean.hdf5", train, test, "euclidean")
    ds = load(DatasetSpec(source="file", path=str(tmp_path / "tiny-16-euclidean.hdf5"), n=500, queries=40),
              tmp_path / "c", progress=False)
    assert ds.dim == 16 and ds.metric == "l2"  # both taken from the file since the spec did not set them
    assert isinstance(ds.base, np.memmap) and np.array_equal(ds.base, train)
    assert np.array_equal(ds.queries, test)
    assert ds.describe()["published_neighbors"] is True
    assert np.array_equal(ds.published_ground_truth(10), nb)
    assert np.array_equal(ds.ground_truth(10, progress=False), nb)  # exact, computed by us, agrees
    # First n rows only: the file's neighbours no longer apply.
    part = load(DatasetSpec(source="file", path=str(tmp_path / "tiny-16-euclidean.hdf5"), n=300, queries=40,
                            holdout=100), tmp_path / "c", progress=False)
    assert part.describe()["published_neighbors"] is False
    assert np.array_equal(part.holdout, train[300:400])
    with pytest.raises(UserError, match="no published neighbours"):
        load(DatasetSpec(source="file", path=str(tmp_path / "tiny-16-euclidean.hdf5"), n=300, queries=40,
                         ground_truth="file"), tmp_path / "c")


def test_hdf5_compressed_and_angular(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train, test = vectors(400, 8), vectors(20, 8)
    write_hdf5(tmp_path / "z.hdf5", train, test, "angular", compression="gzip", chunks=(64, 8))
    monkeypatch.setattr(formats, "IN_MEMORY_LIMIT", 0)
    ds = load(DatasetSpec(source="file", path=str(tmp_path / "z.hdf5"), n=400, queries=20), tmp_path / "c",
              progress=False)
    assert ds.metric == "cosine" and isinstance(ds.base, np.memmap)
    assert np.array_equal(ds.base, train)
    gt = ds.ground_truth(10, progress=False)
    assert np.array_equal(gt, ds.published_ground_truth(10))
    # The metric can be overridden; the file's neighbours then do not apply.
    ip = load(DatasetSpec(source="file", path=str(tmp_path / "z.hdf5"), n=400, queries=20, metric="ip"),
              tmp_path / "c", progress=False)
    assert ip.metric == "ip" and not ip.has_published_neighbors


# -- parquet -------------------------------------------------------------------------------------------------

def write_parquet(path: Path, ids: np.ndarray, vecs: np.ndarray, row_group_size: int | None = None) -> None:
    emb = pa.array(list(vecs), type=pa.list_(pa.float32()))
    pq.write_table(pa.table({"id": pa.array(ids, type=pa.int64()), "emb": emb}), path,
                   row_group_size=row_group_size)


def test_parquet_vectordbbench_folder_with_shuffled_ids(tmp_path: Path) -> None:
    folder = tmp_path / "cohere_tiny"
    folder.mkdir()
    data, test = vectors(300, 24), vectors(15, 24)
    perm = RNG.permutation(300)  # file row r holds the vector with id perm[r]
    write_parquet(folder / "shuffle_train.parquet", perm, data[perm], row_group_size=70)
    write_parquet(folder / "test.parquet", np.arange(100, 115), test)
    nb_ids = exact_topk(data, test, 12, "cosine")  # in ids
    pq.write_table(pa.table({"id": pa.array(np.arange(100, 115), type=pa.int64()),
                             "neighbors_id": pa.array([list(r) for r in nb_ids], type=pa.list_(pa.int64()))}),
                   folder / "neighbors.parquet")
    ds = load(DatasetSpec(source="file", path=str(folder), n=300, queries=15), tmp_path / "c", progress=False)
    assert ds.name == "cohere_tiny" and ds.dim == 24
    assert np.array_equal(ds.base, data[perm]) and np.array_equal(ds.queries, test)
    exact = ds.ground_truth(12, progress=False)  # in row numbers
    assert np.array_equal(ds.published_ground_truth(12), exact)
    assert np.array_equal(perm[exact], nb_ids)


def test_parquet_single_file_streams_through_a_cached_npy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = vectors(250, 6)
    write_parquet(tmp_path / "train.parquet", np.arange(250), data, row_group_size=33)
    monkeypatch.setattr(formats, "IN_MEMORY_LIMIT", 0)
    ds = load(DatasetSpec(source="file", path=str(tmp_path / "train.parquet"), n=200, queries=50),
              tmp_path / "c", progress=False)
    assert isinstance(ds.base, np.memmap) and np.array_equal(ds.base, data[:200])
    assert np.array_equal(ds.queries, data[200:])


def test_parquet_problems_are_user_errors(tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": [0, 1], "emb": pa.array([[1.0, 2.0], None], type=pa.list_(pa.float32()))}),
                   tmp_path / "nulls.parquet")
    with pytest.raises(UserError, match="nulls.parquet has 1 empty"):
        load(DatasetSpec(source="file", path=str(tmp_path / "nulls.parquet"), n=1, queries=1), tmp_path / "c")
    pq.write_table(pa.table({"id": [0, 1, 2], "emb": pa.array([[1.0, 2.0], [1.0], [3.0, 4.0]])}),
                   tmp_path / "ragged.parquet")
    with pytest.raises(UserError, match="ragged.parquet mixes vector lengths"):
        load(DatasetSpec(source="file", path=str(tmp_path / "ragged.parquet"), n=2, queries=1), tmp_path / "c")
    pq.write_table(pa.table({"id": [0, 1], "name": ["a", "b"]}), tmp_path / "novec.parquet")
    with pytest.raises(UserError, match="no column of float lists"):
        load(DatasetSpec(source="file", path=str(tmp_path / "novec.parquet"), n=1, queries=1), tmp_path / "c")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(UserError, match="bad.parquet is not a readable parquet file"):
        load(DatasetSpec(source="file", path=str(tmp_path / "bad.parquet"), n=1, queries=1), tmp_path / "c")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(UserError, match="no train.parquet"):
        load(DatasetSpec(source="file", path=str(tmp_path / "empty_dir"), n=1, queries=1), tmp_path / "c")


# -- problems every format reports as one sentence -----------------------------------------------------------

def test_missing_unknown_truncated_and_corrupt_files(tmp_path: Path) -> None:
    c = tmp_path / "c"
    with pytest.raises(UserError, match="nothere.npy does not exist"):
        load(file_spec(tmp_path / "nothere.npy"), c)
    (tmp_path / "v.csv").write_text("1,2,3\n")
    with pytest.raises(UserError, match="unknown format '.csv'.*use .npy"):
        load(file_spec(tmp_path / "v.csv"), c)

    np.save(tmp_path / "t.npy", vectors(100))
    raw = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError, match=r"t.npy is truncated: its header announces 100 x 12"):
        load(file_spec(tmp_path / "t.npy", n=50, queries=10), c)
    (tmp_path / "junk.npy").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(UserError, match="junk.npy is not a readable .npy file"):
        load(file_spec(tmp_path / "junk.npy"), c)
    np.save(tmp_path / "3d.npy", np.zeros((2, 3, 4), dtype=np.float32))
    with pytest.raises(UserError, match=r"shape \(2, 3, 4\), not a matrix"):
        load(file_spec(tmp_path / "3d.npy"), c)

    write_vecs(tmp_path / "v.fvecs", vectors(20, 10), "<f4")
    data = (tmp_path / "v.fvecs").read_bytes()
    (tmp_path / "cut.fvecs").write_bytes(data[:-7])
    with pytest.raises(UserError, match="cut.fvecs is truncated or corrupt"):
        load(file_spec(tmp_path / "cut.fvecs"), c)
    (tmp_path / "neg.fvecs").write_bytes(np.array([-3], dtype="<i4").tobytes() + data[4:])
    with pytest.raises(UserError, match="neg.fvecs says its vectors have dimension -3"):
        load(file_spec(tmp_path / "neg.fvecs"), c)

    (tmp_path / "junk.hdf5").write_bytes(b"not hdf5 at all" * 50)
    with pytest.raises(UserError, match="junk.hdf5 is not a readable HDF5 file"):
        load(file_spec(tmp_path / "junk.hdf5"), c)
    with h5py.File(tmp_path / "other.hdf5", "w") as f:
        f.create_dataset("vectors", data=vectors(5))
    with pytest.raises(UserError, match="has no 'train' dataset.*ann-benchmarks layout"):
        load(file_spec(tmp_path / "other.hdf5"), c)
    write_hdf5(tmp_path / "whole.hdf5", vectors(400, 16), vectors(10, 16))
    whole = (tmp_path / "whole.hdf5").read_bytes()
    (tmp_path / "half.hdf5").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UserError, match="half.hdf5"):
        load(file_spec(tmp_path / "half.hdf5", n=400, queries=10), c)


def test_wrong_dimension_and_too_few_rows_name_the_numbers(tmp_path: Path) -> None:
    np.save(tmp_path / "v.npy", vectors(100, 12))
    c = tmp_path / "c"
    with pytest.raises(UserError, match="dimension 12 but dataset.dim = 768; set dataset.dim = 12"):
        load(file_spec(tmp_path / "v.npy", n=50, queries=10, dim=768), c)
    with pytest.raises(UserError, match="100 vectors but dataset.n \\+ dataset.queries \\+ dataset.holdout = 120"):
        load(file_spec(tmp_path / "v.npy", n=100, queries=10, holdout=10), c)
    write_hdf5(tmp_path / "h.hdf5", vectors(50, 12), vectors(5, 12))
    with pytest.raises(UserError, match="has 5 queries but dataset.queries = 6"):
        load(file_spec(tmp_path / "h.hdf5", n=50, queries=6), c)
    with pytest.raises(UserError, match="50 vectors but dataset.n \\+ dataset.holdout = 51"):
        load(file_spec(tmp_path / "h.hdf5", n=50, queries=5, holdout=1), c)
