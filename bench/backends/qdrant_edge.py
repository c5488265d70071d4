"""`qdrant-edge`: the real Qdrant engine embedded in-process (qdrant-edge-py's EdgeShard).

EdgeShard builds its HNSW graph only when `optimize()` runs, so `wait_indexed` calls it and then checks the
indexed-vector count the shard reports. What was built is read back from each segment's
`vector_index/hnsw_config.json`, which the engine writes when it builds a graph.

Quantization: int8 is ScalarQuantizationConfig (quantile 0.99), pq ProductQuantizationConfig (x16 compression),
binary BinaryQuantizationConfig (one bit), all kept in RAM, with `QuantizationSearchParams(rescore=...)` on every
query (oversampling 2 when rescoring); fp16 is the Float16 storage datatype (no separate quantized copy, so nothing to rescore with). What was
built is read back from each indexed segment's `segment.json` and `vector_storage/quantized.config.json`. The
builders are shared with the `qdrant` server adapter (`_qdrant_common`).

Filters: the typed filter tree (`bench.backends.query`) becomes a `Filter` of `FieldCondition`s (MatchValue for
Eq, RangeFloat for Range; And / Or as must / should), by the translator shared with the server adapter. Every
declared payload field gets a payload index (an Integer index serves both equality and ranges).

Multi-vector records (`CollectionSpec.vectors`): one named vector per name in the shard config, each with its own
HNSW graph (`vector_index-<name>/` in a segment) built by `optimize()`; a search names its vector with
`Query.Nearest(..., using=name)`. The graphs are read back per name, and the shard's indexed-vector count (which
counts every named vector of every point) must reach points x names.

Hybrid: the engine's own BM25. The text payload field gets a text index with BM25 scoring (`TextIndexParams(
tokenizer=Word, lowercase=True, scoring=True)`: no stemmer, no stopwords); a search is one `QueryRequest` with two
prefetches (dense `Nearest` with hnsw_ef, and `TextQuery(field, text, Bm25Params(k1, b))`, each limited to the
candidates) fused by `Fusion.Rrf`. Qdrant ranks from 0 (1 / (k + rank0)), so k = 61 is sent for the standard
RRF with k = 60 (1 / (60 + rank), rank from 1). It has no alpha-weighted score fusion (only RRF and DBSF).
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

from bench.backends._qdrant_common import (
    QUANT_KIND,
    QUANTIZED_COPY,
    RESCORE_OVERSAMPLING,
    edge_api,
    quantization_config,
    quantization_search_params,
    query_filter,
)
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
from bench.backends.query import Filter, with_tenant
from bench.datasets.hybrid import RRF_K
from bench.errors import UserError

_DISTANCE = {"cosine": "Cosine", "ip": "Dot", "l2": "Euclid"}
_EXPECT = {name: key for key, name in QUANT_KIND.items()}  # bench's quantization -> the segment config's key


def _subdir(base: str, name: str) -> str:
    """A segment's folder for vector `name`: `vector_index` for the unnamed vector, `vector_index-<name>` else."""
    return f"{base}-{name}" if name else base


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
    capabilities = Capabilities(in_process=True, get=True, upsert=True, delete=True, filters=True, hybrid=True,
                                quantization=("int8", "fp16", "pq", "binary"), multi_vector=True,
                                reopen=True, tenants=True)
    Options = QdrantEdgeOptions

    @classmethod
    def check_available(cls, options: BackendOptions) -> str | None:
        if not installed("qdrant_edge"):
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
        named = dict(collection.vectors) or {"": collection.dim}
        config = q.EdgeConfig(
            vectors={name: q.EdgeVectorParams(size=int(dim), datatype=datatype,
                                              distance=getattr(q.Distance, _DISTANCE[collection.metric_of(name)]))
                     for name, dim in named.items()},
            quantization_config=quantization_config(quant, edge_api()),
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
            if collection.hybrid is not None and name == collection.hybrid.text_field:
                # BM25 over this field: scoring on, one token per word, lowercased, no stemmer, no stopwords
                self.shard.update(q.UpdateOperation.create_field_index(name, q.TextIndexParams(
                    tokenizer=q.TokenizerType.Word, lowercase=True, scoring=True)))
                continue
            if kind not in kinds:
                raise UserError(f"qdrant-edge cannot index payload field '{name}' of type '{kind}'",
                                f"use one of: {', '.join(kinds)}")
            if name == collection.tenant_field:  # Qdrant's payload-based multitenancy: a keyword index, is_tenant
                self.shard.update(q.UpdateOperation.create_field_index(name, q.KeywordIndexParams(is_tenant=True)))
                continue
            self.shard.update(q.UpdateOperation.create_field_index(name, kinds[kind]))

    @property
    def _names(self) -> list[str]:
        """The vector names of the shard: "" for the single unnamed vector."""
        return list(self.collection.vectors) or [""]

    def _built_quantization(self, name: str = "") -> tuple[list[Any], list[Any]]:
        """(quantization configs, storage datatypes) of vector `name` in the segments that have its HNSW graph,
        read from disk."""
        quants, dtypes = [], []
        for seg in sorted(self.path.glob("segments/*")):
            if not (seg / _subdir("vector_index", name) / "hnsw_config.json").exists():
                continue
            try:
                vd = json.loads((seg / "segment.json").read_text())["config"]["vector_data"][name]
                qc = seg / _subdir("vector_storage", name) / "quantized.config.json"
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

    def insert(self, ids: np.ndarray, vectors: np.ndarray | Mapping[str, np.ndarray],
               payloads: Sequence[Mapping[str, Any]] | None = None) -> None:
        if isinstance(vectors, Mapping):  # multi-vector records: {name: (n, dim)}
            lists = {name: np.asarray(v, dtype=np.float32).tolist() for name, v in vectors.items()}
            pts = [self.q.Point(int(i), {name: rows[j] for name, rows in lists.items()},
                                dict(payloads[j]) if payloads and payloads[j] else None) for j, i in enumerate(ids)]
        else:
            pts = [self._point(i, v, payloads[j] if payloads else None)
                   for j, (i, v) in enumerate(zip(ids, vectors, strict=True))]
        self.shard.update(self.q.UpdateOperation.upsert_points(pts))

    def _built_segments(self, name: str = "") -> list[dict[str, Any]]:
        out = []
        for f in sorted(self.path.glob(f"segments/*/{_subdir('vector_index', name)}/hnsw_config.json")):
            try:
                out.append(json.loads(f.read_text()))
            except (OSError, json.JSONDecodeError):
                continue
        return out

    def wait_indexed(self, timeout_s: float) -> BuiltIndex:
        start = time.monotonic()
        indexed_before = int(self.shard.info().indexed_vectors_count)
        self.shard.optimize()  # blocks until no more optimisations are planned
        self.shard.flush()
        info = self.shard.info()
        if time.monotonic() - start > timeout_s:
            raise UserError(f"qdrant-edge took {time.monotonic() - start:.0f} s to build its index, past the "
                            f"{timeout_s:.0f} s timeout", "raise run.index_timeout_s")
        built = self._built_named(info) if self.collection.vectors else self._built_one(info)
        built.params["load_recipe"] = {
            "upsert": "one UpdateOperation.upsert_points per insert batch",
            "indexing_during_upload": "off: EdgeShard builds no graph until optimize(), as Qdrant's bulk-upload "
            "docs advise (indexing_threshold 0 while uploading)", "indexed_before_optimize": indexed_before,
            "build": "optimize() after the load (blocks until no optimisation is planned), then flush()",
            "max_indexing_threads": self.options.max_indexing_threads or "all cores",
            "docs": ["Qdrant docs: Bulk Upload Vectors (index after the upload)", "qdrant-edge: EdgeShard.optimize()"]}
        if self.collection.tenant_field:
            built.params["tenants"] = self._built_tenants(info)
        return built

    def _built_tenants(self, info: Any) -> dict[str, Any]:
        """The tenant field's payload index as the shard reports it (Qdrant docs: Configure Multitenancy)."""
        field = self.collection.tenant_field
        schema = (info.payload_schema or {}).get(field)
        params = getattr(schema, "params", None)
        return {"field": field, "how": "one collection, a keyword payload index with is_tenant=True, every search "
                "filtered on the tenant", "data_type": str(getattr(schema, "data_type", None)),
                "is_tenant": getattr(params, "is_tenant", None), "points": getattr(schema, "points", None)}

    def _built_one(self, info: Any) -> BuiltIndex:
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
        params["rescore"] = req.rescore if want in QUANTIZED_COPY else None
        if params["rescore"]:
            params["rescore_oversampling"] = RESCORE_OVERSAMPLING
        expect = _EXPECT.get(want or "")
        if segments and expect and any(c is None or expect not in c for c in quants):
            subs.append(f"asked for {want} quantization; the indexed segments hold {params['quantization']}")
        if segments and want == "fp16" and any(d != "float16" for d in dtypes):
            subs.append(f"asked for fp16 storage; the indexed segments store {params['datatype']}")
        if self.collection.hybrid is not None:
            params["hybrid"] = self._built_hybrid(info)
        if info.indexed_vectors_count < info.points_count:
            subs.append(f"only {info.indexed_vectors_count} of {info.points_count} vectors are in an HNSW graph; "
                        "the rest are searched by full scan")
        return BuiltIndex(kind="hnsw" if segments else "plain", params=params,
                          indexed_count=int(info.indexed_vectors_count), total_count=int(info.points_count),
                          substitutions=subs)

    def _built_named(self, info: Any) -> BuiltIndex:
        """Multi-vector read-back: one HNSW graph per named vector, from each segment's `vector_index-<name>`."""
        req = self.collection.index
        subs: list[str] = []
        per: dict[str, Any] = {}
        for name in self._names:
            segments = self._built_segments(name)
            ms = sorted({s.get("m") for s in segments})
            efs = sorted({s.get("ef_construct") for s in segments})
            quants, dtypes = self._built_quantization(name)
            per[name] = {"kind": "hnsw" if segments else "plain", "dim": self.collection.vectors[name],
                         "metric": self.collection.metric_of(name), "m": _one(ms) if ms else None,
                         "ef_construction": _one(efs) if efs else None, "hnsw_segments": len(segments),
                         "quantization": _one([next(iter(c)) if c else None for c in quants]) if quants else None,
                         "datatype": _one(dtypes) if dtypes else None}
            if not segments:
                subs.append(f"vector '{name}': no HNSW graph was built (all segments are plain); its searches are "
                            "exact full scans")
            elif ms != [req.m] or efs != [req.ef_construction]:
                subs.append(f"vector '{name}': asked for m={req.m}, ef_construction={req.ef_construction}; engine "
                            f"built m={ms}, ef_construct={efs}")
            expect = _EXPECT.get(req.quantization or "")
            if segments and expect and any(c is None or expect not in c for c in quants):
                subs.append(f"vector '{name}': asked for {req.quantization} quantization; the indexed segments hold "
                            f"{per[name]['quantization']}")
        kinds = sorted({p["kind"] for p in per.values()})
        want = int(info.points_count) * len(self._names)
        if info.indexed_vectors_count < want:
            subs.append(f"only {info.indexed_vectors_count} of {want} vectors ({info.points_count} points x "
                        f"{len(self._names)} named vectors) are in an HNSW graph; the rest are searched by full scan")
        params: dict[str, Any] = {"m": _one([p["m"] for p in per.values()]),
                                  "ef_construction": _one([p["ef_construction"] for p in per.values()]),
                                  "segments": info.segments_count, "vectors": per,
                                  "full_scan_threshold_kb": self.options.full_scan_threshold_kb,
                                  "indexing_threshold_kb": self.options.indexing_threshold_kb}
        return BuiltIndex(kind=kinds[0] if len(kinds) == 1 else "mixed", params=params,
                          indexed_count=int(info.indexed_vectors_count), total_count=want, substitutions=subs)

    def _built_hybrid(self, info: Any) -> dict[str, Any]:
        h = self.collection.hybrid
        schema = info.payload_schema.get(h.text_field) if info.payload_schema else None
        tp = getattr(schema, "params", None)
        scoring = getattr(tp, "scoring", None)
        return {"bm25": "engine: text index with BM25 scoring, TextQuery", "k1": h.k1, "b": h.b,
                "text_index": {"tokenizer": str(getattr(tp, "tokenizer", None)), "lowercase": getattr(tp, "lowercase", None),
                               "stemmer": str(getattr(tp, "stemmer", None)), "stopwords": str(getattr(tp, "stopwords", None)),
                               "scoring": str(getattr(scoring, "type", None)), "points": getattr(schema, "points", None)},
                "fusion": {"rrf": f"Fusion.Rrf(k={RRF_K + 1}) (ranks from 0: = k {RRF_K} from 1)"}}

    def _search_params(self, ef: int | None) -> Any:
        p = self._params.get(ef)
        if p is None:
            idx = self.collection.index
            quant = quantization_search_params(idx.quantization, idx.rescore, edge_api())
            p = self._params[ef] = self.q.SearchParams(hnsw_ef=ef, quantization=quant)
        return p

    def _filter(self, flt: Filter | None) -> Any:
        return query_filter(flt, edge_api())

    def prepare_queries(self, queries: np.ndarray) -> Sequence[Any]:
        """Each query as the list of floats `Query.Nearest` takes, from one `tolist` of the whole array before
        the clock starts, instead of one per search (about 20 us of a 768-d search's calling-thread CPU)."""
        return np.asarray(queries, dtype=np.float32).tolist()

    def search(self, vector: np.ndarray | list[float], k: int, params: SearchParams) -> Sequence[int]:
        if params.text is not None:
            return self._hybrid(vector, k, params)
        q = self.q
        flt = None
        if params.filter is not None or params.tenant is not None:
            flt = self._filter(with_tenant(params.filter, self.collection.tenant_field, params.tenant))
        req = q.SearchRequest(q.Query.Nearest(vector if type(vector) is list else vector.tolist(), params.vector_name),
                              k, None, flt, self._search_params(params.ef_search))
        return [p.id for p in self.shard.search(req)]

    def _hybrid(self, vector: np.ndarray | list[float], k: int, params: SearchParams) -> Sequence[int]:
        q, h = self.q, self.collection.hybrid
        if h is None:
            raise ValueError("hybrid search on a collection created without a text field")
        if params.fusion != "rrf":
            raise ValueError(f"qdrant-edge has no '{params.fusion}' fusion")
        c = params.candidates or k
        flt = self._filter(params.filter)
        req = q.QueryRequest(limit=k, query=q.Fusion.Rrf(k=RRF_K + 1), filter=flt, prefetches=[
            q.Prefetch(limit=c, query=q.Query.Nearest(vector if type(vector) is list else vector.tolist()),
                       params=self._search_params(params.ef_search),
                       filter=flt),
            q.Prefetch(limit=c, query=q.TextQuery(h.text_field, params.text, q.Bm25Params(k=h.k1, b=h.b)), filter=flt),
        ])
        return [p.id for p in self.shard.query(req)]

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

    def reopen(self) -> None:
        """Close the shard and load it again from its files (EdgeShard.load), as a restarted process would."""
        self.shard.close()
        self.shard = self.q.EdgeShard.load(str(self.path))
        self._params = {}

    def close(self) -> None:
        shard = getattr(self, "shard", None)
        if shard is not None:
            shard.close()
            self.shard = None
