"""Exact k-nearest neighbours by brute force, in blocks, with numpy.

Scores are computed in float32 with BLAS over blocks of base rows (one block in memory at a time), keeping a
few more candidates than asked; the candidates are then scored again in float64 and ordered best first, ties
broken by the lower id. So the result is exact up to float64 rounding, and deterministic.

- cosine: inner product of L2-normalised vectors (a zero vector scores 0 against everything);
- ip: largest inner product;
- l2: smallest squared Euclidean distance.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bench.datasets.rows import ArrayRows, Rows, block_rows_for

METRICS = ("cosine", "l2", "ip")
_SCORE_BUDGET = 64 << 20  # bytes of one float32 (queries x base rows) score block
_RERANK_BUDGET = 64 << 20  # bytes of float64 candidate vectors rescored at once


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1
    return x / norms


def margin_for(k: int) -> int:
    """Extra float32 candidates kept per query, so float32 rounding cannot push a true neighbour out."""
    return max(10, k // 2)


def exact_topk(base: np.ndarray | Rows, queries: np.ndarray, k: int, metric: str, mask: np.ndarray | None = None,
               *, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Ids (row numbers) of the k nearest base rows of each query, best first: int64 (nq, k).

    `base` is an array (a memmap is fine) or a `Rows` source; `mask`, when given, is a boolean (n,) array of
    the rows allowed (for filtered ground truth). Where fewer than k rows are allowed the row is padded with -1.
    `progress(rows)` is called after each block of base rows.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    rows = base if isinstance(base, Rows) else ArrayRows(np.asarray(base))
    q = np.ascontiguousarray(queries, dtype=np.float32)
    if q.ndim != 2 or q.shape[1] != rows.dim:
        raise ValueError(f"queries of shape {q.shape} do not match base dimension {rows.dim}")
    n, nq = rows.n, len(q)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (n,):
            raise ValueError(f"mask must be a boolean array of shape ({n},), got {mask.shape}")
        allowed = int(mask.sum())
    else:
        allowed = n
    out = np.full((nq, k), -1, dtype=np.int64)
    if nq == 0 or allowed == 0:
        return out
    kc = min(allowed, k + margin_for(k))
    if metric == "cosine":
        q = _normalise(q)

    best_s = np.full((nq, kc), -np.inf, dtype=np.float32)
    best_i = np.full((nq, kc), -1, dtype=np.int64)
    base_block = block_rows_for(rows.dim, 64 << 20)
    for start, x in rows.blocks(base_block):
        stop = start + len(x)
        if metric == "cosine":
            x = _normalise(x)
        sq = np.einsum("ij,ij->i", x, x) if metric == "l2" else None
        blk_mask = None if mask is None else mask[start:stop]
        qb = max(1, _SCORE_BUDGET // (4 * len(x)))
        for a in range(0, nq, qb):
            b = min(nq, a + qb)
            s = q[a:b] @ x.T
            if metric == "l2":
                s *= 2
                s -= sq
            if blk_mask is not None:
                s[:, ~blk_mask] = -np.inf
            _merge(best_s[a:b], best_i[a:b], s, start, kc)
        if progress is not None:
            progress(len(x))

    _rerank(rows, queries, best_i, metric, out)
    return out


def _merge(best_s: np.ndarray, best_i: np.ndarray, s: np.ndarray, offset: int, kc: int) -> None:
    """Merge block scores `s` (rows = queries) into the running top-kc, in place."""
    if s.shape[1] > kc:
        part = np.argpartition(-s, kc - 1, axis=1)[:, :kc]
        cand_s = np.take_along_axis(s, part, axis=1)
        cand_i = part.astype(np.int64) + offset
    else:
        cand_s = s
        cand_i = np.broadcast_to(np.arange(offset, offset + s.shape[1], dtype=np.int64), s.shape)
    all_s = np.concatenate([best_s, cand_s], axis=1)
    all_i = np.concatenate([best_i, cand_i], axis=1)
    keep = np.argpartition(-all_s, kc - 1, axis=1)[:, :kc]
    best_s[:] = np.take_along_axis(all_s, keep, axis=1)
    best_i[:] = np.take_along_axis(all_i, keep, axis=1)
    best_i[~np.isfinite(best_s)] = -1


def _rerank(rows: Rows, queries: np.ndarray, cand: np.ndarray, metric: str, out: np.ndarray) -> None:
    """Score the candidates again in float64 and write the best k of each query, ties to the lower id."""
    k = out.shape[1]
    nq, kc = cand.shape
    qb = max(1, _RERANK_BUDGET // (8 * kc * rows.dim))
    big = np.iinfo(np.int64).max
    for a in range(0, nq, qb):
        b = min(nq, a + qb)
        ids = cand[a:b]
        valid = ids >= 0
        uniq = np.unique(ids[valid])
        vec = rows.take(uniq).astype(np.float64)
        q = np.asarray(queries[a:b], dtype=np.float64)
        if metric == "cosine":
            vec = _normalise(vec)
            q = _normalise(q)
        pos = np.searchsorted(uniq, np.where(valid, ids, uniq[0] if len(uniq) else 0))
        c = vec[pos]  # (qb, kc, dim)
        if metric == "l2":
            d = c - q[:, None, :]
            score = -np.einsum("qkd,qkd->qk", d, d)
        else:
            score = np.einsum("qkd,qd->qk", c, q)
        score[~valid] = -np.inf
        id_key = np.where(valid, ids, big)
        order = np.lexsort((id_key, -score), axis=1)[:, :k]
        top = np.take_along_axis(np.where(valid, ids, -1), order, axis=1)
        out[a:b, :top.shape[1]] = top
