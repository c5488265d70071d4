"""Quality beyond recall@k, from the ids each sampled search returned and the exact top-k.

- recall@c for c in 1, 10, 100: |found[:c] & truth[:c]| / c (the denominator is the qualifying records where fewer
  than c exist). It is read from the same searches as recall@k (each asked for k neighbours), so it needs c <= k;
  where the workload's k is smaller than c, the figure is absent (None), never computed from fewer neighbours.
  An engine asked for k may rank its first c better than when asked for c (HNSW searches max(ef, k) candidates).
- NDCG@k with binary relevance: a returned id is relevant when it is in the exact top-k; each hit at returned
  position i (0-based) counts 1/log2(i + 2), over the ideal (every returned position a hit, as many as the exact
  top-k holds). VectorDBBench's NDCG instead discounts a hit by its position in the exact top-k.
- The distance ratio, ann-benchmarks' "rel": the summed distances of the returned ids over the summed distances of
  the exact top-k, over all scored searches (>= 1, 1 is exact). Distances are the ones the metric orders by (l2:
  Euclidean, cosine: 1 - cosine similarity); inner product has no distance that is non-negative, so there it is
  absent. A search that returned fewer ids than the exact top-k holds is left out of the ratio (a short answer
  would look better than a full one), and so are exact answers that sum to no distance at all.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bench.metrics.recall import per_search_recall

CUTOFFS = (1, 10, 100)
DISTANCE_METRICS = ("l2", "cosine")
_BLOCK = 256  # searches per block while gathering vectors for distances


def recall_at(found: np.ndarray, truth: np.ndarray, k: int) -> dict[str, float | None]:
    """recall_at_1, recall_at_10, recall_at_100 of the searches (mean), None where c > k."""
    out: dict[str, float | None] = {}
    for c in CUTOFFS:
        out[f"recall_at_{c}"] = float(per_search_recall(found, truth, c).mean()) if c <= k and len(found) else None
    return out


def ndcg(found: np.ndarray, truth: np.ndarray, k: int) -> np.ndarray:
    """NDCG@k of each search, binary relevance (see the module docstring); -1 padding is never relevant."""
    f, t = found[:, :k], truth[:, :k]
    rel = (f[:, :, None] == t[:, None, :]).any(axis=2) & (f >= 0)
    disc = 1.0 / np.log2(np.arange(k) + 2.0)
    dcg = (rel * disc[: f.shape[1]]).sum(axis=1)
    ideal_n = np.minimum((t >= 0).sum(axis=1), f.shape[1])
    ideal = np.concatenate([[0.0], np.cumsum(disc)])[ideal_n]
    return np.where(ideal > 0, dcg / np.where(ideal > 0, ideal, 1.0), 0.0)


def _distances(rows: Callable[[np.ndarray], np.ndarray], q: np.ndarray, ids: np.ndarray, metric: str) -> np.ndarray:
    """Distances of the rows `ids` (n, c; -1 = none, NaN out) to each search's query vector q (n, dim)."""
    flat = ids.reshape(-1)
    ok = flat >= 0
    uniq, inv = np.unique(flat[ok], return_inverse=True)
    out = np.full(flat.shape, np.nan, dtype=np.float64)
    if len(uniq):
        vecs = rows(uniq)[inv].astype(np.float64)
        qq = np.repeat(q.astype(np.float64), ids.shape[1], axis=0)[ok]
        if metric == "l2":
            out[ok] = np.linalg.norm(vecs - qq, axis=1)
        else:  # cosine
            den = np.linalg.norm(vecs, axis=1) * np.linalg.norm(qq, axis=1)
            out[ok] = 1.0 - np.einsum("ij,ij->i", vecs, qq) / np.where(den > 0, den, 1.0)
    return out.reshape(ids.shape)


def distance_ratio(found: np.ndarray, truth: np.ndarray, k: int, query_vectors: np.ndarray,
                   rows: Callable[[np.ndarray], np.ndarray], metric: str) -> float | None:
    """ann-benchmarks' rel over the searches (see the module docstring), or None where it does not apply.
    `query_vectors` (n, dim) are each search's query; `rows(ids)` gives the vectors of sorted unique ids."""
    if metric not in DISTANCE_METRICS or not len(found):
        return None
    f, t = found[:, :k], truth[:, :k]
    need = (t >= 0).sum(axis=1)
    full = ((f >= 0).sum(axis=1) >= need) & (need > 0)
    probe = closest = 0.0
    for s in range(0, len(f), _BLOCK):
        sel = full[s:s + _BLOCK]
        if not sel.any():
            continue
        q = query_vectors[s:s + _BLOCK][sel]
        fd = _distances(rows, q, f[s:s + _BLOCK][sel], metric)
        td = _distances(rows, q, t[s:s + _BLOCK][sel], metric)
        n_true = need[s:s + _BLOCK][sel]
        for i, m in enumerate(n_true):  # the first m returned ids against the m exact ones
            probe += float(np.nansum(fd[i][fd[i] == fd[i]][:m]))
            closest += float(np.nansum(td[i]))
    if closest <= 0.0:
        return None
    return probe / closest


def figures(found: np.ndarray, truth: np.ndarray, k: int, query_vectors: np.ndarray | None = None,
            rows: Callable[[np.ndarray], np.ndarray] | None = None, metric: str | None = None) -> dict[str, float | None]:
    """Every figure of this module for a set of searches (`truth` row for row with `found`)."""
    out: dict[str, float | None] = {**recall_at(found, truth, k),
                                    "ndcg": float(ndcg(found, truth, k).mean()) if len(found) else None}
    out["distance_ratio"] = (distance_ratio(found, truth, k, query_vectors, rows, metric)
                             if query_vectors is not None and rows is not None and metric else None)
    return out
