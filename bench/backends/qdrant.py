"""`qdrant` (a Qdrant server, through qdrant-client, REST or gRPC) and `qdrant-local` (qdrant-client's local mode).

Server. The collection is created with `HnswConfigDiff(m, ef_construct, full_scan_threshold)` and an optimizer
`indexing_threshold`; `hnsw_ef` is sent per query in `SearchParams`. Qdrant builds HNSW graphs in the background
and only for segments larger than `indexing_threshold` kB (default 10-20 MB of vectors), and searches exactly when
the vectors a query sees are under `full_scan_threshold` kB: with the engine's defaults a small collection is
never searched through a graph. This adapter lowers both (options `indexing_threshold_kb`,
`full_scan_threshold_kb`; set them back to Qdrant's defaults to measure those), records the values read back from
the collection, and `wait_indexed` waits until the collection is green and `indexed_vectors_count` reaches the
point count. `index.kind = "flat"` disables indexing (`indexing_threshold = 0`): every segment stays plain and
searches are exact.

Multi-vector records (`CollectionSpec.vectors`): `vectors_config` is {name: VectorParams} (each named vector gets
its own HNSW graph), points carry {name: vector}, and a search names its vector with `query_points(using=name)`.
Qdrant's `indexed_vectors_count` counts every named vector of every point, so the collection is ready when it
reaches points x names; the per-vector settings (a vector-level `hnsw_config` overrides the collection's) are read
back per name.

Hybrid: Qdrant's own BM25 over a text payload index with `scoring` (word tokenizer, lowercase, no stemmer, no
stopwords), the same engine code as qdrant-edge's: `query_points` with two prefetches (dense with hnsw_ef, and
`TextQuery(TextQueryInput(text, Bm25Scoring(Bm25Params(k1, b))))` using the text field), each limited to the
candidates, fused by `RrfQuery(Rrf(k=61))` (Qdrant ranks from 0, so 61 is the standard k = 60). Qdrant has no
alpha-weighted score fusion, so `weighted` configurations are skipped. Server-side text scoring needs a Qdrant
server recent enough to know `scoring` on text indexes (the one qdrant-client 1.20 speaks to).

Quantization: int8 is `ScalarQuantization(ScalarQuantizationConfig(type=INT8, quantile=0.99, always_ram=True))`,
pq `ProductQuantization(compression=X16, always_ram=True)`, binary `BinaryQuantization(always_ram=True)`, fp16 the
vectors' `datatype=FLOAT16` (the stored vectors themselves are half precision: nothing to rescore with). Every
query of a quantized collection carries `QuantizationSearchParams(rescore=..., oversampling=2.0 when rescoring)`
(as qdrant-edge). What the server holds is read back from the collection info (`config.quantization_config`, or
the vector's own, and `params.vectors.datatype`). `always_ram` is the deprecated spelling of `memory`, kept
because every server since 1.1 reads it.

Filters: the typed filter tree (`bench.backends.query`) becomes a `Filter` of `FieldCondition`s (MatchValue for
Eq, Range for Range, And / Or as a nested Filter's must / should) by the translator qdrant-edge shares
(`_qdrant_common`, which also holds the quantization builders); each declared payload field gets a payload index.

Local mode (`qdrant-local`): `QdrantClient(":memory:")` or `QdrantClient(path=...)` is a brute-force Python
reimplementation of Qdrant's API inside the client. It checks this adapter's logic without a server; it is not the
Qdrant engine, and every run of it carries a substitution line saying its figures must never be reported as Qdrant's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, SecretStr

from bench.backends import _qdrant_common as common
from bench.backends._net import host_port, start_hint, tcp_reachable, unreachable
from bench.backends._qdrant_common import QUANT_KIND, QUANTIZATION, RESCORE_OVERSAMPLING, client_api
from bench.backends.base import (
    Backend,
    BackendOptions,
    BuiltIndex,
    Capabilities,
    CollectionSpec,
    EngineInfo,
    Record,
    SearchParams,
    Secret,
    installed,
    package_version,
)
from bench.backends.query import Filter, with_tenant
from bench.datasets.hybrid import RRF_K
from bench.errors import UserError

DEFAULT_URL = "http://127.0.0.1:6333"
REST_PORT, GRPC_PORT = 6333, 6334
DISTANCES = {"cosine": "Cosine", "l2": "Euclid", "ip": "Dot"}
PAYLOAD_SCHEMAS = {"int": "integer", "keyword": "keyword", "text": "text"}
LOCAL_CAVEAT = ("qdrant-client local mode is a brute-force Python reimplementation of Qdrant's API, not the Qdrant "
                "engine: no HNSW graph is built and every search is exact; never report its figures as Qdrant's")


def _env_url() -> str:
    return os.environ.get("BENCH_QDRANT_URL") or DEFAULT_URL


class QdrantOptions(BackendOptions):
    url: str = Field(default_factory=_env_url, description="REST URL of the server; env BENCH_QDRANT_URL is the default")
    prefer_grpc: bool = Field(False, description="talk gRPC (on grpc_port) instead of REST")
    grpc_port: int = Field(GRPC_PORT, ge=1, le=65535)
    api_key: Secret = Field(SecretStr(""), description="API key; empty for none; \"env:NAME\" or \"file:PATH\" "
                            "reads it from an environment variable or a file")
    timeout_s: int = Field(30, ge=1, description="per-request timeout")
    indexing_threshold_kb: int = Field(
        1, ge=1, description="segments with more vector kB than this get an HNSW graph (Qdrant's default: 10000+)")
    full_scan_threshold_kb: int = Field(
        10, ge=10, description="below this many kB of candidate vectors a query scans exactly (Qdrant's default: 10000)")
    shard_number: int = Field(1, ge=1)
    replication_factor: int = Field(1, ge=1)
    index_during_upload: bool = Field(
        False, description="build HNSW while loading (Qdrant's bulk-upload docs: indexing_threshold 0 while "
        "uploading, the configured threshold after, is the fastest upload)")
    upload_batch_size: int = Field(256, ge=1, le=10_000, description="points per upsert request while loading "
                                   "(Qdrant's bulk-upload docs: 64-256)")
    upload_parallel: int = Field(2, ge=1, le=16, description="concurrent upsert requests while loading (Qdrant's "
                                 "bulk-upload docs: two to four threads)")


class QdrantLocalOptions(BackendOptions):
    path: str = Field("", description="folder for local mode's files; empty = in memory")


# -- request building and response parsing (pure, unit-tested) ------------------------------------------------

def collection_request(collection: CollectionSpec, *, indexing_threshold_kb: int, full_scan_threshold_kb: int,
                       shard_number: int = 1, replication_factor: int = 1, indexing_off: bool = False) -> dict[str, Any]:
    """Keyword arguments of `QdrantClient.create_collection` for `collection`; `indexing_off`: created with
    indexing_threshold 0 for the upload (`reindex_request` turns it on after)."""
    from qdrant_client import models

    index = collection.index
    if collection.metric not in DISTANCES:
        raise UserError(f"qdrant has no metric '{collection.metric}'", f"use one of: {', '.join(DISTANCES)}")
    if index.kind not in ("hnsw", "flat"):
        raise UserError(f"qdrant has no index kind '{index.kind}'", "use hnsw or flat")
    if index.quantization and index.kind != "hnsw":
        raise UserError(f"qdrant quantization '{index.quantization}' needs an hnsw index, not '{index.kind}'",
                        "set index.kind = \"hnsw\" or remove index.quantization")
    if index.quantization and collection.vectors:
        raise UserError("the qdrant adapter does not quantize named vectors (multi-vector records), so the run is "
                        "skipped rather than built unquantized", "remove index.quantization or [multivector]")
    for name in collection.vectors:
        if collection.metric_of(name) not in DISTANCES:
            raise UserError(f"qdrant has no metric '{collection.metric_of(name)}' (named vector '{name}')",
                            f"use one of: {', '.join(DISTANCES)}")
    if collection.vectors:  # one named vector (and one HNSW graph) per name
        vectors_config: Any = {name: models.VectorParams(size=int(dim),
                                                         distance=models.Distance(DISTANCES[collection.metric_of(name)]))
                               for name, dim in collection.vectors.items()}
    else:
        vectors_config = models.VectorParams(
            size=int(collection.dim), distance=models.Distance(DISTANCES[collection.metric]),
            datatype=models.Datatype.FLOAT16 if index.quantization == "fp16" else None)
    return {
        "collection_name": collection.name,
        "vectors_config": vectors_config,
        "quantization_config": quantization_config(index.quantization),
        "hnsw_config": models.HnswConfigDiff(m=int(index.m), ef_construct=int(index.ef_construction),
                                             full_scan_threshold=int(full_scan_threshold_kb)),
        # indexing_threshold = 0 disables HNSW building: that is how Qdrant keeps a collection flat.
        "optimizers_config": models.OptimizersConfigDiff(
            indexing_threshold=0 if index.kind == "flat" or indexing_off else int(indexing_threshold_kb)),
        "shard_number": int(shard_number),
        "replication_factor": int(replication_factor),
    }


def reindex_request(collection_name: str, indexing_threshold_kb: int) -> dict[str, Any]:
    """Keyword arguments of `QdrantClient.update_collection` turning indexing back on after an upload made with
    indexing_threshold 0 (Qdrant docs, Bulk Upload: "indexing must be re-enabled after upload")."""
    from qdrant_client import models

    return {"collection_name": collection_name,
            "optimizers_config": models.OptimizersConfigDiff(indexing_threshold=int(indexing_threshold_kb))}


def upload_chunks(points: list[Any], batch: int) -> list[list[Any]]:
    """The upsert requests of one insert: `batch` points each (the last may be smaller)."""
    return [points[s:s + batch] for s in range(0, len(points), max(1, batch))]


def quantization_config(quant: str | None) -> Any:
    """The collection's `quantization_config` for an engine-neutral quantization (None: none, or fp16, which is
    the vectors' datatype instead); built by the code qdrant-edge shares."""
    return common.quantization_config(quant, client_api())


def quantization_search_params(quant: str | None, rescore: bool) -> Any:
    """`QuantizationSearchParams` every query of a collection quantized with `quant` carries (None: nothing to
    say, for none and fp16)."""
    return common.quantization_search_params(quant, rescore, client_api())


def quantization_read_back(info: Any) -> dict[str, Any]:
    """The quantization and vector datatype a `CollectionInfo` reports (the vector's own config wins)."""
    cfg = info.config
    vectors = cfg.params.vectors
    qc = getattr(vectors, "quantization_config", None) or getattr(cfg, "quantization_config", None)
    kind = None
    detail = None
    if qc is not None:
        for attr, name in QUANT_KIND.items():
            inner = getattr(qc, attr, None)
            if inner is not None:
                kind = name
                detail = inner.model_dump(mode="json", exclude_none=True) if hasattr(inner, "model_dump") else str(inner)
                break
    dtype = getattr(vectors, "datatype", None)
    dtype = _enum_value(dtype) if dtype is not None else "float32"
    if kind is None and dtype == "float16":
        kind = "fp16"
    return {"quantization": kind, "quantization_config": detail, "datatype": dtype}


def payload_index_requests(collection: CollectionSpec) -> list[dict[str, Any]]:
    """`create_payload_index` keyword arguments, one per declared payload field (filters need them)."""
    from qdrant_client import models

    out = []
    for field_name, kind in collection.payload_fields.items():
        if collection.hybrid is not None and field_name == collection.hybrid.text_field:
            out.append({"collection_name": collection.name, "field_name": field_name, "wait": True,
                        "field_schema": models.TextIndexParams(type=models.TextIndexType.TEXT,
                                                               tokenizer=models.TokenizerType.WORD, lowercase=True,
                                                               scoring=True)})
            continue
        if kind not in PAYLOAD_SCHEMAS:
            raise UserError(f"qdrant payload field '{field_name}' has unknown type '{kind}'", "use int, keyword or text")
        if field_name == collection.tenant_field:  # payload-based multitenancy (Qdrant docs: Configure Multitenancy)
            out.append({"collection_name": collection.name, "field_name": field_name, "wait": True,
                        "field_schema": models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD,
                                                                  is_tenant=True)})
            continue
        out.append({"collection_name": collection.name, "field_name": field_name,
                    "field_schema": models.PayloadSchemaType(PAYLOAD_SCHEMAS[kind]), "wait": True})
    return out


def query_filter(flt: Filter | None) -> Any:
    """The `Filter` of a typed filter tree (None for no filter), by the translator qdrant-edge shares: Eq is a
    MatchValue condition, Range a Range condition, And / Or a nested Filter's must / should."""
    return common.query_filter(flt, client_api())


def search_request(collection_name: str, vector: np.ndarray, k: int, params: SearchParams,
                   quantization: Any = None) -> dict[str, Any]:
    """Keyword arguments of `QdrantClient.query_points` for one nearest-neighbour query; `quantization` is the
    collection's `quantization_search_params`."""
    from qdrant_client import models

    sp = None
    if params.ef_search is not None or quantization is not None:
        sp = models.SearchParams(hnsw_ef=params.ef_search, quantization=quantization)
    req = {
        "collection_name": collection_name,
        "query": np.asarray(vector, dtype=np.float32).tolist(),
        "limit": int(k),
        "search_params": sp,
        "query_filter": query_filter(params.filter),
        "with_payload": False,
        "with_vectors": False,
    }
    if params.vector_name is not None:  # multi-vector records: the named vector (and its graph) to search
        req["using"] = params.vector_name
    return req


def named_points(collection: CollectionSpec, ids: np.ndarray, vectors: Mapping[str, np.ndarray],
                 payloads: Sequence[Mapping[str, Any]] | None = None) -> list[Any]:
    """`PointStruct`s carrying every named vector of each record: {name: vector}."""
    from qdrant_client import models

    if set(vectors) != set(collection.vectors):
        raise UserError(f"qdrant: the batch has vectors {sorted(vectors)} but the collection has "
                        f"{sorted(collection.vectors)}", "insert every named vector of the collection")
    lists = {}
    for name, v in vectors.items():
        arr = np.asarray(v, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] != collection.vectors[name]:
            raise UserError(f"qdrant: vector '{name}' has shape {arr.shape}, the collection says dimension "
                            f"{collection.vectors[name]}", "check the workload's [multivector] dimensions")
        lists[name] = arr.tolist()
    return [models.PointStruct(id=int(i), vector={name: rows[j] for name, rows in lists.items()},
                               payload=dict(payloads[j]) if payloads and payloads[j] else None)
            for j, i in enumerate(ids)]


def hybrid_request(collection: CollectionSpec, vector: np.ndarray, k: int, params: SearchParams) -> dict[str, Any]:
    """Keyword arguments of `QdrantClient.query_points` for one hybrid query: dense and BM25 prefetches of
    `params.candidates` each, fused by RRF with k = 61 (= the standard 60 with ranks from 1)."""
    from qdrant_client import models

    h = collection.hybrid
    if h is None:
        raise ValueError("hybrid search on a collection created without a text field")
    if params.fusion != "rrf":
        raise ValueError(f"qdrant has no '{params.fusion}' fusion")
    c = int(params.candidates or k)
    flt = query_filter(params.filter)
    text = models.TextQuery(text=models.TextQueryInput(
        query=params.text or "", scoring=models.Bm25Scoring(bm25=models.Bm25Params(k=h.k1, b=h.b))))
    return {
        "collection_name": collection.name,
        "prefetch": [
            models.Prefetch(query=np.asarray(vector, dtype=np.float32).tolist(), limit=c, filter=flt,
                            params=models.SearchParams(hnsw_ef=params.ef_search) if params.ef_search is not None else None),
            models.Prefetch(query=text, using=h.text_field, limit=c, filter=flt),
        ],
        "query": models.RrfQuery(rrf=models.Rrf(k=RRF_K + 1)),
        "limit": int(k),
        "query_filter": flt,
        "with_payload": False,
        "with_vectors": False,
    }


def hybrid_readback(info: Any, collection: CollectionSpec) -> dict[str, Any]:
    """The text index as the collection reports it (scoring must be on), and what the adapter sends."""
    h = collection.hybrid
    assert h is not None
    schema = (info.payload_schema or {}).get(h.text_field)
    tp = getattr(schema, "params", None)
    return {"bm25": "engine: text index with BM25 scoring, TextQuery", "k1": h.k1, "b": h.b,
            "text_index": None if tp is None else {
                "tokenizer": _enum_value(getattr(tp, "tokenizer", None)), "lowercase": getattr(tp, "lowercase", None),
                "stemmer": str(getattr(tp, "stemmer", None)), "stopwords": str(getattr(tp, "stopwords", None)),
                "scoring": str(getattr(tp, "scoring", None))},
            "points": getattr(schema, "points", None),
            "fusion": {"rrf": f"RrfQuery(Rrf(k={RRF_K + 1})) (ranks from 0: = k {RRF_K} from 1)"}}


def hit_ids(response: Any) -> list[int]:
    """Ids, best first, from a `QueryResponse` (or a plain list of scored points)."""
    points = getattr(response, "points", response)
    return [int(p.id) for p in points]


def record_from_point(point: Any) -> Record:
    vec = point.vector
    if isinstance(vec, dict):
        vec = vec.get("")
    return Record(id=int(point.id), vector=None if vec is None else np.asarray(vec, dtype=np.float32),
                  payload=point.payload or None)


def _enum_value(x: Any) -> str:
    return str(getattr(x, "value", x))


def index_ready(info: Any, kind: str, vectors: int = 1) -> tuple[bool, str]:
    """(ready, why not) from a `CollectionInfo`: green, optimizer ok, and for hnsw every point in a graph (every
    one of its `vectors` named vectors: Qdrant counts each in `indexed_vectors_count`)."""
    status = _enum_value(info.status)
    opt = info.optimizer_status
    opt_error = getattr(opt, "error", None)
    if status == "red" or opt_error:
        raise UserError(f"qdrant reports the collection's optimizer failed: {opt_error or status}",
                        "check the server's log")
    points = int(info.points_count or 0) * max(1, vectors)
    indexed = int(info.indexed_vectors_count or 0)
    if status != "green":
        return False, f"status {status}"
    if kind == "hnsw" and indexed < points:
        return False, f"{indexed} of {points} vectors indexed"
    return True, ""


def cluster_readback(info: Any, cluster: Any, asked_shards: int, asked_replicas: int) -> dict[str, Any]:
    """Shards and replicas as the collection reports them (`get_collection`), and which peer holds which shard
    (`collection_cluster_info`: the answering peer's local shards and the remote ones), with what differs from
    the request in `substitutions`."""
    params = info.config.params
    shards, factor = int(params.shard_number or 1), int(params.replication_factor or 1)
    placement: dict[str, list[int]] = {}
    if cluster is not None:
        for sh in cluster.local_shards or []:
            placement.setdefault(str(cluster.peer_id), []).append(int(sh.shard_id))
        for sh in cluster.remote_shards or []:
            placement.setdefault(str(sh.peer_id), []).append(int(sh.shard_id))
    placement = {peer: sorted(ids) for peer, ids in sorted(placement.items())}
    subs = []
    if shards != asked_shards:
        subs.append(f"{shards} shards built where {asked_shards} were asked")
    if factor != asked_replicas:
        subs.append(f"replication factor {factor} where {asked_replicas} was asked")
    copies = sum(len(v) for v in placement.values())
    if placement and copies < shards * factor:
        subs.append(f"{copies} shard replicas placed where {shards} shards x {factor} replicas were asked (too few "
                    "peers?)")
    return {"shards": shards, "replication_factor": factor, "peers": len(placement), "placement": placement,
            "substitutions": subs}


def built_index_from_info(info: Any, collection: CollectionSpec, *, local: bool = False) -> BuiltIndex:
    """What the collection reports it holds: HNSW settings, thresholds and counts, read back from `info`."""
    if collection.vectors:
        return _built_named(info, collection, local=local)
    cfg = info.config
    hnsw = cfg.hnsw_config
    vectors = cfg.params.vectors
    vec_hnsw = getattr(vectors, "hnsw_config", None)
    m = (vec_hnsw.m if vec_hnsw is not None and vec_hnsw.m is not None else hnsw.m)
    efc = (vec_hnsw.ef_construct if vec_hnsw is not None and vec_hnsw.ef_construct is not None else hnsw.ef_construct)
    threshold = cfg.optimizer_config.indexing_threshold
    points = int(info.points_count or 0)
    indexed = int(info.indexed_vectors_count or 0)
    params: dict[str, Any] = {
        "m": m, "ef_construction": efc, "full_scan_threshold_kb": hnsw.full_scan_threshold,
        "indexing_threshold_kb": threshold, "segments": info.segments_count,
        "distance": _enum_value(getattr(vectors, "distance", None)),
    }
    subs: list[str] = []
    req = collection.index
    quant = quantization_read_back(info)
    params.update(quant)
    params["rescore"] = req.rescore if quant["quantization"] in ("int8", "pq", "binary") else None
    if params["rescore"]:
        params["rescore_oversampling"] = RESCORE_OVERSAMPLING
    if local:
        # Local mode echoes the quantization config and datatype it was given, but stores float32 and searches
        # exactly: what it echoes is kept apart, and the built quantization is none.
        params.update(config_echo={k: quant[k] for k in ("quantization", "datatype")}, quantization=None,
                      quantization_config=None, datatype="float32", rescore=None)
        params.pop("rescore_oversampling", None)
        local_subs = [LOCAL_CAVEAT]
        if req.quantization:
            local_subs.append(f"local mode ignores quantization: asked for {req.quantization}; it echoes the config "
                              "but stores float32 vectors and searches them exactly")
        return BuiltIndex(kind="flat", params={**params, "mode": "local"}, indexed_count=0, total_count=points,
                          substitutions=local_subs)
    if quant["quantization"] != req.quantization:
        subs.append(f"asked for quantization {req.quantization or 'none'}; Qdrant reports "
                    f"{quant['quantization'] or 'none'} (datatype {quant['datatype']})")
    if indexed == 0 and points > 0:
        kind = "flat"
        if req.kind == "hnsw":
            subs.append(f"Qdrant built no HNSW graph (indexing_threshold={threshold} kB); every search is an exact scan")
    else:
        kind = "hnsw"
        if req.kind == "flat":
            subs.append("asked for flat; Qdrant indexed the vectors with HNSW")
        if indexed < points:
            subs.append(f"only {indexed} of {points} vectors are in an HNSW graph; the rest are searched exactly")
    if kind == "hnsw" and (m, efc) != (req.m, req.ef_construction):
        subs.append(f"asked for m={req.m}, ef_construction={req.ef_construction}; Qdrant reports m={m}, "
                    f"ef_construct={efc}")
    return BuiltIndex(kind=kind, params=params, indexed_count=indexed, total_count=points, substitutions=subs)


def _built_named(info: Any, collection: CollectionSpec, *, local: bool) -> BuiltIndex:
    """Multi-vector read-back: each named vector's size, distance and HNSW settings from `info`."""
    cfg = info.config
    hnsw = cfg.hnsw_config
    vectors = cfg.params.vectors if isinstance(cfg.params.vectors, Mapping) else {}
    points = int(info.points_count or 0)
    indexed = int(info.indexed_vectors_count or 0)
    want = points * len(collection.vectors)
    req = collection.index
    per: dict[str, Any] = {}
    subs: list[str] = []
    for name, dim in collection.vectors.items():
        vp = vectors.get(name)
        if vp is None:
            subs.append(f"vector '{name}' is missing from the collection Qdrant reports")
            continue
        vh = getattr(vp, "hnsw_config", None)
        m = vh.m if vh is not None and vh.m is not None else hnsw.m
        efc = vh.ef_construct if vh is not None and vh.ef_construct is not None else hnsw.ef_construct
        per[name] = {"size": vp.size, "distance": _enum_value(vp.distance), "m": m, "ef_construction": efc}
        if vp.size != dim:
            subs.append(f"vector '{name}': asked for dimension {dim}; Qdrant reports {vp.size}")
        if DISTANCES[collection.metric_of(name)] != _enum_value(vp.distance):
            subs.append(f"vector '{name}': asked for {collection.metric_of(name)}; Qdrant reports "
                        f"{_enum_value(vp.distance)}")
        if not local and req.kind == "hnsw" and (m, efc) != (req.m, req.ef_construction):
            subs.append(f"vector '{name}': asked for m={req.m}, ef_construction={req.ef_construction}; Qdrant "
                        f"reports m={m}, ef_construct={efc}")
    params: dict[str, Any] = {"vectors": per, "full_scan_threshold_kb": hnsw.full_scan_threshold,
                              "indexing_threshold_kb": cfg.optimizer_config.indexing_threshold,
                              "segments": info.segments_count}
    if local:
        return BuiltIndex(kind="flat", params={**params, "mode": "local"}, indexed_count=0, total_count=want,
                          substitutions=[LOCAL_CAVEAT, *subs])
    if indexed == 0 and points > 0:
        kind = "flat"
        if req.kind == "hnsw":
            subs.append("Qdrant built no HNSW graph for any named vector; every search is an exact scan")
    else:
        kind = "hnsw"
        if indexed < want:
            subs.append(f"only {indexed} of {want} vectors ({points} points x {len(collection.vectors)} named "
                        "vectors) are in an HNSW graph; the rest are searched exactly")
    return BuiltIndex(kind=kind, params=params, indexed_count=indexed, total_count=want, substitutions=subs)


# -- the adapters ----------------------------------------------------------------------------------------------

class QdrantBackend(Backend):
    """A Qdrant server, driven by worker processes, each with its own client (REST or gRPC)."""

    name = "qdrant"
    capabilities = Capabilities(server=True, get=True, upsert=True, delete=True, filters=True, multi_vector=True,
                                hybrid=True, replication=True, sharding=True, quantization=QUANTIZATION, tenants=True)
    Options = QdrantOptions
    local: ClassVar[bool] = False

    def __init__(self, options: BackendOptions, workdir: str):
        super().__init__(options, workdir)
        self.client: Any = None
        self.collection: CollectionSpec | None = None
        self.server_version: str | None = None

    # -- connection ---------------------------------------------------------------------------------------
    @property
    def address(self) -> tuple[str, int]:
        o = self.options
        host, rest_port = host_port(o.url, REST_PORT)
        return (host, o.grpc_port) if o.prefer_grpc else (host, rest_port)

    @classmethod
    def _local_url(cls, url: str) -> bool:
        return url == ":memory:" or "://" not in url and not url.split(":")[-1].isdigit()

    @classmethod
    def check_available(cls, options: BackendOptions) -> str | None:
        if not installed("qdrant_client"):
            return "qdrant-client is not installed; install it with `pip install -e '.[servers]'`"
        url = getattr(options, "url", DEFAULT_URL)
        if cls._local_url(url):
            return f"url '{url}' is not a server URL; use backend 'qdrant-local' for local mode"
        host, port = host_port(url, REST_PORT)
        if getattr(options, "prefer_grpc", False):
            port = options.grpc_port  # type: ignore[attr-defined]
        if not tcp_reachable(host, port, 1.0):
            return f"no Qdrant server answers at {host}:{port}; {start_hint('qdrant')} or set BENCH_QDRANT_URL"
        return None

    def _make_client(self) -> Any:
        from qdrant_client import QdrantClient

        o = self.options
        return QdrantClient(url=o.url, prefer_grpc=o.prefer_grpc, grpc_port=o.grpc_port, api_key=o.api_key.get_secret_value() or None,
                            timeout=o.timeout_s, check_compatibility=False)

    def connect(self) -> None:
        if self.client is not None:
            return
        if not self.local and self._local_url(self.options.url):
            raise UserError(f"qdrant url '{self.options.url}' is not a server URL",
                            "use backend 'qdrant-local' for qdrant-client's local mode, or an http:// URL")
        host, port = self.address
        if not self.local and not tcp_reachable(host, port, 2.0):
            raise unreachable("qdrant", host, port, "qdrant")
        client = self._make_client()
        try:
            self.server_version = str(client.info().version)
        except Exception as e:  # noqa: BLE001 - any transport error means the same thing here
            client.close()
            raise unreachable("qdrant", host, port, "qdrant", type(e).__name__) from None
        self.client = client

    def _require_collection(self) -> CollectionSpec:
        if self.collection is None:
            raise RuntimeError(f"{self.name}: create() or attach() must come first")
        return self.collection

    # -- lifecycle ----------------------------------------------------------------------------------------
    def _thresholds(self) -> dict[str, int]:
        o = self.options
        return {"indexing_threshold_kb": o.indexing_threshold_kb, "full_scan_threshold_kb": o.full_scan_threshold_kb,
                "shard_number": o.shard_number, "replication_factor": o.replication_factor}

    def _indexing_off(self, collection: CollectionSpec) -> bool:
        """Whether the upload runs with indexing off (turned on in `wait_indexed`)."""
        return collection.index.kind == "hnsw" and not self.options.index_during_upload

    def create(self, collection: CollectionSpec) -> None:
        self.connect()
        self._reindex = self._indexing_off(collection)
        req = collection_request(collection, **self._thresholds(), indexing_off=self._reindex)
        payload_indexes = payload_index_requests(collection)
        if self.client.collection_exists(collection.name):
            self.client.delete_collection(collection.name)
        self.client.create_collection(**req)
        for p in payload_indexes:
            # local mode has no payload indexes (it warns and ignores them), except text indexes for BM25
            if not self.local or (collection.hybrid is not None and p["field_name"] == collection.hybrid.text_field):
                self.client.create_payload_index(**p)
        self.collection = collection

    def attach(self, collection: CollectionSpec) -> None:
        self.connect()
        if not self.client.collection_exists(collection.name):
            raise UserError(f"{self.name}: collection '{collection.name}' does not exist",
                            "the parent process creates and loads it before starting workers")
        self.collection = collection

    def _point(self, id: int, vector: np.ndarray, payload: Mapping[str, Any] | None) -> Any:
        from qdrant_client import models

        return models.PointStruct(id=int(id), vector=np.asarray(vector, dtype=np.float32).tolist(),
                                  payload=dict(payload) if payload else None)

    def insert(self, ids: np.ndarray, vectors: np.ndarray | Mapping[str, np.ndarray],
               payloads: Sequence[Mapping[str, Any]] | None = None) -> None:
        col = self._require_collection()
        if isinstance(vectors, Mapping):  # multi-vector records: {name: (n, dim)}
            self._upload(col, named_points(col, ids, vectors, payloads))
            return
        if vectors.ndim != 2 or vectors.shape[1] != col.dim:
            raise UserError(f"{self.name}: vectors have shape {vectors.shape}, the collection has dimension {col.dim}",
                            "check the dataset's dimension against the workload")
        points = [self._point(i, v, payloads[j] if payloads else None) for j, (i, v) in enumerate(zip(ids, vectors, strict=True))]
        self._upload(col, points)

    def _upload(self, col: CollectionSpec, points: list[Any]) -> None:
        """Upsert `points` in requests of `upload_batch_size`, `upload_parallel` at a time (Qdrant docs, Bulk
        Upload: batches of 64-256 points, two to four parallel streams; the client is thread-safe)."""
        batch, parallel = self._upload_plan()
        chunks = upload_chunks(points, batch)
        if parallel == 1 or len(chunks) == 1:
            for chunk in chunks:
                self.client.upsert(col.name, points=chunk, wait=True)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(parallel) as pool:
            for _ in pool.map(lambda c: self.client.upsert(col.name, points=c, wait=True), chunks):
                pass

    def wait_indexed(self, timeout_s: float) -> BuiltIndex:
        from qdrant_client import models

        col = self._require_collection()
        start = time.monotonic()
        nudged = False
        if getattr(self, "_reindex", False):  # the upload ran with indexing off: on again
            self.client.update_collection(**reindex_request(col.name, self._thresholds()["indexing_threshold_kb"]))
            self._reindex = False
        while True:
            info = self.client.get_collection(col.name)
            if self.local:
                break
            ready, why = index_ready(info, col.index.kind, max(1, len(col.vectors)))
            if ready:
                break
            if _enum_value(info.status) == "grey" and not nudged:
                # grey: optimisations pending until an update; an empty optimizer update triggers them.
                self.client.update_collection(col.name, optimizers_config=models.OptimizersConfigDiff())
                nudged = True
            if time.monotonic() - start > timeout_s:
                raise UserError(f"qdrant did not finish indexing '{col.name}' within the {timeout_s:.0f} s timeout "
                                f"({why})", "raise run.index_timeout_s, or check the server's load")
            time.sleep(0.2)
        built = built_index_from_info(info, col, local=self.local)
        built.params["load_recipe"] = self._load_recipe(col)
        if col.tenant_field:
            schema = (info.payload_schema or {}).get(col.tenant_field)
            params = getattr(schema, "params", None)
            built.params["tenants"] = {"field": col.tenant_field, "is_tenant": getattr(params, "is_tenant", None),
                                       "data_type": str(getattr(schema, "data_type", None)),
                                       "how": "one collection, a keyword payload index with is_tenant=True, every "
                                              "search filtered on the tenant"}
            if not self.local and built.params["tenants"]["is_tenant"] is not True:
                built.substitutions.append(f"the tenant field '{col.tenant_field}' has no is_tenant keyword index")
        if not self.local:
            try:
                placement = self.client.collection_cluster_info(col.name)
            except Exception:  # noqa: BLE001 - a server without the call: shards and factor are still read back
                placement = None
            built.params["cluster"] = c = cluster_readback(info, placement, self.options.shard_number,
                                                           self.options.replication_factor)
            built.substitutions.extend(c["substitutions"])
        if col.hybrid is not None:
            built.params["hybrid"] = hb = hybrid_readback(info, col)
            if not self.local and (hb["text_index"] is None or hb["text_index"]["scoring"] in ("None", "False")):
                built.substitutions.append(f"the text index on '{col.hybrid.text_field}' reports no BM25 scoring")
        return built

    def _upload_plan(self) -> tuple[int, int]:
        """(points per upsert request, concurrent requests) while loading."""
        return self.options.upload_batch_size, self.options.upload_parallel

    def _load_recipe(self, col: CollectionSpec) -> dict[str, Any]:
        batch, parallel = self._upload_plan()
        off = self._indexing_off(col)
        return {"upsert": "upsert(wait=True) of PointStructs", "points_per_request": batch,
                "parallel_requests": parallel,
                "indexing_during_upload": "off (indexing_threshold 0), then indexing_threshold = "
                f"{self._thresholds()['indexing_threshold_kb']} kB and wait until green with every vector indexed"
                if off else "on",
                "docs": ["Qdrant docs: Bulk Upload Vectors (batches of 64-256 points, 2-4 parallel threads, "
                         "indexing_threshold 0 during upload, re-enabled after)", "Qdrant docs: Optimizer "
                         "(indexing_threshold)"]}

    def search(self, vector: np.ndarray, k: int, params: SearchParams) -> Sequence[int]:
        if params.text is not None:
            req = hybrid_request(self.collection, vector, k, params)
            if self.local:  # exact anyway; it warns on every query that carries search params
                req["prefetch"][0].params = None
            return hit_ids(self.client.query_points(**req))
        idx = self.collection.index
        if params.tenant is not None:  # payload-based tenants: the tenant is a filter on the is_tenant field
            params = replace(params, filter=with_tenant(params.filter, self.collection.tenant_field, params.tenant))
        req = search_request(self.collection.name, vector, k, params,
                             quantization_search_params(idx.quantization, idx.rescore))
        if self.local:
            req["search_params"] = None  # local mode is exact and warns on every query that carries them
        return hit_ids(self.client.query_points(**req))

    def get(self, id: int) -> Record | None:
        col = self._require_collection()
        points = self.client.retrieve(col.name, ids=[int(id)], with_payload=True, with_vectors=True)
        return record_from_point(points[0]) if points else None

    def upsert(self, id: int, vector: np.ndarray, payload: Mapping[str, Any] | None = None) -> None:
        col = self._require_collection()
        self.client.upsert(col.name, points=[self._point(id, vector, payload)], wait=True)

    def delete(self, id: int) -> None:
        from qdrant_client import models

        col = self._require_collection()
        self.client.delete(col.name, points_selector=models.PointIdsList(points=[int(id)]), wait=True)

    def info(self) -> EngineInfo:
        o = self.options
        return EngineInfo(engine="qdrant", client_version=package_version("qdrant-client"),
                          server_version=self.server_version, server_address=self.address,
                          extra={"url": o.url, "protocol": "grpc" if o.prefer_grpc else "rest",
                                 "indexing_threshold_kb": o.indexing_threshold_kb,
                                 "full_scan_threshold_kb": o.full_scan_threshold_kb})

    def drop(self) -> None:
        if self.collection is not None and self.client is not None and self.client.collection_exists(self.collection.name):
            self.client.delete_collection(self.collection.name)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


class QdrantLocalBackend(QdrantBackend):
    """qdrant-client's local mode (no server): checks the adapter's logic; never a Qdrant benchmark figure."""

    name = "qdrant-local"
    capabilities = Capabilities(in_process=True, server=False, get=True, upsert=True, delete=True, filters=True,
                                multi_vector=True, hybrid=True, tenants=True)
    Options = QdrantLocalOptions
    local = True

    @property
    def address(self) -> tuple[str, int]:
        return ("local", 0)

    @classmethod
    def check_available(cls, options: BackendOptions) -> str | None:
        if not installed("qdrant_client"):
            return "qdrant-client is not installed; install it with `pip install -e '.[servers]'`"
        return None

    def _thresholds(self) -> dict[str, int]:
        return {"indexing_threshold_kb": 1, "full_scan_threshold_kb": 10}

    def _indexing_off(self, collection: CollectionSpec) -> bool:
        return False  # local mode builds no graph at all

    def _upload_plan(self) -> tuple[int, int]:
        return 256, 1  # local mode is not thread-safe

    def _make_client(self) -> Any:
        from qdrant_client import QdrantClient

        path = self.options.path
        if not path:
            return QdrantClient(location=":memory:")
        Path(path).mkdir(parents=True, exist_ok=True)
        return QdrantClient(path=path, force_disable_check_same_thread=True)

    def attach(self, collection: CollectionSpec) -> None:
        if not self.options.path:
            raise UserError("qdrant-local in memory cannot be attached from another instance",
                            "set backend.path to a folder, or drive it with threads (it is in-process)")
        super().attach(collection)

    def info(self) -> EngineInfo:
        return EngineInfo(engine="qdrant-local", client_version=package_version("qdrant-client"),
                          server_version=None,
                          extra={"mode": "local", "path": self.options.path or ":memory:", "caveat": LOCAL_CAVEAT})
