"""Quality figures from the ids the sampled searches returned.

A trial keeps, for each sampled search, the query index, the ids it returned, when it started and whether it was
a filtered search (`Kept`), in a compressed side file beside the trial's parquet row (`ids_file`). Every quality
figure is computed here from those ids against an exact reference, both while the run goes (the live figure it
prints and stores) and later: `bench rescore` recomputes them for runs already made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import UserError
from bench.metrics.recall import per_query_mean
from bench.results import integrity


@dataclass
class Kept:
    """The sampled searches of one trial, all workers together (field names as a worker's result has them)."""

    search_queries: np.ndarray  # int64 (n,) query index
    search_ids: np.ndarray  # int64 (n, k) returned ids, -1 padded
    search_started: np.ndarray  # int64 (n,) wall-clock ns at the search's start
    search_filtered: np.ndarray  # bool (n,) a filtered search of a YCSB mix

    @classmethod
    def of(cls, results: Sequence[Any], k: int) -> Kept:
        parts = [r for r in results if r.search_queries is not None and len(r.search_queries)]

        def cat(name: str, empty: np.ndarray) -> np.ndarray:
            vals = [getattr(r, name) for r in parts]
            if name == "search_filtered":
                vals = [v if v is not None else np.zeros(len(r.search_queries), bool) for v, r in zip(vals, parts,
                                                                                                      strict=True)]
            return np.concatenate(vals) if vals else empty

        return cls(cat("search_queries", np.zeros(0, np.int64)), cat("search_ids", np.zeros((0, k), np.int64)),
                   cat("search_started", np.zeros(0, np.int64)), cat("search_filtered", np.zeros(0, bool)))

    def __len__(self) -> int:
        return len(self.search_queries)

    def save(self, path: Path) -> None:
        """Write atomically (compressed; ids as int32 where they fit)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        ids = self.search_ids
        if len(ids) and ids.max(initial=-1) < 2**31:
            ids = ids.astype(np.int32)
        tmp = path.with_name(path.name + ".tmp.npz")
        try:
            np.savez_compressed(tmp, queries=self.search_queries.astype(np.int32), ids=ids,
                                started=self.search_started, filtered=self.search_filtered)
            integrity.write_sum(path, integrity.digest(tmp.read_bytes()))
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk leaves no half-written file behind
            raise

    @classmethod
    def load(cls, path: Path) -> Kept:
        """The kept ids of a trial, checked against their checksum first (a damaged file is one sentence)."""
        import io
        import zipfile

        try:
            data = integrity.read_verified(path, "kept ids file")
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                return cls(z["queries"].astype(np.int64), z["ids"].astype(np.int64), z["started"], z["filtered"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise UserError(f"The kept ids file {path} cannot be read ({type(e).__name__}: {e})",
                            "rerun the run; rescore needs its ids whole") from None


def score_static(ref: Any, kept: Kept, k: int, n_queries: int) -> dict[str, Any]:
    """recall@k (or the reference's own per-search quality) of the sampled searches, each query's mean, and the
    reference's extra figures. Empty when nothing was sampled."""
    if not len(kept):
        return {}
    q, ids = kept.search_queries, kept.search_ids
    per = ref.per_search(q, ids, k)
    return {"recall": float(per.mean()), "recall_per_query": per_query_mean(q, per, n_queries).tolist(),
            **ref.extra(q, ids, k)}
