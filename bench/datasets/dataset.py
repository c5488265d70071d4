"""`Dataset`: base vectors, queries, holdout vectors, exact ground truth (cached), streamed batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from bench.datasets import _progress
from bench.datasets._io import ensure_dir, save_npy_atomic
from bench.datasets.exact import exact_topk
from bench.datasets.rows import Rows, empty_rows
from bench.errors import UserError


class Dataset:
    """One loaded dataset. `base` may be an `np.memmap`; `batches` streams it one batch at a time.

    Ids are row numbers: base row i has id i. Holdout rows are distinct from base and queries and are meant
    for updates that replace vectors. `row_ids` keeps the id a file gave each base row (VectorDBBench's parquet
    `id` column), or None: scenarios that filter on it (VectorDBBench's int filter) read it from there.
    """

    def __init__(self, *, name: str, source: str, metric: str, base: Rows, queries: np.ndarray,
                 cache_dir: Path, content_hash: str, holdout: Rows | None = None,
                 texts: Sequence[str] | None = None, query_texts: Sequence[str] | None = None,
                 paths: dict[str, str] | None = None, details: dict[str, object] | None = None,
                 published_neighbors: Callable[[int], np.ndarray] | None = None,
                 ground_truth_source: str = "exact", row_ids: np.ndarray | None = None):
        self.name = name
        self.source = source
        self.metric = metric
        self.dim = base.dim
        self.n = base.n
        self._base = base
        self.queries = np.ascontiguousarray(queries, dtype=np.float32)
        self._holdout = holdout if holdout is not None else empty_rows(base.dim)
        self.texts = texts
        self.query_texts = query_texts
        self.content_hash = content_hash
        self.cache_dir = Path(cache_dir)
        self.paths = dict(paths or {})
        self.details = dict(details or {})
        self._published = published_neighbors
        self.ground_truth_source = ground_truth_source
        self.row_ids = row_ids

    # -- arrays ---------------------------------------------------------------------------------------------
    @property
    def base(self) -> np.ndarray:
        """float32 (n, dim); an np.memmap when the data is on disk."""
        return self._base.array()

    @property
    def holdout(self) -> np.ndarray:
        """float32 (holdout, dim), possibly empty (0, dim)."""
        return self._holdout.array()

    @property
    def base_rows(self) -> Rows:
        return self._base

    def batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids int64, vectors float32 C-contiguous) of the base rows in order, one batch in memory at a time."""
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        for start in range(0, self.n, batch_size):
            stop = min(self.n, start + batch_size)
            yield np.arange(start, stop, dtype=np.int64), self._base.read(start, stop)

    # -- ground truth ---------------------------------------------------------------------------------------
    @property
    def has_published_neighbors(self) -> bool:
        return self._published is not None

    def _gt_dir(self) -> Path:
        return self.cache_dir / "groundtruth"

    def _gt_path(self, k: int) -> Path:
        return self._gt_dir() / f"{self.content_hash}-{self.metric}-k{k}.npy"

    def _cached_gt(self, k: int) -> np.ndarray | None:
        folder = self._gt_dir()
        if not folder.is_dir():
            return None
        best: tuple[int, Path] | None = None
        for p in folder.glob(f"{self.content_hash}-{self.metric}-k*.npy"):
            try:
                kk = int(p.stem.rsplit("-k", 1)[1])
            except (IndexError, ValueError):
                continue
            if kk >= k and (best is None or kk < best[0]):
                best = (kk, p)
        if best is None:
            return None
        try:
            gt = np.load(best[1], allow_pickle=False)
        except (OSError, ValueError):
            return None
        if gt.shape != (len(self.queries), best[0]):
            return None
        return np.ascontiguousarray(gt[:, :k])

    def ground_truth(self, k: int, progress: bool = True) -> np.ndarray:
        """Exact top-k ids of each query, best first: int64 (nq, k).

        Computed in blocks and cached under cache_dir/groundtruth, keyed by content hash, metric and k; a cached
        larger k serves a smaller one. With `ground_truth_source == "file"` the file's published neighbours are
        used instead (when they fit the loaded rows).
        """
        if k <= 0:
            raise UserError(f"k must be positive to compute ground truth, got {k}", "set search.k to 1 or more")
        if k > self.n:
            raise UserError(f"k = {k} is larger than the dataset ({self.n} base vectors)",
                            "lower search.k or raise dataset.n")
        if self.ground_truth_source == "file":
            return self.published_ground_truth(k)
        cached = self._cached_gt(k)
        if cached is not None:
            return cached
        with _progress.bar(f"ground truth k={k} for {len(self.queries):,} queries", self.n, progress) as advance:
            gt = exact_topk(self._base, self.queries, k, self.metric, progress=advance)
        ensure_dir(self._gt_dir())
        save_npy_atomic(self._gt_path(k), gt)
        return gt

    def published_ground_truth(self, k: int) -> np.ndarray:
        """The neighbours published with the data (ann-benchmarks 'neighbors', VectorDBBench neighbors.parquet)."""
        if self._published is None:
            raise UserError(f"Dataset '{self.name}' has no published neighbours for these rows (they exist only "
                            "in HDF5/parquet files that carry them, for the full train set and the file's metric)",
                            "set dataset.ground_truth = 'exact' or load all rows (dataset.n = the file's row count)")
        nb = self._published(len(self.queries))
        if nb.shape[1] < k:
            raise UserError(f"Dataset '{self.name}' publishes {nb.shape[1]} neighbours per query but k = {k}",
                            "lower search.k or set dataset.ground_truth = 'exact'")
        if nb.size and (nb.min() < 0 or nb.max() >= self.n):
            raise UserError(f"The published neighbours of '{self.name}' name rows outside 0..{self.n - 1}",
                            "set dataset.ground_truth = 'exact'")
        return np.ascontiguousarray(nb[:, :k], dtype=np.int64)

    # -- description ----------------------------------------------------------------------------------------
    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name, "source": self.source, "n": self.n, "nq": len(self.queries),
            "holdout": self._holdout.n, "dim": self.dim, "metric": self.metric, "hash": self.content_hash,
            "paths": dict(self.paths), "texts": self.texts is not None,
            "published_neighbors": self.has_published_neighbors, "ground_truth": self.ground_truth_source,
        }
        out.update(self.details)
        return out

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, n={self.n}, nq={len(self.queries)}, dim={self.dim}, metric={self.metric!r}, "
                f"hash={self.content_hash!r})")
