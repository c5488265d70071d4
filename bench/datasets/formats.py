"""Readers of vector files: .npy, .fvecs / .bvecs / .ivecs, HDF5 (ann-benchmarks layout), parquet (VectorDBBench).

Each `open_*` returns a `FileSet`: how many train rows there are and of which dimension, a way to get the first
rows as float32 `Rows` (memory-mapped where the format allows: float32 .npy, .fvecs and contiguous HDF5; other
layouts are converted once, in blocks, to a cached .npy), the separate query rows if the file carries them,
the metric the file declares, and its published neighbours.

Every problem with a file is a `UserError` naming the file, the problem and a fix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.datasets import _progress
from bench.datasets._io import ensure_dir, file_identity, key_of, npy_rows, read_npy_header, write_npy_blocks
from bench.datasets.rows import ArrayRows, FileRows, Rows, block_rows_for
from bench.errors import UserError
from bench.files import check_regular_file

IN_MEMORY_LIMIT = 256 << 20  # converted rows up to this size stay in memory; larger go to a cached .npy
MAX_DIM = 65_536
HDF5_METRICS = {"euclidean": "l2", "l2": "l2", "angular": "cosine", "cosine": "cosine", "dot": "ip", "ip": "ip",
                "inner_product": "ip"}
SUFFIXES = ".npy, .fvecs, .bvecs, .hdf5 (ann-benchmarks layout), .parquet or a VectorDBBench folder"

BlockReader = Callable[[int, int], np.ndarray]  # (start, stop) -> rows, any numeric dtype


@dataclass
class FileSet:
    fmt: str
    path: Path
    train_n: int
    dim: int
    read_train: BlockReader
    direct_train: FileRows | None = None  # float32 rows readable in place (memory-mappable)
    test_n: int | None = None
    read_test: BlockReader | None = None
    metric: str | None = None  # declared by the file
    neighbors: Callable[[int], np.ndarray] | None = None  # nq -> (nq, K) int64 train rows, for the full train set
    iter_train: Callable[[int, int], Iterator[np.ndarray]] | None = None  # (count, block) -> blocks, sequential
    train_ids: Callable[[], np.ndarray | None] | None = None  # the file's id of every train row, if it has them
    paths: dict[str, str] = field(default_factory=dict)
    identity: list[dict[str, Any]] = field(default_factory=list)

    def train_rows(self, count: int, cache_dir: Path, progress: bool) -> Rows:
        """The first `count` train rows as float32 Rows."""
        if self.direct_train is not None:
            return self.direct_train.slice(0, count)
        return convert(self.iter_train or _blocks_of(self.read_train), count, self.dim, {"ids": self.identity, "role": "train"}, cache_dir,
                       progress, f"converting {self.path.name}")

    def test_rows(self, count: int) -> np.ndarray:
        assert self.read_test is not None
        return np.ascontiguousarray(self.read_test(0, count), dtype=np.float32)


def _blocks_of(read: BlockReader) -> Callable[[int, int], Iterator[np.ndarray]]:
    def it(count: int, block: int) -> Iterator[np.ndarray]:
        for s in range(0, count, block):
            yield read(s, min(count, s + block))
    return it


def convert(iter_blocks: Callable[[int, int], Iterator[np.ndarray]], count: int, dim: int, identity: dict[str, Any],
            cache_dir: Path, progress: bool, what: str) -> Rows:
    """The first `count` rows, read in blocks and converted to float32: in memory when small, else to a cached
    .npy (reused while the source file is unchanged)."""
    block = block_rows_for(dim, 32 << 20)

    def blocks() -> Iterator[np.ndarray]:
        for b in iter_blocks(count, block):
            yield np.asarray(b, dtype=np.float32)

    if count * dim * 4 <= IN_MEMORY_LIMIT:
        parts = list(blocks())
        return ArrayRows(np.concatenate(parts) if parts else np.empty((0, dim), dtype=np.float32))
    dest = ensure_dir(cache_dir / "converted") / f"{key_of({**identity, 'count': count, 'dim': dim})}.npy"
    if dest.exists():
        try:
            rows = npy_rows(dest)
            if rows.n == count and rows.dim == dim and dest.stat().st_size >= rows.offset + count * rows.stride:
                return rows
        except (OSError, ValueError):
            pass
    with _progress.bar(what, count, progress) as advance:
        return write_npy_blocks(dest, count, dim, blocks(), lambda b: advance(len(b)))


# -- dispatch ------------------------------------------------------------------------------------------------

def open_path(path: Path, *, role: str = "dataset") -> FileSet:
    """Open a vector file or a VectorDBBench folder by its suffix."""
    if not path.exists():
        raise UserError(f"The {role} file {path} does not exist", "check dataset.path (relative paths start in the "
                        "current folder)")
    if path.is_dir():
        return open_parquet(path)
    check_regular_file(path, f"{role} file")  # a FIFO or a device would block the reader forever
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return open_npy(path)
    if suffix in (".fvecs", ".bvecs"):
        return open_vecs(path)
    if suffix in (".hdf5", ".h5"):
        return open_hdf5(path)
    if suffix == ".parquet":
        return open_parquet(path)
    if suffix == ".ivecs":
        raise UserError(f"The {role} file {path} holds integer ids (.ivecs), not vectors",
                        "give it as dataset.neighbors_path and the vectors as dataset.path")
    raise UserError(f"The {role} file {path} has an unknown format '{suffix or '(no suffix)'}'",
                    f"use {SUFFIXES}")


def check_dim(path: Path, dim: int) -> None:
    if not 0 < dim <= MAX_DIM:
        raise UserError(f"The file {path} says its vectors have dimension {dim}, which cannot be right",
                        "the file is corrupt or not in the format its suffix says")


# -- .npy ----------------------------------------------------------------------------------------------------

def _npy_header(path: Path) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    try:
        return read_npy_header(path)
    except Exception as e:  # noqa: BLE001 - numpy's header parser raises ValueError, SyntaxError, TokenError, ...
        raise UserError(f"The file {path} is not a readable .npy file ({e})",
                        "save it with numpy.save, or check that it is not damaged") from None


def open_npy(path: Path) -> FileSet:
    shape, fortran, dtype, offset = _npy_header(path)
    if len(shape) != 2:
        raise UserError(f"The file {path} holds an array of shape {shape}, not a matrix of vectors",
                        "save a 2-D array (rows = vectors)")
    if dtype.kind not in "fiu" or dtype.hasobject:
        raise UserError(f"The file {path} holds {dtype} values, not numbers", "save a float32 array")
    rows, dim = int(shape[0]), int(shape[1])
    check_dim(path, dim)
    size = path.stat().st_size
    need = offset + rows * dim * dtype.itemsize
    if size < need:
        raise UserError(f"The file {path} is truncated: its header announces {rows:,} x {dim} {dtype} values "
                        f"({need:,} bytes) but it has {size:,} bytes", "write or copy it again")
    direct = None
    if dtype == np.dtype("<f4") and not fortran:
        direct = FileRows.contiguous(path, offset, rows, dim)

    def read(start: int, stop: int) -> np.ndarray:
        if fortran:
            return np.load(path, mmap_mode="r")[start:stop]
        count = (stop - start) * dim
        arr = np.fromfile(path, dtype=dtype, count=count, offset=offset + start * dim * dtype.itemsize)
        return arr.reshape(stop - start, dim)

    return FileSet("npy", path, rows, dim, read, direct_train=direct, paths={"base": str(path)},
                   identity=[file_identity(path)])


# -- .fvecs / .bvecs / .ivecs --------------------------------------------------------------------------------

_VECS = {".fvecs": (np.dtype("<f4"), 4), ".bvecs": (np.dtype("u1"), 1), ".ivecs": (np.dtype("<i4"), 4)}


def _vecs_layout(path: Path) -> tuple[np.dtype, int, int, int]:
    """(value dtype, dim, rows, stride bytes) of a .fvecs/.bvecs/.ivecs file, validated."""
    dtype, width = _VECS[path.suffix.lower()]
    size = path.stat().st_size
    if size < 4:
        raise UserError(f"The file {path} is empty or truncated ({size} bytes)", "download or write it again")
    with open(path, "rb") as f:
        dim = int(np.frombuffer(f.read(4), dtype="<i4")[0])
        check_dim(path, dim)
        stride = 4 + dim * width
        if size % stride:
            raise UserError(f"The file {path} is truncated or corrupt: {size:,} bytes is not a whole number of "
                            f"{dim}-dimensional rows ({stride} bytes each)", "download or write it again")
        rows = size // stride
    _check_row_headers(path, dim, rows, stride)
    return dtype, dim, rows, stride


_HEADER_BLOCK_BYTES = 64 << 20  # read this much at a time while checking row headers


def _check_row_headers(path: Path, dim: int, rows: int, stride: int) -> None:
    """Every row of a .fvecs/.bvecs/.ivecs file starts with its dimension: check all of them, a block at a time
    (a file whose rows differ would otherwise be read with the wrong stride, as vectors of garbage)."""
    block = max(1, _HEADER_BLOCK_BYTES // stride)
    for start in range(0, rows, block):
        n = min(block, rows - start)
        raw = np.fromfile(path, dtype=np.uint8, count=n * stride, offset=start * stride)
        heads = np.ascontiguousarray(raw.reshape(n, stride)[:, :4]).view("<i4").ravel()
        bad = np.flatnonzero(heads != dim)
        if len(bad):
            row = start + int(bad[0])
            raise UserError(f"The file {path} is corrupt: its first row has dimension {dim} but row {row:,} says "
                            f"{int(heads[bad[0]])} ({len(bad):,} rows of this block disagree)",
                            "every row must have the same dimension; download or write it again")


def _vecs_reader(path: Path, dtype: np.dtype, dim: int, stride: int) -> BlockReader:
    def read(start: int, stop: int) -> np.ndarray:
        raw = np.fromfile(path, dtype=np.uint8, count=(stop - start) * stride, offset=start * stride)
        raw = raw.reshape(stop - start, stride)[:, 4:]
        return np.ascontiguousarray(raw).view(dtype).reshape(stop - start, dim)
    return read


def open_vecs(path: Path) -> FileSet:
    dtype, dim, rows, stride = _vecs_layout(path)
    direct = FileRows(path, 0, rows, dim, stride, 4) if dtype == np.dtype("<f4") else None
    return FileSet(path.suffix.lower().lstrip("."), path, rows, dim, _vecs_reader(path, dtype, dim, stride),
                   direct_train=direct, paths={"base": str(path)}, identity=[file_identity(path)])


def read_ivecs(path: Path) -> np.ndarray:
    """All rows of an .ivecs file (e.g. published neighbours) as int64 (rows, dim)."""
    if path.suffix.lower() != ".ivecs":
        raise UserError(f"The file {path} is not an .ivecs file", "give a file ending in .ivecs")
    dtype, dim, rows, stride = _vecs_layout(path)
    return _vecs_reader(path, dtype, dim, stride)(0, rows).astype(np.int64)


def read_query_file(path: Path, count: int) -> np.ndarray:
    """Queries from a separate file (.npy, .fvecs, .bvecs, .parquet): the first `count` rows, float32."""
    fs = open_path(path, role="queries")
    if fs.fmt == "hdf5":
        if fs.read_test is None or fs.test_n is None:
            raise UserError(f"The queries file {path} has no 'test' dataset", "give a file with a 'test' dataset")
        n, read = fs.test_n, fs.read_test
    else:
        n, read = fs.train_n, fs.read_train
    if n < count:
        raise UserError(f"The queries file {path} has {n:,} vectors but dataset.queries = {count:,}",
                        "lower dataset.queries or give a larger file")
    return np.ascontiguousarray(read(0, count), dtype=np.float32)


def read_neighbors_file(path: Path) -> np.ndarray:
    """Published neighbours from .ivecs or .npy: int64 (nq, K) row ids, best first."""
    if not path.exists():
        raise UserError(f"The neighbours file {path} does not exist", "check dataset.neighbors_path")
    check_regular_file(path, "neighbours file")
    if path.suffix.lower() == ".ivecs":
        return read_ivecs(path)
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise UserError(f"The neighbours file {path} is not a readable .npy file ({e})",
                            "save an integer (queries, k) array with numpy.save") from None
        if arr.ndim != 2 or arr.dtype.kind not in "iu":
            raise UserError(f"The neighbours file {path} holds {arr.dtype} of shape {arr.shape}, not integer ids",
                            "save an integer (queries, k) array")
        return arr.astype(np.int64)
    raise UserError(f"The neighbours file {path} has an unknown format", "use .ivecs or .npy")


# -- HDF5 (ann-benchmarks) -----------------------------------------------------------------------------------

def _h5(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise UserError(f"The file {path} is not a readable HDF5 file ({str(e).splitlines()[0]})",
                        "download it again; ann-benchmarks files hold 'train', 'test' and 'neighbors'") from None


def open_hdf5(path: Path) -> FileSet:
    try:
        return _open_hdf5(path)
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as e:  # h5py's errors on damaged metadata
        raise UserError(f"The HDF5 file {path} cannot be read ({str(e).splitlines()[0] if str(e) else type(e).__name__})",
                        "it may be truncated or damaged; download it again") from None


def _open_hdf5(path: Path) -> FileSet:
    with _h5(path) as f:
        if "train" not in f:
            raise UserError(f"The HDF5 file {path} has no 'train' dataset (it has: {', '.join(f.keys()) or 'nothing'})",
                            "use the ann-benchmarks layout: 'train', 'test', 'neighbors', 'distances'")
        train = f["train"]
        if train.ndim != 2:
            raise UserError(f"The 'train' dataset of {path} has shape {train.shape}, not a matrix of vectors",
                            "store the vectors as a 2-D dataset")
        rows, dim = int(train.shape[0]), int(train.shape[1])
        check_dim(path, dim)
        metric = _hdf5_metric(path, f.attrs.get("distance"))
        direct = None
        if train.dtype == np.dtype("<f4") and train.chunks is None and train.compression is None and rows:
            offset = train.id.get_offset()
            if offset is not None:
                if path.stat().st_size < offset + rows * dim * 4:
                    raise UserError(f"The HDF5 file {path} is truncated: 'train' ends past the end of the file",
                                    "download it again")
                direct = FileRows.contiguous(path, int(offset), rows, dim)
        test_n = None
        if "test" in f:
            test = f["test"]
            if test.ndim != 2 or test.shape[1] != dim:
                raise UserError(f"The 'test' dataset of {path} has shape {test.shape} but 'train' has dimension {dim}",
                                "the file is not in the ann-benchmarks layout")
            test_n = int(test.shape[0])
        has_neighbors = "neighbors" in f

    def reader(name: str) -> BlockReader:
        def read(start: int, stop: int) -> np.ndarray:
            try:
                with _h5(path) as g:
                    return np.asarray(g[name][start:stop])
            except (OSError, RuntimeError, KeyError, ValueError) as e:
                raise UserError(f"The HDF5 file {path} cannot be read ({str(e).splitlines()[0]})",
                                "it may be truncated or damaged; download it again") from None
        return read

    def neighbors(nq: int) -> np.ndarray:
        return reader("neighbors")(0, nq).astype(np.int64)

    return FileSet("hdf5", path, rows, dim, reader("train"), direct_train=direct, test_n=test_n,
                   read_test=reader("test") if test_n is not None else None, metric=metric,
                   neighbors=neighbors if has_neighbors else None, paths={"file": str(path)},
                   identity=[file_identity(path)])


def _hdf5_metric(path: Path, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    name = str(value).strip().lower()
    if name not in HDF5_METRICS:
        raise UserError(f"The HDF5 file {path} uses the distance '{value}', which bench does not support",
                        "use a dataset with euclidean, angular or dot distance")
    return HDF5_METRICS[name]


# -- parquet (VectorDBBench) ---------------------------------------------------------------------------------

def _pq_file(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        h = pq.ParquetFile(path, memory_map=True)
        h.schema_arrow, h.metadata.num_rows  # noqa: B018 - decoded here so damage shows now, not later
        return h
    except (pa.ArrowException, OSError, ValueError) as e:  # ValueError: UnicodeDecodeError of damaged names
        raise UserError(f"The file {path} is not a readable parquet file ({e})",
                        "download it again or check that it is parquet") from None


def _vector_column(path: Path, schema) -> str:
    import pyarrow as pa

    def is_vector(t) -> bool:
        return (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)) and (
            pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type))

    names = [f.name for f in schema if is_vector(f.type)]
    if "emb" in names:
        return "emb"
    if len(names) == 1:
        return names[0]
    if not names:
        raise UserError(f"The parquet file {path} has no column of float lists (columns: "
                        f"{', '.join(schema.names)})", "store vectors in a list<float> column named 'emb'")
    raise UserError(f"The parquet file {path} has several vector columns ({', '.join(names)})",
                    "name the one to use 'emb'")


def _list_to_matrix(path: Path, col, dim: int | None) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(col, pa.ChunkedArray):
        col = pa.concat_arrays(col.chunks) if col.num_chunks != 1 else col.chunk(0)
    if col.null_count:
        raise UserError(f"The parquet file {path} has {col.null_count} empty (null) vectors",
                        "remove those rows or fill them")
    if len(col) == 0:
        return np.empty((0, dim or 0), dtype=np.float32)
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    d = int(lengths[0]) if dim is None else dim
    if np.any(lengths != d):
        bad = int(np.flatnonzero(lengths != d)[0])
        raise UserError(f"The parquet file {path} mixes vector lengths ({d} and {int(lengths[bad])})",
                        "every vector must have the same dimension")
    values = col.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float32).reshape(len(col), d)


class _ParquetVectors:
    """The vector column of one or more parquet files, read in row ranges (sequential reads are cheap)."""

    def __init__(self, files: list[Path]):
        import pyarrow as pa

        self.files = files
        self.handles = [_pq_file(p) for p in files]
        self.columns = [_vector_column(p, h.schema_arrow) for p, h in zip(files, self.handles, strict=True)]
        self.counts = [h.metadata.num_rows for h in self.handles]
        self.n = sum(self.counts)
        self.dim = 0
        for p, h, c in zip(files, self.handles, self.columns, strict=True):
            if h.metadata.num_rows:
                try:
                    first = next(h.iter_batches(batch_size=1, columns=[c]))
                except (pa.ArrowException, OSError, ValueError, StopIteration) as e:
                    raise UserError(f"The parquet file {p} cannot be read ({e or 'no rows'})",
                                    "it may be truncated or damaged; download it again") from None
                self.dim = _list_to_matrix(p, first.column(0), None).shape[1]
                check_dim(p, self.dim)
                break

    def read(self, start: int, stop: int) -> np.ndarray:
        out = []
        base = 0
        for p, h, c, cnt in zip(self.files, self.handles, self.columns, self.counts, strict=True):
            lo, hi = max(start, base), min(stop, base + cnt)
            if lo < hi:
                out.append(self._read_file(p, h, c, lo - base, hi - base))
            base += cnt
        return np.concatenate(out) if out else np.empty((0, self.dim), dtype=np.float32)

    def _read_file(self, path: Path, h, col: str, start: int, stop: int) -> np.ndarray:
        import pyarrow as pa

        parts, pos = [], 0
        try:
            for rg in range(h.metadata.num_row_groups):
                cnt = h.metadata.row_group(rg).num_rows
                if pos + cnt > start and pos < stop:
                    table = h.read_row_group(rg, columns=[col])
                    lo, hi = max(0, start - pos), min(cnt, stop - pos)
                    parts.append(_list_to_matrix(path, table.column(0).slice(lo, hi - lo), self.dim))
                pos += cnt
                if pos >= stop:
                    break
        except (pa.ArrowException, OSError, ValueError) as e:
            raise UserError(f"The parquet file {path} cannot be read ({e})",
                            "it may be truncated or damaged; download it again") from None
        return np.concatenate(parts) if parts else np.empty((0, self.dim), dtype=np.float32)

    def iter_rows(self, count: int, block: int) -> Iterator[np.ndarray]:
        """The first `count` rows in order, streamed in batches of about `block` rows."""
        import pyarrow as pa

        left = count
        for p, h, c in zip(self.files, self.handles, self.columns, strict=True):
            if left <= 0:
                return
            try:
                for batch in h.iter_batches(batch_size=block, columns=[c]):
                    m = _list_to_matrix(p, batch.column(0), self.dim)[:left]
                    left -= len(m)
                    yield m
                    if left <= 0:
                        return
            except (pa.ArrowException, OSError, ValueError) as e:
                raise UserError(f"The parquet file {p} cannot be read ({e})",
                                "it may be truncated or damaged; download it again") from None

    def ids(self) -> np.ndarray | None:
        """The 'id' column of all files, or None when there is none."""
        import pyarrow as pa

        out = []
        for path, h in zip(self.files, self.handles, strict=True):
            if "id" not in h.schema_arrow.names:
                return None
            try:
                out.append(h.read(columns=["id"]).column(0).to_numpy().astype(np.int64))
            except (pa.ArrowException, OSError, ValueError) as e:
                raise UserError(f"The parquet file {path} cannot be read ({str(e).splitlines()[0]})",
                                "it may be truncated or damaged; download it again") from None
        return np.concatenate(out) if out else np.empty(0, dtype=np.int64)


def _parquet_layout(path: Path) -> tuple[list[Path], Path | None, Path | None]:
    if path.is_dir():
        for prefix in ("train", "shuffle_train"):
            files = sorted(path.glob(f"{prefix}.parquet")) or sorted(path.glob(f"{prefix}-*-of-*.parquet"))
            if files:
                break
        else:
            raise UserError(f"The folder {path} has no train.parquet or shuffle_train.parquet",
                            "point dataset.path at a VectorDBBench dataset folder or at a parquet file")
        folder = path
    else:
        files, folder = [path], path.parent
    test = folder / "test.parquet"
    neighbors = folder / "neighbors.parquet"
    return (files, test if test.exists() and test not in files else None,
            neighbors if neighbors.exists() and neighbors not in files else None)


def open_parquet(path: Path) -> FileSet:
    train_files, test_file, nb_file = _parquet_layout(path)
    train = _ParquetVectors(train_files)
    paths = {"train": ", ".join(str(p) for p in train_files)}
    identity = [file_identity(p) for p in train_files]
    test_n, read_test, neighbors = None, None, None
    if test_file is not None:
        test = _ParquetVectors([test_file])
        if test.n and test.dim != train.dim:
            raise UserError(f"The queries in {test_file} have dimension {test.dim} but the vectors in "
                            f"{train_files[0]} have {train.dim}", "use files of the same dataset")
        test_n, read_test = test.n, test.read
        paths["test"] = str(test_file)
        identity.append(file_identity(test_file))
        if nb_file is not None:
            paths["neighbors"] = str(nb_file)
            neighbors = _parquet_neighbors(nb_file, train, test)
    labels = train_files[0].parent / "scalar_labels.parquet"  # VectorDBBench's label-filter sets: (id, labels)
    if labels.is_file():
        paths["scalar_labels"] = str(labels)
    return FileSet("parquet", path, train.n, train.dim, train.read, test_n=test_n, read_test=read_test,
                   neighbors=neighbors, iter_train=train.iter_rows, paths=paths, identity=identity,
                   train_ids=train.ids)


def _parquet_neighbors(nb_file: Path, train: _ParquetVectors, test: _ParquetVectors) -> Callable[[int], np.ndarray]:
    def load(nq: int) -> np.ndarray:
        h = _pq_file(nb_file)
        names = h.schema_arrow.names
        if "neighbors_id" not in names:
            raise UserError(f"The neighbours file {nb_file} has no 'neighbors_id' column", "use VectorDBBench's layout")
        table = h.read(columns=[c for c in ("id", "neighbors_id") if c in names])
        lists = table.column("neighbors_id").to_pylist()
        qids = table.column("id").to_numpy() if "id" in names else np.arange(len(lists))
        by_qid = dict(zip(qids.tolist(), lists, strict=True))
        test_ids = test.ids()
        want = test_ids[:nq] if test_ids is not None else np.arange(nq)
        missing = [int(q) for q in want if int(q) not in by_qid]
        if missing:
            raise UserError(f"The neighbours file {nb_file} lacks query id {missing[0]}", "download it again")
        k = min(len(by_qid[int(q)]) for q in want)
        nb = np.array([by_qid[int(q)][:k] for q in want], dtype=np.int64)
        train_ids = train.ids()
        if train_ids is None or np.array_equal(train_ids, np.arange(len(train_ids))):
            return nb
        # Rows are in file order (shuffled): map the published ids to row numbers.
        n = len(train_ids)
        if train_ids.min() != 0 or train_ids.max() != n - 1 or np.bincount(train_ids, minlength=n).max() != 1:
            raise UserError(f"The ids of {train.files[0]} are not 0..{n - 1}, so its neighbours cannot be mapped",
                            "use dataset.ground_truth = 'exact'")
        pos = np.empty(n, dtype=np.int64)
        pos[train_ids] = np.arange(n)
        return pos[nb]
    return load

