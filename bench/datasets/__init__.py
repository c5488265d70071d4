"""Datasets: the synthetic generator, real sets, vector files, fetched catalog sets, and exact ground truth.

    ds = load(DatasetSpec(n=20_000, queries=500), default_cache_dir())
    for ids, vectors in ds.batches(10_000): ...
    gt = ds.ground_truth(k=10)

Everything generated or converted is cached under the cache folder ($BENCH_CACHE_DIR, else ~/.cache/bench):
`synthetic/`, `converted/`, `groundtruth/`, `hashes/` and `datasets/` (fetched catalog sets).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bench.datasets import _progress
from bench.datasets._io import content_hash, ensure_dir, file_identity, key_of
from bench.datasets.dataset import Dataset
from bench.datasets.exact import exact_topk
from bench.datasets.fetch import CATALOG, datasets_dir, fetch, get_entry, is_complete
from bench.datasets.formats import FileSet, open_path, read_neighbors_file, read_query_file
from bench.datasets.rows import ArrayRows, Rows, block_rows_for
from bench.datasets.spec import BUILTIN_SOURCES, DatasetSpec
from bench.errors import UserError
from bench.units import format_bytes

__all__ = ["CATALOG", "Dataset", "DatasetSpec", "default_cache_dir", "exact_topk", "fetch", "load"]


def default_cache_dir() -> Path:
    """$BENCH_CACHE_DIR, else ~/.cache/bench."""
    env = os.environ.get("BENCH_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "bench"


def load(spec: DatasetSpec, cache_dir: Path, progress: bool = True) -> Dataset:
    """Load (generating, converting or reading from the cache as needed) the dataset a spec names."""
    cache_dir = Path(cache_dir)
    if spec.source == "synthetic":
        return _load_synthetic(spec, cache_dir, progress)
    if spec.source == "wordnet-mpnet-768":
        from bench.datasets.wordnet import load_wordnet

        return load_wordnet(spec, cache_dir)
    if spec.source == "file":
        assert spec.path is not None
        path = Path(spec.path).expanduser()
        return _load_fileset(spec, open_path(path), cache_dir, progress, name=_file_name(path), source="file")
    if spec.source in CATALOG:
        entry = get_entry(spec.source)
        folder = datasets_dir(cache_dir) / entry.name
        if not is_complete(entry, folder):
            raise UserError(f"Dataset '{entry.name}' is not in the cache ({folder})",
                            f"run `bench datasets fetch {entry.name}` first (about {format_bytes(entry.approx_bytes)})")
        fs = open_path(entry.local_path(folder))
        if fs.metric is None:
            fs.metric = entry.metric
        return _load_fileset(spec, fs, cache_dir, progress, name=entry.name, source=entry.name)
    raise UserError(f"Unknown dataset source '{spec.source}' in dataset.source",
                    f"use one of: {', '.join([*BUILTIN_SOURCES, *CATALOG])}")


def _file_name(path: Path) -> str:
    return path.name if path.is_dir() else path.stem


def _load_synthetic(spec: DatasetSpec, cache_dir: Path, progress: bool) -> Dataset:
    from bench.datasets.synthetic import ensure_generated

    if spec.ground_truth == "file":
        raise UserError("A synthetic dataset publishes no neighbours", "set dataset.ground_truth = 'exact'")
    files = ensure_generated(spec, cache_dir, progress)
    paths = {"folder": str(files.folder)}
    return Dataset(name=f"synthetic-{spec.dim}d-{spec.metric}-{spec.n}-s{spec.seed}", source="synthetic",
                   metric=spec.metric, base=files.base, queries=files.queries, holdout=files.holdout,
                   cache_dir=cache_dir, content_hash=files.content_hash, paths=paths,
                   details={"generator": {k: v for k, v in spec.generator_params().items()
                                          if k not in ("dim", "metric")}})


def _load_fileset(spec: DatasetSpec, fs: FileSet, cache_dir: Path, progress: bool, *, name: str,
                  source: str) -> Dataset:
    where = fs.path
    if spec.explicitly_set("dim") and spec.dim != fs.dim:
        raise UserError(f"The vectors in {where} have dimension {fs.dim} but dataset.dim = {spec.dim}",
                        f"set dataset.dim = {fs.dim} or use another file")
    metric = spec.metric if (spec.explicitly_set("metric") or fs.metric is None) else fs.metric
    n, nq, h = spec.n, spec.queries, spec.holdout
    paths = dict(fs.paths)
    identity = list(fs.identity)

    if spec.queries_path:
        qpath = Path(spec.queries_path).expanduser()
        queries = read_query_file(qpath, nq)
        paths["queries"] = str(qpath)
        identity.append(file_identity(qpath))
        separate = True
    elif fs.test_n is not None:
        if fs.test_n < nq:
            raise UserError(f"{where} has {fs.test_n:,} queries but dataset.queries = {nq:,}",
                            f"lower dataset.queries to at most {fs.test_n:,}")
        queries, separate = None, True
    else:
        separate = False
    need = n + h if separate else n + nq + h
    if fs.train_n < need:
        parts = "dataset.n + dataset.holdout" if separate else "dataset.n + dataset.queries + dataset.holdout"
        raise UserError(f"{where} has {fs.train_n:,} vectors but {parts} = {need:,}",
                        "lower those counts or use a larger file")
    rows = fs.train_rows(need, cache_dir, progress)
    base = rows.slice(0, n)
    if separate:
        if queries is None:
            queries = fs.test_rows(nq)
        holdout = rows.slice(n, n + h)
    else:
        queries = rows.read(n, n + nq)
        holdout = rows.slice(n + nq, need)
    if queries.shape[1] != fs.dim:
        raise UserError(f"The queries in {paths.get('queries', where)} have dimension {queries.shape[1]} but the "
                        f"vectors in {where} have {fs.dim}", "use query and base files of the same dataset")

    published = _published(spec, fs, paths, separate, metric)
    check_finite(queries, 0, f"The queries in {paths.get('queries', where)}")
    for start, block in holdout.blocks(block_rows_for(fs.dim)):
        check_finite(block, n + (0 if separate else nq) + start, f"The vectors in {where}")
    key = key_of({"ids": identity, "n": n, "nq": nq, "metric": metric, "separate": separate, "dim": fs.dim})
    digest = _cached_hash(cache_dir, key, base, queries, metric, progress, where)
    ids = fs.train_ids() if fs.train_ids is not None else None
    return Dataset(name=name, source=source, metric=metric, base=base, queries=queries, holdout=holdout,
                   cache_dir=cache_dir, content_hash=digest, paths=paths,
                   details={"format": fs.fmt, "rows_available": fs.train_n, "file_metric": fs.metric},
                   published_neighbors=published, ground_truth_source=spec.ground_truth,
                   row_ids=ids[:n] if ids is not None else None)


def _published(spec: DatasetSpec, fs: FileSet, paths: dict, separate: bool, metric: str):
    """The published neighbours that fit these rows (a file named in the spec, or the set's own), else None."""
    published = None
    if spec.neighbors_path:
        npath = Path(spec.neighbors_path).expanduser()
        paths["neighbors"] = str(npath)
        published = _neighbors_from_file(npath, spec.queries)
    elif (fs.neighbors is not None and separate and not spec.queries_path and spec.n == fs.train_n
          and fs.metric in (None, metric)):
        published = fs.neighbors
    if spec.ground_truth == "file" and published is None:
        raise UserError(f"{fs.path} has no published neighbours that fit these rows (they need dataset.n = "
                        f"{fs.train_n:,}, the file's own queries and its metric '{fs.metric}')",
                        "set dataset.ground_truth = 'exact' or dataset.neighbors_path")
    return published


def _neighbors_from_file(path: Path, nq: int):
    nb = read_neighbors_file(path)
    if len(nb) < nq:
        raise UserError(f"The neighbours file {path} has {len(nb)} rows but dataset.queries = {nq}",
                        "lower dataset.queries or give the matching neighbours file")
    return lambda count: nb[:count]


def check_finite(block: np.ndarray, first_row: int, what: str) -> None:
    """Reject vectors that no embedding has: NaN, infinity, or values so large their squared norm overflows
    float32 (what a damaged file's bytes read as floats often give). `what` names the rows, e.g. "The vectors
    in FILE"."""
    with np.errstate(over="ignore", invalid="ignore"):
        sq = np.einsum("ij,ij->i", block, block)
    bad = ~np.isfinite(sq)
    if bad.any():
        row = first_row + int(np.argmax(bad))
        raise UserError(f"{what} are corrupt: row {row:,} holds values that are not finite numbers (NaN, infinity "
                        "or beyond float32's range)", "download or write the file again")


def _cached_hash(cache_dir: Path, key: str, base: Rows, queries: np.ndarray, metric: str, progress: bool,
                 where: Path | str = "the dataset") -> str:
    """The content hash of file data, remembered per (file identity, counts, metric) so 3 GB is hashed once.
    The base rows are checked for corrupt values on the way, so a hash is only remembered for sound data."""
    path = cache_dir / "hashes" / f"{key}.txt"
    try:
        text = path.read_text().strip()
        if len(text) == 16:
            return text
    except OSError:
        pass
    with _progress.bar("hashing the dataset", base.n, progress and base.n * base.dim * 4 > 256 << 20) as advance:
        digest = content_hash(base, queries, metric, advance,
                              check=lambda start, block: check_finite(block, start, f"The vectors in {where}"))
    try:
        ensure_dir(path.parent)
        path.write_text(digest)
    except (OSError, UserError):
        pass
    return digest


def from_arrays(name: str, base: np.ndarray, queries: np.ndarray, metric: str, cache_dir: Path,
                holdout: np.ndarray | None = None) -> Dataset:
    """A Dataset over arrays already in memory (for tests and notebooks)."""
    b = ArrayRows(np.ascontiguousarray(base, dtype=np.float32))
    return Dataset(name=name, source="arrays", metric=metric, base=b, queries=queries, cache_dir=cache_dir,
                   holdout=ArrayRows(np.asarray(holdout, dtype=np.float32)) if holdout is not None else None,
                   content_hash=content_hash(b, np.asarray(queries, dtype=np.float32), metric))
