"""`faiss`: faiss IndexHNSWFlat, the reference library (in-process, no server).

faiss builds the HNSW graph while vectors are added, so the load phase includes the build and
`wait_indexed` has nothing left to wait for; BuiltIndex says so. IndexHNSW cannot remove vectors, so
upsert and delete are not offered. Cosine is inner product over L2-normalised vectors.

Quantization: int8 and fp16 are IndexHNSWSQ (QT_8bit, QT_fp16), pq is IndexHNSWPQ (one 8-bit code per 4
dimensions, 16x smaller); these need training, so their vectors are kept until `wait_indexed`, which trains on
them and adds them (the build is timed there). With `index.rescore` the graph is wrapped in IndexRefineFlat:
it keeps the float32 vectors and reranks 2k candidates exactly. Binary quantization is not offered (faiss'
binary indexes take bit vectors and Hamming distance): a UserError. Quantized cosine indexes use L2 over the
L2-normalised vectors (the same order), since faiss' HNSW graph over PQ codes with inner product is poor.

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
    installed,
)
from bench.errors import UserError

QUANTIZERS: dict[str, str | None] = {"int8": "QT_8bit", "fp16": "QT_fp16", "pq": None}  # ScalarQuantizer types
QT_CODES = {"int8": 0, "fp16": 4}  # faiss ScalarQuantizer.QT_8bit, QT_fp16
RESCORE_FACTOR = 2.0  # rescore: the quantized graph returns k * this candidates, reranked on float32 vectors


def _pq_subquantizers(dim: int) -> int:
    """One 8-bit code per 4 dimensions (16x smaller than float32), or the nearest divisor of dim below."""
    m = max(1, dim // 4)
    while dim % m:
        m -= 1
    return m


def index_bytes(faiss: Any, index: Any) -> int:
    """Bytes held by the arrays of a (possibly wrapped) faiss HNSW or flat index, part by part."""
    idx = faiss.downcast_index(index)
    if isinstance(idx, faiss.IndexIDMap):  # IndexIDMap2 derives from it
        return int(idx.id_map.size()) * 8 + index_bytes(faiss, idx.index)
    if isinstance(idx, faiss.IndexRefine):
        return index_bytes(faiss, idx.base_index) + index_bytes(faiss, idx.refine_index)
    if isinstance(idx, faiss.IndexHNSW):
        h = idx.hnsw
        graph = int(h.neighbors.size()) * 4 + int(h.levels.size()) * 4 + int(h.offsets.size()) * 8
        return graph + index_bytes(faiss, idx.storage)
    total = int(idx.codes.size()) if hasattr(idx, "codes") else 0  # float32 vectors, SQ or PQ codes
    if hasattr(idx, "pq"):
        total += int(idx.pq.centroids.size()) * 4
    if hasattr(idx, "sq"):
        total += int(idx.sq.trained.size()) * 4
    return total


class FaissOptions(BackendOptions):
    build_threads: int = Field(0, ge=0, description="OpenMP threads while adding (0 = all cores)")
    search_threads: int = Field(1, ge=1, description="OpenMP threads per search call")


class FaissBackend(Backend):
    name = "faiss"
    capabilities = Capabilities(in_process=True, get=True, upsert=False, delete=False,
                                quantization=("int8", "fp16", "pq"))
    Options = FaissOptions

    @classmethod
    def check_available(cls, options: BackendOptions) -> str | None:
        if not installed("faiss"):
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
        quant = idx.quantization
        if quant is not None and collection.metric == "cosine":
            # Same order over unit vectors; faiss' HNSW over PQ codes builds a poor graph with inner product.
            metric = faiss.METRIC_L2
        if quant is not None and (quant not in QUANTIZERS or idx.kind != "hnsw"):
            raise UserError(f"faiss does not offer {quant} quantization{'' if idx.kind == 'hnsw' else ' for flat'}"
                            " here, so the run is skipped rather than built unquantized",
                            "use int8, fp16 or pq with an hnsw index, or remove index.quantization")
        if idx.kind == "flat":
            inner = faiss.IndexFlat(collection.dim, metric)
        elif quant == "pq":
            inner = faiss.IndexHNSWPQ(collection.dim, _pq_subquantizers(collection.dim), idx.m, 8, metric)
        elif quant is not None:
            inner = faiss.IndexHNSWSQ(collection.dim, getattr(faiss.ScalarQuantizer, QUANTIZERS[quant]), idx.m, metric)
        else:
            inner = faiss.IndexHNSWFlat(collection.dim, idx.m, metric)
        if idx.kind == "hnsw":
            inner.hnsw.efConstruction = idx.ef_construction
        self._hnsw = inner
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []  # quantized: (ids, vectors) until trained
        if quant is not None and idx.rescore:
            inner = faiss.IndexRefineFlat(inner)
            inner.k_factor = RESCORE_FACTOR
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
        if not self._hnsw.is_trained:
            self._pending.append((np.asarray(ids, dtype=np.int64).copy(), self._prepare(vectors).copy()))
            return
        self.index.add_with_ids(self._prepare(vectors), np.asarray(ids, dtype=np.int64))

    def _train_and_add(self) -> int:
        """Quantized indexes: train on every vector loaded, then add them all. Returns the training rows."""
        if not self._pending:
            return 0
        threads = self.options.build_threads or self._faiss.omp_get_max_threads()
        self._faiss.omp_set_num_threads(threads)
        ids = np.concatenate([i for i, _ in self._pending])
        x = np.concatenate([v for _, v in self._pending])
        self._pending = []
        storage = self._faiss.downcast_index(self._hnsw.storage)
        if hasattr(storage, "pq"):  # small collections: train anyway (the row count is reported), without warnings
            storage.pq.cp.min_points_per_centroid = 1
        self._inner.train(x)
        self.index.add_with_ids(x, ids)
        return len(x)

    def wait_indexed(self, timeout_s: float) -> BuiltIndex:
        trained_on = self._train_and_add()
        self._faiss.omp_set_num_threads(self.options.search_threads)
        n = int(self.index.ntotal)
        if isinstance(self._hnsw, self._faiss.IndexHNSW):
            h = self._hnsw.hnsw
            # M is read back from the graph itself: level-0 neighbour slots are 2*M.
            m = int(h.nb_neighbors(1)) if h.max_level >= 1 else int(h.nb_neighbors(0)) // 2
            params = {"m": m, "ef_construction": int(h.efConstruction), "levels": int(h.max_level) + 1,
                      "built_during_insert": not trained_on, "index_class": type(self._hnsw).__name__}
            params.update(self._quantization_read_back(trained_on))
            kind = "hnsw"
        else:
            params, kind = {}, "flat"
        params["load_recipe"] = {
            "add": "add_with_ids of each batch: the graph is built while adding" if not trained_on else
            "train on every loaded vector, then one add_with_ids", "build_threads":
            self.options.build_threads or "all cores (OpenMP)",
            "docs": ["faiss wiki: IndexHNSW adds are parallelised with OpenMP within one add call"]}
        return BuiltIndex(kind=kind, params=params, indexed_count=n, total_count=n)

    def _quantization_read_back(self, trained_on: int) -> dict[str, Any]:
        storage = self._faiss.downcast_index(self._hnsw.storage)
        if hasattr(storage, "sq"):
            qt = {v: k for k, v in QT_CODES.items()}.get(int(storage.sq.qtype), f"qtype {int(storage.sq.qtype)}")
            out: dict[str, Any] = {"quantization": qt, "code_size": int(storage.sq.code_size)}
        elif hasattr(storage, "pq"):
            out = {"quantization": "pq", "pq_m": int(storage.pq.M), "pq_nbits": int(storage.pq.nbits),
                   "code_size": int(storage.pq.code_size)}
        else:
            return {"quantization": None}
        refine = self._faiss.downcast_index(self._inner)
        out["rescore"] = isinstance(refine, self._faiss.IndexRefine)
        if out["rescore"]:
            out["rescore_k_factor"] = float(refine.k_factor)
        out["trained_on"] = trained_on
        out["graph_metric"] = "l2" if self._hnsw.metric_type == self._faiss.METRIC_L2 else "ip"
        return out

    def _search_params(self, ef: int | None) -> Any:
        if ef is None or not isinstance(self._hnsw, self._faiss.IndexHNSW):
            return None
        p = self._params_cache.get(ef)
        if p is None:
            p = self._faiss.SearchParametersHNSW(efSearch=ef)
            if self._inner is not self._hnsw:
                p = self._faiss.IndexRefineSearchParameters(k_factor=RESCORE_FACTOR, base_index_params=p)
            self._params_cache[ef] = p
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
        """index_size_bytes: the bytes the index's arrays hold (graph, codes or vectors, the refine copy, the id
        map, PQ centroids), summed part by part without copying the index; it matches faiss.serialize_index's
        size to within its headers (tested)."""
        size = index_bytes(self._faiss, self.index) if self.index is not None else None
        extra: dict[str, Any] = {"omp_threads": self._faiss.omp_get_max_threads()}
        if self.index is not None and isinstance(self._hnsw, self._faiss.IndexHNSW):
            storage = self._faiss.downcast_index(self._hnsw.storage)
            n = int(self.index.ntotal)
            code = int(getattr(storage, "code_size", 0)) or 4 * int(storage.d)
            extra["vector_codes_bytes"] = n * code  # what the graph searches: float32, fp16, int8 or PQ codes
            if self._inner is not self._hnsw:
                extra["rescore_vectors_bytes"] = n * 4 * int(self._hnsw.d)  # IndexRefineFlat's float32 copy
        return EngineInfo(engine="faiss", client_version=version("faiss-cpu"), index_size_bytes=size,
                          memory_bytes=None, extra=extra)

    def drop(self) -> None:
        self.index = None  # type: ignore[assignment]
        self._inner = None
