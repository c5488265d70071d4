"""Exact references: the ids each query should find, cached on disk by everything they depend on."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.datasets._io import ensure_dir, save_npy_atomic
from bench.datasets.exact import exact_topk
from bench.metrics import quality
from bench.metrics.recall import per_search_recall
from bench.scenarios.base import Reference, Variant

if TYPE_CHECKING:
    from bench.datasets.dataset import Dataset


class ExactReference(Reference):
    """The exact top-k: a search's quality is its recall@k; `extra` adds recall@1/10/100, NDCG@k and the distance
    ratio (bench.metrics.quality) where the reference knows the searched vectors (`data`, `queries`)."""

    def __init__(self, truth: np.ndarray, data: Dataset | None = None, queries: np.ndarray | None = None):
        self.truth = truth
        self.data, self.queries = data, queries

    def per_search(self, queries: np.ndarray, found: np.ndarray, k: int) -> np.ndarray:
        return per_search_recall(found, self.truth[queries], k)

    def extra(self, queries: np.ndarray, found: np.ndarray, k: int) -> dict[str, float | None]:
        if self.data is None or self.queries is None:
            return quality.figures(found, self.truth[queries], k)
        inside = np.where(found < self.data.n, found, -1)  # an id the data does not hold has no distance
        return {**quality.figures(inside, self.truth[queries], k, np.asarray(self.queries)[queries],
                                  self.data.base_rows.take, self.data.metric),
                **quality.recall_at(found, self.truth[queries], k),
                "ndcg": float(quality.ndcg(found, self.truth[queries], k).mean()) if len(found) else None}


def digest(a: np.ndarray | None) -> str | None:
    if a is None:
        return None
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def cache_path(cache_dir: Path, prefix: str, key: dict[str, Any], suffix: str = ".npy") -> Path:
    h = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]
    return Path(cache_dir) / "groundtruth" / f"{prefix}-{h}{suffix}"


def exact(v: Variant, k: int, cache_dir: Path) -> ExactReference:
    """The exact top-k of the variant's queries over its data (only the rows its mask keeps). The plain case
    is the dataset's own ground truth (published neighbours where the dataset has them)."""
    ds = v.data
    assert ds is not None
    if v.mask is None and v.queries is None:
        return ExactReference(ds.ground_truth(k, progress=False), ds, ds.queries)
    queries = v.query_vectors()
    key = {"data": ds.content_hash, "metric": ds.metric, "n": ds.n, "k": k, "queries": digest(queries),
           "mask": digest(v.mask), **{f"ref_{a}": b for a, b in v.ref_key.items()}}
    gt = cached_topk(cache_path(cache_dir, "exact", key), (len(queries), k),
                     lambda: exact_topk(ds.base_rows, queries, k, ds.metric, mask=v.mask))
    return ExactReference(gt, ds, queries)


def cached_topk(path: Path, shape: tuple[int, int], compute: Callable[[], np.ndarray]) -> np.ndarray:
    """The top-k ids cached at `path` when they are there with this shape, else `compute()`d and cached
    (atomically); a damaged cache file is computed again."""
    if path.exists():
        try:
            gt = np.load(path, allow_pickle=False)
            if gt.shape == shape:
                return gt
        except (OSError, ValueError):
            pass
    gt = compute()
    ensure_dir(path.parent)
    save_npy_atomic(path, gt)
    return gt
