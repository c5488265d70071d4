"""Recall@k against exact ground truth computed by the harness."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def per_search_recall(found: np.ndarray, truth: np.ndarray, k: int) -> np.ndarray:
    """|found[:k] & truth[:k]| / k of each search. `found` is -1 padded; so is `truth` where fewer than k
    records qualify (a filtered search), and then a search's denominator is the records there are."""
    f = found[:, :k]
    t = truth[:, :k]
    hits = (f[:, :, None] == t[:, None, :]).any(axis=2) & (f >= 0)
    return hits.sum(axis=1) / np.maximum((t >= 0).sum(axis=1), 1)


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean over searches of their recall@k (see per_search_recall)."""
    if len(found) == 0:
        return float("nan")
    return float(per_search_recall(found, truth, k).mean())


def recall_per_query(queries: np.ndarray, found: np.ndarray, truth: np.ndarray, k: int, n_queries: int) -> np.ndarray:
    """Recall@k of each query index (mean over its searches in the trial), NaN for a query not searched.

    Recall is a property of the built index: the trials of one run share it, so they are no replicates of it.
    `bench regress` compares two runs' recall per query, paired, so its test counts queries, not trials."""
    if len(found) == 0:
        return np.full(n_queries, np.nan, dtype=np.float32)
    return per_query_mean(queries, per_search_recall(found, truth, k), n_queries)


def per_query_mean(queries: np.ndarray, per_search: np.ndarray, n_queries: int) -> np.ndarray:
    """The mean of per-search values for each query index (NaN for a query not searched)."""
    out = np.full(n_queries, np.nan, dtype=np.float32)
    sums = np.bincount(queries, weights=per_search, minlength=n_queries)
    counts = np.bincount(queries, minlength=n_queries)
    seen = counts > 0
    out[seen] = (sums[seen] / counts[seen]).astype(np.float32)
    return out


def _score_matrix(rows: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    """Similarity of each query to each row, higher is nearer: float32 (len(queries), len(rows))."""
    rows = np.asarray(rows, dtype=np.float32)
    queries = np.asarray(queries, dtype=np.float32)
    dots = queries @ rows.T
    if metric == "l2":
        rr = np.einsum("ij,ij->i", rows, rows)
        qq = np.einsum("ij,ij->i", queries, queries)
        return -(rr[None, :] - 2 * dots + qq[:, None])
    if metric == "cosine":
        rn = np.linalg.norm(rows, axis=1)
        rn[rn == 0] = 1.0
        qn = np.linalg.norm(queries, axis=1)
        qn[qn == 0] = 1.0
        return dots / rn[None, :] / qn[:, None]
    return dots


SCORE_CACHE_BYTES = 512 << 20  # base scores of every sampled query at once while they fit in this
SCORE_BLOCK_ROWS = 65_536


def _base_scores(base: np.ndarray, queries: np.ndarray, qis: list[int], metric: str) -> dict[int, np.ndarray] | None:
    """Scores of the base rows for each query index in `qis`, computed in one blocked pass (None: too large)."""
    n = len(base)
    if len(qis) * n * 4 > SCORE_CACHE_BYTES:
        return None
    q = np.asarray(queries[qis], dtype=np.float32)
    out = np.empty((len(qis), n), dtype=np.float32)
    for s in range(0, n, SCORE_BLOCK_ROWS):
        out[:, s:s + SCORE_BLOCK_ROWS] = _score_matrix(base[s:s + SCORE_BLOCK_ROWS], q, metric)
    return {qi: out[i] for i, qi in enumerate(qis)}


def _events(results, want_filtered: bool) -> list[tuple[int, int, np.ndarray]]:
    """(start ns, query index, returned ids) of the sampled searches of one kind (filtered or not), by start."""
    events = []
    for r in results:
        if r.search_queries is None:
            continue
        flags = r.search_filtered if r.search_filtered is not None else np.zeros(len(r.search_queries), dtype=bool)
        for t, qi, ids, f in zip(r.search_started, r.search_queries, r.search_ids, flags, strict=True):
            if bool(f) == want_filtered:
                events.append((int(t), int(qi), ids))
    events.sort(key=lambda e: e[0])
    return events


def recall_under_updates(results, state, ds, k: int,
                         allowed: Callable[[np.ndarray], np.ndarray] | None = None) -> float | None:
    """Recall of the sampled searches of one trial, against exact top-k over the collection as it stood when
    each search started: base vectors, with every write acknowledged before that moment applied (updates of
    loaded records and inserts of new keys alike). `state.before` maps key -> held-out row before the trial;
    `state.trial_log` holds the trial's writes as (ack ns, key, held-out row) rows in ack order (an int64
    (n, 3) array, or any sequence of such triples).

    allowed: None scores the unfiltered sampled searches. A function from keys (int64) to a bool mask (the
    filter of the filtered searches) scores the sampled filtered searches instead, against the exact top-k of
    the records it keeps; where fewer than k qualify, the denominator is the number that do.

    Writes still in flight while a search ran may or may not be visible to it; the ground truth takes the
    state at the search's start, so such a race can only lower the reported recall, never raise it.
    """
    events = _events(results, allowed is not None)
    if not events:
        return None
    current = dict(state.before)
    log = np.asarray(state.trial_log, dtype=np.int64).reshape(-1, 3)  # (ack ns, key, row) rows, in ack order
    log_t, log_key, log_row = log[:, 0].tolist(), log[:, 1].tolist(), log[:, 2].tolist()
    j = 0
    base, holdout, queries = ds.base, ds.holdout, ds.queries
    n = len(base)
    base_ok = allowed(np.arange(n, dtype=np.int64)) if allowed is not None else None
    cached = _base_scores(base, queries, sorted({qi for _, qi, _ in events}), ds.metric)
    total = 0.0
    scored = 0
    for t, qi, ids in events:
        while j < len(log_t) and log_t[j] < t:
            current[log_key[j]] = log_row[j]
            j += 1
        q = np.asarray(queries[qi:qi + 1], dtype=np.float32)
        s = cached[qi].copy() if cached is not None else _score_matrix(base, q, ds.metric)[0]
        keys = np.fromiter(current, dtype=np.int64, count=len(current))
        rows = np.fromiter(current.values(), dtype=np.int64, count=len(current))
        old = keys < n
        if old.any():
            s[keys[old]] = _score_matrix(holdout[rows[old]], q, ds.metric)[0]
        new_keys = keys[~old]
        all_ids = np.concatenate([np.arange(n, dtype=np.int64), new_keys])
        s = np.concatenate([s, _score_matrix(holdout[rows[~old]], q, ds.metric)[0]]) if len(new_keys) else s
        if allowed is not None:
            ok = np.concatenate([base_ok, allowed(new_keys)]) if len(new_keys) else base_ok
            all_ids, s = all_ids[ok], s[ok]
        want = min(k, len(s))
        if want == 0:
            continue  # no record qualifies: nothing to find, no recall to score
        top = all_ids[np.argpartition(-s, want - 1)[:want]] if want < len(s) else all_ids
        f = ids[:k]
        total += len(set(f[f >= 0].tolist()) & set(top.tolist())) / want
        scored += 1
    return total / scored if scored else None
