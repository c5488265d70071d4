"""Recall@k against exact ground truth computed by the harness."""

from __future__ import annotations

import numpy as np


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean over queries of |found[:k] & truth[:k]| / k. `found` is -1 padded; so is `truth` where fewer than
    k records qualify (a filtered search), and then a query's denominator is the records there are."""
    if len(found) == 0:
        return float("nan")
    f = found[:, :k]
    t = truth[:, :k]
    hits = (f[:, :, None] == t[:, None, :]).any(axis=2) & (f >= 0)
    want = np.maximum((t >= 0).sum(axis=1), 1)
    return float((hits.sum(axis=1) / want).mean())


def recall_per_query(queries: np.ndarray, found: np.ndarray, truth: np.ndarray, k: int, n_queries: int) -> np.ndarray:
    """Recall@k of each query index (mean over its searches in the trial), NaN for a query not searched.

    Recall is a property of the built index: the trials of one run share it, so they are no replicates of it.
    `bench regress` compares two runs' recall per query, paired, so its test counts queries, not trials."""
    if len(found) == 0:
        return np.full(n_queries, np.nan, dtype=np.float32)
    f = found[:, :k]
    t = truth[:, :k]
    hits = (f[:, :, None] == t[:, None, :]).any(axis=2) & (f >= 0)
    return per_query_mean(queries, hits.sum(axis=1) / np.maximum((t >= 0).sum(axis=1), 1), n_queries)


def per_query_mean(queries: np.ndarray, per_search: np.ndarray, n_queries: int) -> np.ndarray:
    """The mean of per-search values for each query index (NaN for a query not searched)."""
    out = np.full(n_queries, np.nan, dtype=np.float32)
    sums = np.bincount(queries, weights=per_search, minlength=n_queries)
    counts = np.bincount(queries, minlength=n_queries)
    seen = counts > 0
    out[seen] = (sums[seen] / counts[seen]).astype(np.float32)
    return out


def _scores(rows: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    if metric == "l2":
        return -((rows - q) ** 2).sum(axis=1)
    if metric == "cosine":
        norms = np.linalg.norm(rows, axis=1)
        norms[norms == 0] = 1.0
        return (rows @ q) / norms / (np.linalg.norm(q) or 1.0)
    return rows @ q


def recall_under_updates(results, state, ds, k: int) -> float | None:
    """Recall of the sampled searches of one trial, against exact top-k over the collection as it stood when
    each search started: base vectors, with every write acknowledged before that moment applied.

    Writes still in flight while a search ran may or may not be visible to it; the ground truth takes the
    state at the search's start, so such a race can only lower the reported recall, never raise it.
    """
    events = []
    for r in results:
        if r.search_queries is None:
            continue
        for t, qi, ids in zip(r.search_started, r.search_queries, r.search_ids, strict=True):
            events.append((int(t), int(qi), ids))
    if not events:
        return None
    events.sort(key=lambda e: e[0])
    current = dict(state.before)
    log = state.trial_log
    j = 0
    base, holdout, queries = ds.base, ds.holdout, ds.queries
    n = len(base)
    total = 0.0
    for t, qi, ids in events:
        while j < len(log) and log[j][0] < t:
            _, key, row = log[j]
            current[key] = row
            j += 1
        q = np.asarray(queries[qi], dtype=np.float32)
        s = _scores(base, q, ds.metric)
        keys = np.fromiter((key for key in current if key < n), dtype=np.int64)
        if len(keys):
            rows = np.fromiter((current[key] for key in keys), dtype=np.int64)
            s[keys] = _scores(holdout[rows], q, ds.metric)
        top = np.argpartition(-s, k)[:k] if k < len(s) else np.arange(len(s))
        f = ids[:k]
        total += len(set(f[f >= 0].tolist()) & set(top.tolist())) / k
    return total / len(events)
