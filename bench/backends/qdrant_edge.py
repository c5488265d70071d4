"""`qdrant-edge`: the real Qdrant engine embedded in-process (qdrant-edge-py's EdgeShard).

EdgeShard builds its HNSW graph only when `optimize()` runs, so `wait_indexed` calls it and then checks the
indexed-vector count the shard reports. What was built is read back from each segment's
`vector_index/hnsw_config.json`, which the engine writes when it builds a graph.

Quantization: int8 is ScalarQuantizationConfig (quantile 0.99), pq ProductQuantizationConfig (x16 compression),
binary BinaryQuantizationConfig (one bit), all kept in RAM, with `QuantizationSearchParams(rescore=...)` on every
query (oversampling 2 when rescoring); fp16 is the Float16 storage datatype (no separate quantized copy, so nothing to rescore with). What was
built is read back from each indexed segment's `segment.json` and `vector_storage/quantized.config.json`.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping, Sequence
from importlib.metadata import version
from pathlib import Path
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

_DISTANCE = {"cosine": "Cosine", "ip": "Dot", "l2": "Euclid"}
RESCORE_OVERSAMPLING = 2.0  # rescore: 2k quantized candidates reranked on the original vectors (as faiss)


def _one(values: list[Any]) -> Any:
    """The value when every segment agrees, else the sorted distinct values."""
    distinct = sorted({v for v in values}, key=str)
    return distinct[0] if len(distinct) == 1 else distinct


class QdrantEdgeOptions(BackendOptions):
    full_scan_threshold_kb: int = Field(10, ge=0, description="segments smaller than this are searched exactly")
    indexing_threshold_kb: int = Field(1, ge=0, description="segments larger than this get an HNSW graph; "
                                       "Qdrant's default (10,000 KB) leaves small collections unindexed")
    max_indexing_threads: int = Field(0, ge=0, description="0 = all cores")
    max_search_threads: int | None = Field(None, ge=1, description="shard's search pool size (None = CPU count)")


class QdrantEdgeBackend(Backend):
    name = "qdrant-edge"
    capabilities = Capabilities(in_process=True, get=True, upsert=True, delete=True, filters=True,
                                quantization=("int8", "fp16", "pq", "binary"))
    Options = QdrantEdgeOptions

    @classmethod
    def check_available(cls, options: BackendOptions) -> str | None:
        try:
            import qdrant_edge  # noqa: F401
        except ImportError:
            return "qdrant-edge-py is not installed; install it with `pip install -e '.[embedded]'`"
        return None

    @property
    def path(self) -> Path:
        return Path(self.workdir) / "qdrant-edge"

    def create(self, collection: CollectionSpec) -> None:
        import qdrant_edge as q

        self.q = q
        self.collection = collection
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True, exist_ok=True)
        if collection.index.kind != "hnsw":
            raise UserError(f"qdrant-edge builds only HNSW indexes, not '{collection.index.kind}'",
                            "set index.kind = \"hnsw\"")
        o = self.options
        hnsw = q.HnswIndexConfig(m=collection.index.m, ef_construct=collection.index.ef_construction,
                                 full_scan_threshold=o.full_scan_threshold_kb, max_indexing_threads=o.max_indexing_threads)
        quant = collection.index.quantization
        datatype = q.VectorStorageDatatype.Float16 if quant == "fp16" else None
        config = q.EdgeConfig(
            vectors={"": q.EdgeVectorParams(size=collection.dim, distance=getattr(q.Distance, _DISTANCE[collection.metric]),
                                            datatype=datatype)},
            quantization_config=self._quantization_config(quant),
            hnsw_config=hnsw,
            optimizers=q.EdgeOptimizersConfig(indexing_threshold=o.indexing_threshold_kb),
            max_search_threads=o.max_search_threads,
        )
        self.shard = q.EdgeShard.create(str(self.path), config)
        self._params: dict[int | None, Any] = {}
        # Filtered search needs payload indexes, as in Qdrant server: without them the graph search under a
        # filter can return fewer than k results.
        kinds = {"int": q.PayloadSchemaType.Integer, "keyword": q.PayloadSchemaType.Keyword,
                 "text": q.PayloadSchemaType.Text, "float": q.PayloadSchemaType.Float, "bool": q.PayloadSchemaType.Bool}
        for name, kind in collection.payload_fields.items():
            if kind not in kinds:
                raise UserError(f"qdrant-edge cannot index payload field '{name}' of type '{kind}'",
                                f"use one of: {', '.join(kinds)}")
            self.shard.update(q.UpdateOperation.create_field_index(name, kinds[kind]))

    def _quantization_config(self, quant: str | None) -> Any:
        q = self.q
        if quant in (None, "fp16"):
            return None
        if quant == "int8":
            return q.ScalarQuantizationConfig(q.ScalarType.Int8, quantile=0.99, always_ram=True)
        if quant == "pq":
            return q.ProductQuantizationConfig(q.CompressionRatio.X16, always_ram=True)
        if quant == "binary":
            return q.BinaryQuantizationConfig(always_ram=True)
        raise UserError(f"qdrant-edge does not offer quantization '{quant}'", "use int8, fp16, pq or binary")

    def _built_quantization(self) -> tuple[list[Any], list[Any]]:
        """(quantization configs, storage datatypes) of the segments that have an HNSW graph, read from disk."""
        quants, dtypes = [], []
        for seg in sorted(self.path.glob("segments/*")):
            if not (seg / "vector_index" / "hnsw_config.json").exists():
                continue
            try:
                vd = json.loads((seg / "segment.json").read_text())["config"]["vector_data"][""]
                qc = seg / "vector_storage" / "quantized.config.json"
                quants.append(json.loads(qc.read_text())["quantization_config"] if qc.exists() else None)
            except (OSError, KeyError, json.JSONDecodeError):
                continue
            dtypes.append(vd.get("datatype", "float32"))
        return quants, dtypes

    def attach(self, collection: CollectionSpec) -> None:
        raise UserError("qdrant-edge is in-process; it cannot be attached from another process",
                        "it is driven by threads; this is a harness bug if you see it")

    def _point(self, id: int, vector: np.ndarray, payload: Mapping[str, Any] | None) -> Any:
        return self.q.Point(int(id), vector.tolist(), dict(payload) if payload else None)

    def insert(self, ids: np.ndarray, vectors: np.ndarray, payloads: Sequence[Mapping[str, Any]] | None = None) -> None:
        pts = [self._point(i, v, payloads[j] if payloads else None) for j, (i, v) in enumerate(zip(ids, vectors, strict=True))]
        self.shard.update(self.q.UpdateOperation.upsert_points(pts))

    def _built_segments(self) -> list[dict[str, Any]]:
        out = []
        for f in sorted(self.path.glob("segments/*/vector_index/hnsw_config.json")):
            try:
                out.append(json.loads(f.read_text()))
            except (OSError, json.JSONDecodeError):
                continue
        return out

    def wait_indexed(self, timeout_s: float) -> BuiltIndex:
        start = time.monotonic()
        self.shard.optimize()  # blocks until no more optimisations are planned
        self.shard.flush()
        info = self.shard.info()
        if time.monotonic() - start > timeout_s:
            raise UserError(f"qdrant-edge took {time.monotonic() - start:.0f} s to build its index, past the "
                            f"{timeout_s:.0f} s timeout", "raise run.index_timeout_s")
        segments = self._built_segments()
        subs: list[str] = []
        req = self.collection.index
        ms = sorted({s.get("m") for s in segments})
        efs = sorted({s.get("ef_construct") for s in segments})
        params: dict[str, Any] = {"m": ms[0] if len(ms) == 1 else ms, "ef_construction": efs[0] if len(efs) == 1 else efs,
                                  "segments": info.segments_count, "hnsw_segments": len(segments),
                                  "full_scan_threshold_kb": self.options.full_scan_threshold_kb,
                                  "indexing_threshold_kb": self.options.indexing_threshold_kb}
        if not segments:
            subs.append("no HNSW graph was built (all segments are plain); searches are exact full scans")
        elif ms != [req.m] or efs != [req.ef_construction]:
            subs.append(f"asked for m={req.m}, ef_construction={req.ef_construction}; engine built m={ms}, ef_construct={efs}")
        quants, dtypes = self._built_quantization()
        want = req.quantization
        params["quantization"] = _one([next(iter(c)) if c else None for c in quants])
        params["quantization_config"] = _one([json.dumps(c, sort_keys=True) if c else None for c in quants])
        params["datatype"] = _one(dtypes)
        params["rescore"] = req.rescore if want in ("int8", "pq", "binary") else None
        if params["rescore"]:
            params["rescore_oversampling"] = RESCORE_OVERSAMPLING
        expect = {"int8": "scalar", "pq": "product", "binary": "binary"}.get(want or "")
        if segments and expect and any(c is None or expect not in c for c in quants):
            subs.append(f"asked for {want} quantization; the indexed segments hold {params['quantization']}")
        if segments and want == "fp16" and any(d != "float16" for d in dtypes):
            subs.append(f"asked for fp16 storage; the indexed segments store {params['datatype']}")
        if info.indexed_vectors_count < info.points_count:
            subs.append(f"only {info.indexed_vectors_count} of {info.points_count} vectors are in an HNSW graph; "
                        "the rest are searched by full scan")
        return BuiltIndex(kind="hnsw" if segments else "plain", params=params,
                          indexed_count=int(info.indexed_vectors_count), total_count=int(info.points_count),
                          substitutions=subs)

    def _search_params(self, ef: int | None) -> Any:
        p = self._params.get(ef)
        if p is None:
            quant = None
            if self.collection.index.quantization in ("int8", "pq", "binary"):
                rescore = self.collection.index.rescore
                quant = self.q.QuantizationSearchParams(rescore=rescore, oversampling=RESCORE_OVERSAMPLING if rescore else None)
            p = self._params[ef] = self.q.SearchParams(hnsw_ef=ef, quantization=quant)
        return p

    def _filter(self, flt: Mapping[str, Any] | None) -> Any:
        if not flt:
            return None
        q = self.q
        return q.Filter(must=[q.FieldCondition(key=k, match=q.MatchValue(v)) for k, v in flt.items()])

    def search(self, vector: np.ndarray, k: int, params: SearchParams) -> Sequence[int]:
        q = self.q
        req = q.SearchRequest(query=q.Query.Nearest(vector.tolist()), limit=k,
                              params=self._search_params(params.ef_search), filter=self._filter(params.filter))
        return [p.id for p in self.shard.search(req)]

    def get(self, id: int) -> Record | None:
        recs = self.shard.retrieve([int(id)], with_payload=True, with_vector=True)
        if not recs:
            return None
        r = recs[0]
        v = r.vector
        if isinstance(v, dict):
            v = v.get("")
        return Record(id=int(r.id), vector=None if v is None else np.asarray(v, dtype=np.float32), payload=r.payload)

    def upsert(self, id: int, vector: np.ndarray, payload: Mapping[str, Any] | None = None) -> None:
        self.shard.update(self.q.UpdateOperation.upsert_points([self._point(id, vector, payload)]))

    def delete(self, id: int) -> None:
        self.shard.update(self.q.UpdateOperation.delete_points([int(id)]))

    def _disk_usage(self) -> dict[str, int]:
        """Bytes on disk by part: the segments' original vectors, quantized copies and HNSW graphs, and all files
        (the WAL and payload storage preallocate tens of MB whatever the data, so they are kept apart)."""
        out = {"vectors_bytes": 0, "quantized_bytes": 0, "graph_bytes": 0, "total_on_disk_bytes": 0}
        if not self.path.exists():
            return out
        for f in self.path.rglob("*"):
            if not f.is_file():
                continue
            size = f.stat().st_size
            out["total_on_disk_bytes"] += size
            parts = f.relative_to(self.path).parts
            if "vector_index" in parts:
                out["graph_bytes"] += size
            elif "vector_storage" in parts:
                out["quantized_bytes" if f.name.startswith("quantized") else "vectors_bytes"] += size
        return out

    def info(self) -> EngineInfo:
        """index_size_bytes: the segments' vector storage (original vectors and quantized copy) plus HNSW graph
        files, on disk; the breakdown and the total of every file are in `extra`."""
        usage = self._disk_usage()
        size = usage["vectors_bytes"] + usage["quantized_bytes"] + usage["graph_bytes"] if self.path.exists() else None
        return EngineInfo(engine="qdrant-edge", client_version=version("qdrant-edge-py"),
                          server_version=version("qdrant-edge-py"), index_size_bytes=size, extra=usage)

    def drop(self) -> None:
        shard = getattr(self, "shard", None)
        if shard is not None:
            shard.close()
            self.shard = None
        shutil.rmtree(self.path, ignore_errors=True)

    def close(self) -> None:
        shard = getattr(self, "shard", None)
        if shard is not None:
            shard.close()
            self.shard = None
