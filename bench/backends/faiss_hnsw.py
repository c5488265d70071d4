"""`faiss`: faiss IndexHNSWFlat, the reference library (in-process, no server).

faiss builds the HNSW graph while vectors are added, so the load phase includes the build and
`wait_indexed` has nothing left to wait for; BuiltIndex says so. IndexHNSW cannot remove vectors, so
upsert and delete are not offered. Cosine is inner product over L2-normalised vectors.

OpenMP's thread count is a per-thread setting: each thread that searches sets it once to `search_threads`
(otherwise a worker thread would fan every single-query search out over all cores).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from importlib.metadata import version
from typing import Any

import numpy as np
from pydantic import Field

from bench.backends.base import (
    Backend,
    BackendOptions,
    BuiltIndex,
    Capabilities,
    CollectionSpec,
    EngineInfo,
    Record,
    SearchParams,
)
from bench.errors import UserError


class FaissOptions(BackendOptions):
    build_threads: int = Field(0, ge=0, description="OpenMP threads while adding (0 = all cores)")
    search_threads: int = Field(1, ge=1, description="OpenMP threads per search call")


class FaissBackend(Backend):
    name = "faiss"
    capabilities = Capabilities(in_process=True, get=True, upsert=False, delete=False)
    Options = FaissOptions

    @classmethod
    def check_available(cls, options: BackendOptions) -> str | None:
        try:
            import faiss  # noqa: F401
        except ImportError:
            return "faiss-cpu is not installed; install it with `pip install -e '.[embedded]'`"
        return None

    def create(self, collection: CollectionSpec) -> None:
        import faiss

        self._faiss = faiss
        self.collection = collection
        if collection.metric not in ("cosine", "ip", "l2"):
            raise UserError(f"faiss does not support metric '{collection.metric}'", "use cosine, ip or l2")
        metric = faiss.METRIC_L2 if collection.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        idx = collection.index
        if idx.kind == "flat":
            inner = faiss.IndexFlat(collection.dim, metric)
        else:
            inner = faiss.IndexHNSWFlat(collection.dim, idx.m, metric)
            inner.hnsw.efConstruction = idx.ef_construction
        self._inner = inner
        self.index = faiss.IndexIDMap2(inner)
        self._params_cache: dict[int, Any] = {}
        self._tls = threading.local()

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.collection.metric == "cosine":
            x = x.copy() if x is vectors else x
            self._faiss.normalize_L2(x)
        return x

    def insert(self, ids: np.ndarray, vectors: np.ndarray, payloads: Sequence[Mapping[str, Any]] | None = None) -> None:
        threads = self.options.build_threads or self._faiss.omp_get_max_threads()
        self._faiss.omp_set_num_threads(threads)
        self.index.add_with_ids(self._prepare(vectors), np.asarray(ids, dtype=np.int64))

    def wait_indexed(self, timeout_s: float) -> BuiltIndex:
        self._faiss.omp_set_num_threads(self.options.search_threads)
        n = int(self.index.ntotal)
        if isinstance(self._inner, self._faiss.IndexHNSW):
            h = self._inner.hnsw
            # M is read back from the graph itself: level-0 neighbour slots are 2*M.
            m = int(h.nb_neighbors(1)) if h.max_level >= 1 else int(h.nb_neighbors(0)) // 2
            params = {"m": m, "ef_construction": int(h.efConstruction), "levels": int(h.max_level) + 1,
                      "built_during_insert": True}
            kind = "hnsw"
        else:
            params, kind = {}, "flat"
        return BuiltIndex(kind=kind, params=params, indexed_count=n, total_count=n)

    def _search_params(self, ef: int | None) -> Any:
        if ef is None or not isinstance(self._inner, self._faiss.IndexHNSW):
            return None
        p = self._params_cache.get(ef)
        if p is None:
            p = self._params_cache[ef] = self._faiss.SearchParametersHNSW(efSearch=ef)
        return p

    def search(self, vector: np.ndarray, k: int, params: SearchParams) -> Sequence[int]:
        if not getattr(self._tls, "ready", False):
            self._faiss.omp_set_num_threads(self.options.search_threads)
            self._tls.ready = True
        q = self._prepare(vector.reshape(1, -1))
        _, ids = self.index.search(q, k, params=self._search_params(params.ef_search))
        row = ids[0]
        return row[row >= 0].tolist()

    def get(self, id: int) -> Record | None:
        try:
            v = self.index.reconstruct(int(id))
        except RuntimeError:
            return None
        return Record(id=int(id), vector=v)

    def info(self) -> EngineInfo:
        return EngineInfo(engine="faiss", client_version=version("faiss-cpu"),
                          memory_bytes=None, extra={"omp_threads": self._faiss.omp_get_max_threads()})

    def drop(self) -> None:
        self.index = None  # type: ignore[assignment]
        self._inner = None
