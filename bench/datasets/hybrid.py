"""The exact fused reference of hybrid (BM25 + dense) search, computed by the harness with numpy/scipy.

BM25 (Robertson/Lucene form, the one Qdrant, Milvus and Weaviate document):

    score(d, q) = sum over distinct query terms t in d of  idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * |d| / avgdl))
    idf(t)      = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

with k1 = 1.2, b = 0.75 by default, N the records, df(t) the records containing t, |d| the tokens of d and avgdl
their mean over the corpus. Tokens: the lowercased text split on anything but [a-z0-9]; no stemming, no
stopwords. Each distinct query term counts once (the synthetic queries have distinct words).

Dense side: exact similarity (cosine, inner product, or squared L2 distance) over every record.

Each side keeps its exact top `candidates` (BM25: only records with a score above 0). Fusion of the two lists:
- rrf: sum over the lists a record is in of 1 / (60 + rank), rank from 1;
- weighted: alpha * norm(dense) + (1 - alpha) * norm(bm25), a side the record is not in adding 0, where norm is
  the engine's: "minmax" (Weaviate relativeScoreFusion: (s - min) / (max - min) over that side's list, a
  distance inverted first) or "atan" (Milvus WeightedRanker: cosine (1 + s) / 2, inner product
  0.5 + atan(s) / pi, L2 distance 1 - 2 atan(d) / pi, BM25 2 atan(s) / pi).
The reference is the fused top-k, ties broken by the lower id. Agreement (`recall`) counts a returned id as
right when its fused reference score is at least the k-th best (so a tie at the boundary is not a miss).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.datasets._io import ensure_dir
from bench.datasets.rows import ArrayRows, Rows

if TYPE_CHECKING:
    import scipy.sparse as sp  # imported where used: scipy costs every bench process 0.2 s otherwise

TOKEN = re.compile(r"[a-z0-9]+")
RRF_K = 60
IDF_FORMULA = "ln(1 + (N - df + 0.5) / (df + 0.5))"
TIE_RTOL = 1e-6


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


@dataclass
class Bm25Index:
    terms: dict[str, int]
    weights: sp.csr_matrix  # (n, terms): idf * saturated, length-normalised tf
    idf: np.ndarray
    avgdl: float
    n: int
    k1: float
    b: float

    def query_matrix(self, texts: Sequence[str]) -> sp.csc_matrix:
        """(terms, nq) 0/1: the distinct known terms of each query."""
        import scipy.sparse as sp

        rows, cols = [], []
        for j, t in enumerate(texts):
            ids = {self.terms[w] for w in tokenize(t) if w in self.terms}
            rows.extend(ids)
            cols.extend([j] * len(ids))
        return sp.csc_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(self.terms), len(texts)))

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Dense (nq, n) BM25 scores."""
        return (self.weights @ self.query_matrix(texts)).T.toarray()


def build_bm25(texts: Sequence[str], k1: float = 1.2, b: float = 0.75) -> Bm25Index:
    import scipy.sparse as sp

    terms: dict[str, int] = {}
    indptr, indices, data = [0], [], []
    lengths = np.empty(len(texts), dtype=np.float64)
    for i, t in enumerate(texts):
        toks = tokenize(t)
        lengths[i] = len(toks)
        counts: dict[int, int] = {}
        for w in toks:
            j = terms.setdefault(w, len(terms))
            counts[j] = counts.get(j, 0) + 1
        indices.extend(counts)
        data.extend(counts.values())
        indptr.append(len(indices))
    n = len(texts)
    tf = sp.csr_matrix((np.asarray(data, dtype=np.float64), np.asarray(indices, dtype=np.int64),
                        np.asarray(indptr, dtype=np.int64)), shape=(n, len(terms)))
    df = np.bincount(tf.indices, minlength=len(terms)).astype(np.float64)
    idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
    avgdl = float(lengths.mean()) if n else 0.0
    w = tf.copy()
    dl = np.repeat(lengths, np.diff(tf.indptr))
    w.data = idf[tf.indices] * tf.data * (k1 + 1) / (tf.data + k1 * (1 - b + b * dl / (avgdl or 1.0)))
    return Bm25Index(terms, w.tocsr(), idf, avgdl, n, k1, b)


def dense_scores(base: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    """(nq, n) raw dense scores as engines report them: cosine similarity, inner product, or squared L2 distance
    (for l2, smaller is better)."""
    x = np.asarray(base, dtype=np.float64)
    q = np.asarray(queries, dtype=np.float64)
    if metric == "cosine":
        xn = np.linalg.norm(x, axis=1)
        qn = np.linalg.norm(q, axis=1)
        xn[xn == 0] = 1
        qn[qn == 0] = 1
        return (q / qn[:, None]) @ (x / xn[:, None]).T
    if metric == "ip":
        return q @ x.T
    return (q * q).sum(1)[:, None] - 2 * q @ x.T + (x * x).sum(1)[None, :]


def _norm(side: str, s: np.ndarray, norm: str, metric: str) -> np.ndarray:
    if len(s) == 0:
        return s
    if norm == "minmax":
        v = -s if (side == "dense" and metric == "l2") else s
        lo, hi = v.min(), v.max()
        return np.ones_like(v) if hi == lo else (v - lo) / (hi - lo)
    if side == "bm25":
        return 2 * np.arctan(s) / math.pi
    if metric == "cosine":
        return (1 + s) / 2
    if metric == "ip":
        return 0.5 + np.arctan(s) / math.pi
    return 1 - 2 * np.arctan(s) / math.pi


def fuse(dense: tuple[np.ndarray, np.ndarray], bm25: tuple[np.ndarray, np.ndarray], fusion: str,
         alpha: float | None, norm: str | None, metric: str) -> dict[int, float]:
    """Fused score of every record in either list: {id: score}."""
    out: dict[int, float] = {}
    if fusion == "rrf":
        for ids, _ in (dense, bm25):
            for r, i in enumerate(ids.tolist(), start=1):
                out[i] = out.get(i, 0.0) + 1.0 / (RRF_K + r)
        return out
    if fusion != "weighted" or alpha is None or norm not in ("minmax", "atan"):
        raise ValueError(f"unknown fusion {fusion!r} (alpha {alpha}, norm {norm})")
    for (ids, s), side, w in ((dense, "dense", alpha), (bm25, "bm25", 1 - alpha)):
        for i, v in zip(ids.tolist(), _norm(side, s, norm, metric).tolist(), strict=True):
            out[i] = out.get(i, 0.0) + w * v
    return out


@dataclass
class HybridReference:
    fused: np.ndarray  # (nq, k) reference top-k ids, -1 padded
    kth: np.ndarray  # (nq,) fused score of the k-th (or last) reference record
    cand_ids: np.ndarray  # (nq, 2C) every candidate of either side, -1 padded
    cand_scores: np.ndarray  # (nq, 2C) their fused scores
    dense_topk: np.ndarray  # (nq, k) exact dense top-k
    bm25_topk: np.ndarray  # (nq, k) exact BM25 top-k (records with a score above 0), -1 padded

    def per_search(self, queries: np.ndarray, found: np.ndarray, k: int) -> np.ndarray:
        """Each search's |returned ids whose fused reference score >= the k-th| / min(k, candidates)."""
        out = np.ones(len(queries))
        for j, (qi, ids) in enumerate(zip(queries.tolist(), found[:, :k], strict=True)):
            lookup = dict(zip(self.cand_ids[qi].tolist(), self.cand_scores[qi].tolist(), strict=True))
            lookup.pop(-1, None)
            want = min(k, len(lookup))
            if want == 0:
                continue
            thr = self.kth[qi] - TIE_RTOL * max(abs(self.kth[qi]), 1e-12)
            hits = sum(1 for i in set(ids.tolist()) if i >= 0 and lookup.get(i, -math.inf) >= thr)
            out[j] = min(hits, want) / want
        return out

    def agreement(self, queries: np.ndarray, found: np.ndarray, k: int) -> float:
        """Mean over searches of |returned ids whose fused reference score >= the k-th| / min(k, candidates)."""
        if len(queries) == 0:
            return float("nan")
        return float(self.per_search(queries, found, k).mean())


_BLOCK_BYTES = 64 << 20  # float64 bytes of one block of records, and of one block of scores


class _Running:
    """Each query's exact best `c` records so far, by (key, id) ascending (key: smaller is better), merged block
    by block: the same records and order as sorting every record's score at once, one block in memory."""

    def __init__(self, nq: int, c: int):
        self.c = c
        self.key = np.full((nq, c), np.inf)
        self.ids = np.full((nq, c), np.iinfo(np.int64).max, dtype=np.int64)

    def merge(self, a: int, key: np.ndarray, offset: int, valid: np.ndarray) -> None:
        """Merge the keys of queries a.. over records offset.. (`valid`: the records that may be candidates)."""
        key = np.where(valid, key, np.inf)
        z = a + len(key)
        thr = self.key[a:z, -1]
        if key.shape[1] > self.c:  # a record behind the block's c-th best cannot be in the top c
            thr = np.minimum(thr, np.partition(key, self.c - 1, axis=1)[:, self.c - 1])
        sel = (key <= thr[:, None]) & np.isfinite(key)
        for j in np.flatnonzero(sel.any(axis=1)).tolist():
            idx = np.flatnonzero(sel[j])
            kk = np.concatenate([self.key[a + j], key[j, idx]])
            ii = np.concatenate([self.ids[a + j], idx + offset])
            order = np.lexsort((ii, kk))[:self.c]
            self.key[a + j], self.ids[a + j] = kk[order], ii[order]

    def top(self, qi: int, larger_better: bool) -> tuple[np.ndarray, np.ndarray]:
        """(ids, raw scores) of query qi, best first, as `_top` gives them."""
        ok = np.isfinite(self.key[qi])
        return self.ids[qi][ok], (-self.key[qi][ok] if larger_better else self.key[qi][ok])


def reference(base: np.ndarray | Rows, queries: np.ndarray, metric: str, bm25: Bm25Index,
              query_texts: Sequence[str], k: int, candidates: int, fusion: str, alpha: float | None,
              norm: str | None, block: int = 256, mask: np.ndarray | None = None) -> HybridReference:
    """The exact fused reference; `mask` (bool over the records) keeps only the records a filter allows on both
    sides, as an engine filtering its dense and its BM25 search would.

    The records are streamed: one block of rows (read from `base`, an array, a memmap or a `Rows` source) is
    scored in float64 for `block` queries at a time on both sides and merged into each side's running exact top
    `candidates`, so the memory is one block, not the whole base in float64."""
    rows = base if isinstance(base, Rows) else ArrayRows(np.asarray(base))
    nq, larger = len(queries), metric != "l2"
    dense, text = _Running(nq, candidates), _Running(nq, candidates)
    qm = bm25.query_matrix(query_texts)
    step = max(1, min(_BLOCK_BYTES // (8 * max(1, rows.dim)), _BLOCK_BYTES // (8 * max(1, block))))
    for start, x in rows.blocks(step):
        stop = start + len(x)
        keep = np.ones(len(x), dtype=bool) if mask is None else np.asarray(mask[start:stop], dtype=bool)
        w = bm25.weights[start:stop]
        for a in range(0, nq, block):
            z = min(nq, a + block)
            ds = dense_scores(x, queries[a:z], metric)
            dense.merge(a, -ds if larger else ds, start, keep[None, :])
            bs = (w @ qm[:, a:z]).T.toarray()  # excluded records: no BM25 score (never a candidate)
            text.merge(a, -bs, start, keep[None, :] & (bs > 0))
    return _fused(dense, text, nq, k, candidates, larger, fusion, alpha, norm, metric)


def _fused(dense: _Running, text: _Running, nq: int, k: int, candidates: int, larger: bool, fusion: str,
           alpha: float | None, norm: str | None, metric: str) -> HybridReference:
    c2 = 2 * candidates
    fused = np.full((nq, k), -1, dtype=np.int64)
    kth = np.zeros(nq)
    cand_ids = np.full((nq, c2), -1, dtype=np.int64)
    cand_scores = np.zeros((nq, c2))
    dtop = np.full((nq, k), -1, dtype=np.int64)
    btop = np.full((nq, k), -1, dtype=np.int64)
    for qi in range(nq):
        d = dense.top(qi, larger)
        s = text.top(qi, True)
        dtop[qi, :min(k, len(d[0]))] = d[0][:k]
        btop[qi, :min(k, len(s[0]))] = s[0][:k]
        f = fuse(d, s, fusion, alpha, norm, metric)
        items = sorted(f.items(), key=lambda kv: (-kv[1], kv[0]))
        cand_ids[qi, :len(items)] = [i for i, _ in items]
        cand_scores[qi, :len(items)] = [v for _, v in items]
        top = items[:k]
        fused[qi, :len(top)] = [i for i, _ in top]
        kth[qi] = top[-1][1] if top else 0.0
    return HybridReference(fused, kth, cand_ids, cand_scores, dtop, btop)


def cached_reference(cache_dir: Path, key: dict, compute) -> HybridReference:
    """The reference for `key` (everything it depends on) from cache_dir/groundtruth, else computed and saved."""
    h = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    path = Path(cache_dir) / "groundtruth" / f"hybrid-{h}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return HybridReference(**{f: z[f] for f in ("fused", "kth", "cand_ids", "cand_scores",
                                                             "dense_topk", "bm25_topk")})
        except (OSError, ValueError, KeyError):
            pass
    ref = compute()
    ensure_dir(path.parent)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, fused=ref.fused, kth=ref.kth, cand_ids=ref.cand_ids, cand_scores=ref.cand_scores,
             dense_topk=ref.dense_topk, bm25_topk=ref.bm25_topk)
    tmp.replace(path)
    return ref
