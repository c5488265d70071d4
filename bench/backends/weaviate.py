"""`weaviate`: a Weaviate server through weaviate-client v4 (REST for schema, gRPC for data and queries).

Mapping of the engine-neutral request:

- The collection gets one self-provided named vector (`default`) with an HNSW index: `max_connections` = m,
  `ef_construction`, and the distance (cosine -> cosine, l2 -> l2-squared, which ranks identically, ip -> dot).
  `index.kind = "flat"` makes a Weaviate flat (brute-force) index.
- Weaviate object ids are UUIDs: an int id maps to the deterministic `generate_uuid5(id)`, and the int is stored
  as the property `bench_id` (filterable), which searches return and this adapter hands back as ints.
- ef is not a per-query parameter in Weaviate: it lives in the collection's vector-index config. `search` updates
  that config (one schema request) whenever `SearchParams.ef_search` differs from the ef this adapter last set,
  so a sweep over ef values changes it once per value; the first query after a change pays that request. With
  `ef_search = None` the collection keeps whatever ef it has (-1 = Weaviate's dynamic ef).
- Multi-vector records (`CollectionSpec.vectors`): one self-provided named vector per name, each with its own
  HNSW index and distance; objects carry {name: vector}, a search names its vector in `target_vector`, and ef
  is set on the searched named vector only. Each named vector's index config is read back from the schema.
- Hybrid: the record's text is a `word`-tokenized TEXT property (lowercase, split on non-alphanumerics), the
  collection's inverted index gets bm25_k1 / bm25_b and no stopwords, and a search is `query.hybrid(query=text,
  vector=..., query_properties=[text], alpha=..., fusion_type=...)`: `weighted` is RELATIVE_SCORE with the
  workload's alpha (min-max per side, as the reference's "minmax"), `rrf` is RANKED with alpha 0.5 (equal
  weights: 0.5 / (60 + rank) per side, the RRF order). Weaviate has no per-query per-side limit: each side
  brings the server's hybrid maximum (QUERY_HYBRID_MAXIMUM_RESULTS, 100 by default), so `candidates` other than
  100 is recorded as a substitution. Not run live here (no Weaviate server); request building is unit-tested.
- Quantization (HNSW only): int8 is SQ (`Quantizer.sq(rescore_limit=..., training_limit=...)`), pq is PQ
  (`segments` = one per 4 dimensions, 256 centroids, `training_limit`), binary is BQ. With rescore, SQ gets
  `rescore_limit` = the `rescore_limit` option (default 20 = 2k for k = 10); without it, `rescore_limit = 0`, which
  Weaviate's HNSW reads as "do not rescore" for SQ. Weaviate's HNSW always rescores PQ and BQ candidates with the
  uncompressed vectors, so pq and binary without rescore are refused, and so is fp16 (Weaviate stores float32
  only). SQ and PQ compress a shard once it holds `training_limit` objects: the option defaults to 10,000 so a
  10k collection is compressed; `wait_indexed` reads each shard's `compressed` flag from the verbose nodes status
  and says so when a shard is still uncompressed. None of this has run against a server here (none installs).
- Filters: the typed filter tree (`bench.backends.query`) becomes a v4 filter (`WeaviateConditionParser`):
  `Filter.by_property(f).equal(v)` for Eq, `greater_than` / `greater_or_equal` / `less_than` / `less_or_equal` for
  each bound of a Range (two bounds: their `all_of`), `Filter.all_of` / `Filter.any_of` for And / Or. Every
  declared int payload field is an INT property with a filterable index, which serves ranges too (Weaviate
  1.26's `index_range_filters` is not asked for, so older servers accept the schema).
- `wait_indexed` polls the verbose nodes status until every shard of the collection is READY with an empty
  vector queue (Weaviate may index asynchronously), then reads the vector-index config back from the schema.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field, SecretStr

from bench.backends._net import host_port, start_hint, tcp_reachable, unreachable
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
from bench.backends.query import ConditionParser, Filter
from bench.errors import UserError

DEFAULT_URL = "http://127.0.0.1:8080"
HTTP_PORT, GRPC_PORT = 8080, 50051
VECTOR_NAME = "default"
ID_PROPERTY = "bench_id"
DISTANCES = {"cosine": "cosine", "l2": "l2-squared", "ip": "dot"}
QUANTIZATION = ("int8", "pq", "binary")  # SQ, PQ, BQ; Weaviate has no fp16 vectors
_QUANTIZER = {"int8": "sq", "pq": "pq", "binary": "bq"}


def _env_url() -> str:
    return os.environ.get("BENCH_WEAVIATE_URL") or DEFAULT_URL


class WeaviateOptions(BackendOptions):
    url: str = Field(default_factory=_env_url, description="HTTP URL of the server; env BENCH_WEAVIATE_URL is the default")
    grpc_port: int = Field(GRPC_PORT, ge=1, le=65535, description="gRPC port on the same host")
    api_key: Secret = Field(SecretStr(""), description="API key; empty for none; \"env:NAME\" or \"file:PATH\" "
                            "reads it from an environment variable or a file")
    timeout_s: float = Field(30.0, gt=0, description="query and insert timeout")
    rescore_limit: int = Field(20, ge=1, description="quantized int8 (SQ) with rescore: candidates rescored with the "
                               "uncompressed vectors")
    training_limit: int = Field(10_000, ge=1, description="quantized int8/pq: objects a shard holds before Weaviate "
                                "trains the quantizer and compresses it")
    batch_mode: Literal["fixed_size", "dynamic", "stream"] = Field(
        "fixed_size", description="how the load is batched (Weaviate docs, Batch import): fixed_size (batch_size, "
        "concurrent_requests), dynamic (the client sizes batches), stream (server-side batching, Weaviate >= 1.36)")
    batch_size: int = Field(200, ge=1, le=10_000, description="fixed_size: objects per batch request")
    batch_concurrent_requests: int = Field(2, ge=1, le=32, description="fixed_size: batch requests in flight; "
                                           "stream: the client's concurrency")
    shards: int = Field(1, ge=1, description="shards of the collection (a cluster spreads them over its nodes)")
    replicas: int = Field(1, ge=1, description="replication factor: nodes holding each object (<= the cluster's nodes)")


# -- request building and response parsing (pure, unit-tested) ------------------------------------------------

def collection_name(name: str) -> str:
    """A valid Weaviate collection (class) name for `name`: GraphQL-safe, first letter upper case."""
    clean = re.sub(r"[^0-9A-Za-z_]", "_", name)
    if not clean or not clean[0].isalpha():
        clean = "C" + clean
    return clean[0].upper() + clean[1:]


def object_uuid(id: int) -> str:
    """The deterministic UUID of int id `id`."""
    from weaviate.util import generate_uuid5

    return generate_uuid5(int(id))


def _pq_segments(dim: int) -> int:
    """One PQ segment (one byte, 256 centroids) per 4 dimensions, or the nearest divisor of dim below."""
    m = max(1, dim // 4)
    while dim % m:
        m -= 1
    return m


def quantizer(collection: CollectionSpec, rescore_limit: int = 20, training_limit: int = 10_000) -> Any:
    """The HNSW `quantizer` for the collection's quantization (None for none), or a UserError for what Weaviate
    cannot build as asked."""
    from weaviate.classes.config import Configure

    index = collection.index
    q = index.quantization
    if not q:
        return None
    fix = "remove index.quantization or choose another engine (`bench backends` lists quantization)"
    if q == "fp16":
        raise UserError("weaviate has no fp16 vectors (it stores float32 and compresses with SQ, PQ, BQ or RQ), so "
                        "the run is skipped rather than built unquantized", fix)
    if q not in _QUANTIZER:
        raise UserError(f"weaviate has no quantization '{q}'", f"use one of: {', '.join(QUANTIZATION)}")
    if index.kind != "hnsw":
        raise UserError(f"weaviate quantization '{q}' is wired for hnsw indexes, not '{index.kind}'",
                        "set index.kind = \"hnsw\"")
    if q in ("pq", "binary") and not index.rescore:
        raise UserError(f"weaviate's HNSW always rescores {_QUANTIZER[q].upper()} candidates with the uncompressed "
                        f"vectors, so {q} without rescore cannot run there", "set index.rescore = true")
    if q == "int8":
        return Configure.VectorIndex.Quantizer.sq(rescore_limit=int(rescore_limit) if index.rescore else 0,
                                                  training_limit=int(training_limit))
    if q == "pq":
        return Configure.VectorIndex.Quantizer.pq(segments=_pq_segments(collection.dim), centroids=256,
                                                  training_limit=int(training_limit))
    return Configure.VectorIndex.Quantizer.bq()


def collection_request(collection: CollectionSpec, ef: int | None = None, *, rescore_limit: int = 20,
                       training_limit: int = 10_000, shards: int = 1, replicas: int = 1) -> dict[str, Any]:
    """Keyword arguments of `client.collections.create` for `collection`."""
    from weaviate.classes.config import Configure, DataType, Property, Tokenization, VectorDistances

    index = collection.index
    if collection.metric not in DISTANCES:
        raise UserError(f"weaviate has no metric '{collection.metric}'", f"use one of: {', '.join(DISTANCES)}")
    if index.quantization and collection.vectors:
        raise UserError("the weaviate adapter does not quantize named vectors (multi-vector records), so the run is "
                        "skipped rather than built unquantized", "remove index.quantization or [multivector]")
    for name in collection.vectors:
        if collection.metric_of(name) not in DISTANCES:
            raise UserError(f"weaviate has no metric '{collection.metric_of(name)}' (named vector '{name}')",
                            f"use one of: {', '.join(DISTANCES)}")
        if name == VECTOR_NAME and len(collection.vectors) > 1:
            raise UserError(f"weaviate: named vector '{name}' clashes with the adapter's default vector", "rename it")
    quant = quantizer(collection, rescore_limit, training_limit)

    def vic(metric: str) -> Any:
        distance = VectorDistances(DISTANCES[metric])
        if index.kind == "hnsw":
            return Configure.VectorIndex.hnsw(distance_metric=distance, max_connections=int(index.m),
                                              ef_construction=int(index.ef_construction),
                                              ef=int(ef) if ef is not None else None, quantizer=quant)
        if index.kind == "flat":
            return Configure.VectorIndex.flat(distance_metric=distance)
        raise UserError(f"weaviate has no index kind '{index.kind}'", "use hnsw or flat")

    if collection.vectors:  # multi-vector records: one self-provided named vector (and index) per name
        vector_config: Any = [Configure.Vectors.self_provided(name=name, vector_index_config=vic(collection.metric_of(name)))
                              for name in collection.vectors]
    else:
        vector_config = Configure.Vectors.self_provided(name=VECTOR_NAME, vector_index_config=vic(collection.metric))
    props = [Property(name=ID_PROPERTY, data_type=DataType.INT, index_filterable=True)]
    for field_name, kind in collection.payload_fields.items():
        if field_name == ID_PROPERTY or field_name in ("id", "_id", "_additional"):
            raise UserError(f"weaviate payload field '{field_name}' clashes with a reserved name", "rename the field")
        if kind == "int":
            props.append(Property(name=field_name, data_type=DataType.INT, index_filterable=True))
        elif kind == "keyword":
            props.append(Property(name=field_name, data_type=DataType.TEXT, tokenization=Tokenization.FIELD,
                                  index_filterable=True, index_searchable=False))
        elif kind == "text":
            props.append(Property(name=field_name, data_type=DataType.TEXT, tokenization=Tokenization.WORD,
                                  index_searchable=True))
        else:
            raise UserError(f"weaviate payload field '{field_name}' has unknown type '{kind}'", "use int, keyword or text")
    out = {"name": collection_name(collection.name), "properties": props, "vector_config": vector_config}
    if collection.hybrid is not None:
        from weaviate.classes.config import StopwordsPreset

        out["inverted_index_config"] = Configure.inverted_index(bm25_k1=float(collection.hybrid.k1),
                                                                bm25_b=float(collection.hybrid.b),
                                                                stopwords_preset=StopwordsPreset.NONE)
    return {**out, **cluster_config(shards, replicas)}


def cluster_config(shards: int, replicas: int) -> dict[str, Any]:
    """`collections.create` arguments for a cluster: the collection's shards spread over the nodes (Weaviate
    docs, Horizontal scaling) and each object kept on `replicas` nodes (Replication); none for one of each."""
    from weaviate.classes.config import Configure

    out: dict[str, Any] = {}
    if shards > 1:
        out["sharding_config"] = Configure.sharding(desired_count=int(shards))
    if replicas > 1:
        out["replication_config"] = Configure.replication(factor=int(replicas))
    return out


def multi_tenancy_request(collection: CollectionSpec) -> dict[str, Any]:
    """`client.collections.create` keyword arguments for native multi-tenancy (Weaviate docs: Multi-tenancy, one
    shard per tenant, tenants created before their objects), empty for a collection without tenants."""
    from weaviate.classes.config import Configure

    return {"multi_tenancy_config": Configure.multi_tenancy(enabled=True)} if collection.tenant_field else {}
def cluster_readback(config: Any, nodes: Sequence[Any], name: str, asked_shards: int,
                     asked_replicas: int) -> dict[str, Any]:
    """Shards and replication as the schema reports them, and which node holds which shard (verbose nodes
    status), with what differs from the request in `substitutions`."""
    sharding = getattr(config, "sharding_config", None)
    replication = getattr(config, "replication_config", None)
    shards = getattr(sharding, "actual_count", None) or getattr(sharding, "desired_count", None)
    factor = getattr(replication, "factor", None)
    placement: dict[str, list[str]] = {}
    for n in nodes:
        held = sorted(str(s.name) for s in (n.shards or []) if s.collection == name)
        if held:
            placement[str(n.name)] = held
    subs = []
    if shards is not None and int(shards) != asked_shards:
        subs.append(f"{shards} shards built where {asked_shards} were asked")
    if factor is not None and int(factor) != asked_replicas:
        subs.append(f"replication factor {factor} where {asked_replicas} was asked")
    return {"shards": shards, "replication_factor": factor, "nodes": len(placement), "placement": placement,
            "substitutions": subs}


HYBRID_MAX_RESULTS = 100  # Weaviate's default per-side limit of a hybrid search (QUERY_HYBRID_MAXIMUM_RESULTS)


def hybrid_request(vector: np.ndarray, k: int, params: SearchParams, text_field: str) -> dict[str, Any]:
    """Keyword arguments of `collection.query.hybrid` for one hybrid query."""
    from weaviate.classes.query import HybridFusion

    if params.fusion == "rrf":
        fusion, alpha = HybridFusion.RANKED, 0.5
    elif params.fusion == "weighted" and params.alpha is not None:
        fusion, alpha = HybridFusion.RELATIVE_SCORE, float(params.alpha)
    else:
        raise ValueError(f"weaviate: unknown fusion {params.fusion!r} (alpha {params.alpha})")
    return {"query": params.text or "", "vector": np.asarray(vector, dtype=np.float32).tolist(), "alpha": alpha,
            "fusion_type": fusion, "query_properties": [text_field], "limit": int(k),
            "filters": query_filter(params.filter), "target_vector": VECTOR_NAME,
            "return_properties": [ID_PROPERTY], "include_vector": False}


def batch_context(mode: str, batch_size: int = 200, concurrent_requests: int = 2) -> tuple[str, dict[str, Any]]:
    """(method of `collection.batch`, its keyword arguments) of the load's batching context (Weaviate docs, Batch
    import: `fixed_size(batch_size, concurrent_requests)`, `dynamic()`, server-side `stream(concurrency)`)."""
    if mode == "fixed_size":
        return "fixed_size", {"batch_size": int(batch_size), "concurrent_requests": int(concurrent_requests)}
    if mode == "dynamic":
        return "dynamic", {}
    if mode == "stream":
        return "stream", {"concurrency": int(concurrent_requests)}
    raise ValueError(f"weaviate: unknown batch mode {mode!r}")


def ef_update(ef: int, vector_name: str = VECTOR_NAME) -> dict[str, Any]:
    """Keyword arguments of `collection.config.update` setting the HNSW ef of one (named) vector."""
    from weaviate.classes.config import Reconfigure

    return {"vector_config": Reconfigure.Vectors.update(name=vector_name,
                                                        vector_index_config=Reconfigure.VectorIndex.hnsw(ef=int(ef)))}


def data_object(id: int, vector: np.ndarray | Mapping[str, np.ndarray], payload: Mapping[str, Any] | None) -> Any:
    """One object; `vector` is one array (the default named vector) or {name: array} (multi-vector records)."""
    from weaviate.classes.data import DataObject

    props = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in (payload or {}).items()}
    props[ID_PROPERTY] = int(id)
    named = vector if isinstance(vector, Mapping) else {VECTOR_NAME: vector}
    return DataObject(properties=props, uuid=object_uuid(id),
                      vector={k: np.asarray(v, dtype=np.float32).tolist() for k, v in named.items()})


_METHODS = {"gt": "greater_than", "gte": "greater_or_equal", "lt": "less_than", "lte": "less_or_equal"}


class WeaviateConditionParser(ConditionParser[Any]):
    """The filter tree as weaviate-client v4 filters (`Filter.by_property(...)` and its combinators)."""

    def __init__(self) -> None:
        from weaviate.classes.query import Filter as WFilter

        self.f = WFilter

    def build_eq(self, field: str, value: int | str) -> Any:
        return self.f.by_property(field).equal(value)

    def build_range(self, field: str, **bounds: float) -> Any:
        prop = self.f.by_property(field)
        return self.build_and([getattr(prop, _METHODS[op])(v) for op, v in bounds.items()])

    def build_and(self, items: list[Any]) -> Any:
        return self.f.all_of(items)  # one item: the item itself

    def build_or(self, items: list[Any]) -> Any:
        return self.f.any_of(items)


def query_filter(flt: Filter | None) -> Any:
    """The Weaviate filter of a typed filter tree (None for no filter)."""
    return None if flt is None else WeaviateConditionParser().parse(flt)


def search_request(vector: np.ndarray, k: int, flt: Filter | None,
                   vector_name: str | None = None) -> dict[str, Any]:
    """Keyword arguments of `collection.query.near_vector` for one query of one named vector (default: the
    adapter's single vector); only `bench_id` comes back."""
    return {"near_vector": np.asarray(vector, dtype=np.float32).tolist(), "limit": int(k),
            "filters": query_filter(flt), "target_vector": vector_name or VECTOR_NAME,
            "return_properties": [ID_PROPERTY],
            "include_vector": False}


def hit_ids(response: Any) -> list[int]:
    """Ids, best first, from a `QueryReturn` (its objects carry the `bench_id` property)."""
    return [int(o.properties[ID_PROPERTY]) for o in response.objects]


def record_from_object(obj: Any) -> Record:
    props = dict(obj.properties or {})
    id = int(props.pop(ID_PROPERTY))
    vec = obj.vector.get(VECTOR_NAME) if isinstance(obj.vector, Mapping) else obj.vector
    payload = {k: v for k, v in props.items() if v is not None}
    return Record(id=id, vector=None if vec is None else np.asarray(vec, dtype=np.float32), payload=payload or None)


def shards_compressed(nodes: Sequence[Any], name: str) -> tuple[int, int]:
    """(compressed shards, shards) of collection `name` in a verbose nodes status."""
    shards = [s for n in nodes for s in (n.shards or []) if s.collection == name]
    return sum(1 for s in shards if getattr(s, "compressed", False)), len(shards)


def shards_ready(nodes: Sequence[Any], name: str) -> tuple[bool, int, int, str]:
    """(ready, objects, queued vectors, why not) from a verbose nodes status, for collection `name`."""
    shards = [s for n in nodes for s in (n.shards or []) if s.collection == name]
    if not shards:
        return False, 0, 0, "no shard of the collection reported yet"
    objects = sum(int(s.object_count) for s in shards)
    queued = sum(int(s.vector_queue_length) for s in shards)
    busy = [f"{s.name}: {s.vector_indexing_status}" for s in shards if s.vector_indexing_status != "READY"]
    if busy:
        return False, objects, queued, ", ".join(busy)
    if queued:
        return False, objects, queued, f"{queued} vectors queued for indexing"
    return True, objects, queued, ""


def hybrid_readback(config: Any, collection: CollectionSpec, subs: list[str]) -> dict[str, Any]:
    """BM25 settings as the schema reports them (inverted index k1, b, stopwords; the text property's
    tokenization), with a substitution line where they differ from the request."""
    h = collection.hybrid
    assert h is not None
    inv = getattr(config, "inverted_index_config", None)
    bm25 = getattr(inv, "bm25", None)
    k1, b = getattr(bm25, "k1", None), getattr(bm25, "b", None)
    prop = next((p for p in getattr(config, "properties", []) or [] if p.name == h.text_field), None)
    tok = getattr(prop, "tokenization", None)
    out = {"bm25": "engine: inverted index BM25 (BM25F over one property)", "k1": k1, "b": b,
           "stopwords_preset": str(getattr(getattr(inv, "stopwords", None), "preset", None)),
           "tokenization": str(getattr(tok, "value", tok)),
           "fusion": {"rrf": "RANKED, alpha 0.5", "weighted": "RELATIVE_SCORE, alpha"},
           "per_side_limit": f"server's QUERY_HYBRID_MAXIMUM_RESULTS (default {HYBRID_MAX_RESULTS})"}
    if k1 is not None and b is not None and (round(k1, 6), round(b, 6)) != (round(h.k1, 6), round(h.b, 6)):
        subs.append(f"asked for BM25 k1={h.k1}, b={h.b}; Weaviate reports k1={k1}, b={b}")
    return out


def built_index_from_config(config: Any, collection: CollectionSpec, total: int | None, queued: int = 0,
                            compressed: tuple[int, int] | None = None) -> BuiltIndex:
    """What Weaviate reports it holds, read from the collection config (`collection.config.get()`) and, for a
    quantized collection, the (compressed, all) shard counts of the verbose nodes status."""
    if collection.vectors:
        return _built_named(config, collection, total, queued)
    return _built_one(config, collection, total, queued, VECTOR_NAME, compressed)


def _built_named(config: Any, collection: CollectionSpec, total: int | None, queued: int) -> BuiltIndex:
    """Multi-vector read-back: each named vector's index config, from the schema. `total` is the object count;
    Weaviate's vector queue length counts vectors of every name."""
    per: dict[str, Any] = {}
    subs: list[str] = []
    reported = (config.vector_config or {})
    for name in collection.vectors:
        if name not in reported:
            subs.append(f"vector '{name}' is missing from the collection Weaviate reports")
            continue
        b = _built_one(config, collection, None, 0, name)
        per[name] = {"kind": b.kind, **b.params}
        subs.extend(f"vector '{name}': {s}" for s in b.substitutions)
    kinds = sorted({p["kind"] for p in per.values()}) or ["none"]
    want = None if total is None else total * len(collection.vectors)
    indexed = None if want is None else max(want - queued, 0)
    return BuiltIndex(kind=kinds[0] if len(kinds) == 1 else "mixed", params={"vectors": per},
                      indexed_count=indexed, total_count=want, substitutions=subs)


def _built_one(config: Any, collection: CollectionSpec, total: int | None, queued: int, name: str,
               compressed: tuple[int, int] | None = None) -> BuiltIndex:
    named = (config.vector_config or {}).get(name)
    vic = named.vector_index_config if named is not None else config.vector_index_config
    type_name = type(vic).__name__.lower()
    kind = "hnsw" if "hnsw" in type_name else "flat" if "flat" in type_name else "dynamic" if "dynamic" in type_name \
        else type_name.removeprefix("_vectorindexconfig") or "none"
    distance = getattr(vic, "distance_metric", None)
    params: dict[str, Any] = {"distance": str(getattr(distance, "value", distance))}
    if collection.vectors and params["distance"] != DISTANCES[collection.metric_of(name)]:
        params["distance_asked"] = DISTANCES[collection.metric_of(name)]
    if kind == "hnsw":
        params.update({"m": vic.max_connections, "ef_construction": vic.ef_construction, "ef": vic.ef,
                       "dynamic_ef_min": vic.dynamic_ef_min, "dynamic_ef_max": vic.dynamic_ef_max,
                       "flat_search_cutoff": vic.flat_search_cutoff})
    qz = getattr(vic, "quantizer", None)
    built_quant = None
    if qz is not None:
        params["quantizer"] = type(qz).__name__.strip("_").removesuffix("Config").lower()
        built_quant = {v: k for k, v in _QUANTIZER.items()}.get(params["quantizer"], params["quantizer"])
        for attr in ("rescore_limit", "training_limit", "segments", "centroids", "cache"):
            if getattr(qz, attr, None) is not None:
                params[f"quantizer_{attr}"] = getattr(qz, attr)
    params["quantization"] = built_quant
    req = collection.index
    if built_quant is not None:
        # SQ rescores only with rescore_limit > 0; Weaviate's HNSW always rescores PQ and BQ.
        params["rescore"] = bool(params.get("quantizer_rescore_limit")) if built_quant == "int8" else True
    if compressed is not None:
        params["compressed_shards"], params["shards"] = compressed
    subs: list[str] = []
    if kind != req.kind:
        subs.append(f"asked for a {req.kind} index; Weaviate reports {kind}")
    elif kind == "hnsw" and (params["m"], params["ef_construction"]) != (req.m, req.ef_construction):
        subs.append(f"asked for m={req.m}, ef_construction={req.ef_construction}; Weaviate reports "
                    f"max_connections={params['m']}, ef_construction={params['ef_construction']}")
    if built_quant != req.quantization:
        subs.append(f"asked for quantization {req.quantization or 'none'}; Weaviate reports "
                    f"{params.get('quantizer') or 'no quantizer'}")
    elif built_quant is not None and params["rescore"] != req.rescore:
        subs.append(f"asked for rescore={req.rescore}; Weaviate's {params['quantizer']} config rescores: "
                    f"{params['rescore']}")
    if built_quant is not None and compressed is not None and compressed[0] < compressed[1]:
        subs.append(f"only {compressed[0]} of {compressed[1]} shards are compressed (Weaviate compresses a shard "
                    f"once it holds training_limit = {params.get('quantizer_training_limit')} objects); the rest "
                    "are searched uncompressed")
    indexed = None if total is None else max(total - queued, 0)
    return BuiltIndex(kind=kind, params=params, indexed_count=indexed, total_count=total, substitutions=subs)


# -- the adapter -----------------------------------------------------------------------------------------------

class WeaviateBackend(Backend):
    """A Weaviate server, driven by worker processes, each with its own client."""

    name = "weaviate"
    capabilities = Capabilities(server=True, get=True, upsert=True, delete=True, filters=True, multi_vector=True,
                                hybrid=True, replication=True, sharding=True, quantization=QUANTIZATION, tenants=True)
    hybrid_weighted_norm = "minmax"
    Options = WeaviateOptions

    def __init__(self, options: BackendOptions, workdir: str):
        super().__init__(options, workdir)
        self.client: Any = None
        self.handle: Any = None  # the weaviate Collection
        self.collection: CollectionSpec | None = None
        self._ef: int | None = None
        self._efs: dict[str, int] = {}  # multi-vector records: the ef this adapter last set per named vector
        self._tenants: dict[str, Any] = {}  # multi-tenancy: the collection handle of each tenant

    @property
    def address(self) -> tuple[str, int]:
        return host_port(self.options.url, HTTP_PORT)

    @classmethod
    def check_available(cls, options: BackendOptions) -> str | None:
        if not installed("weaviate"):
            return "weaviate-client is not installed; install it with `pip install -e '.[servers]'`"
        host, port = host_port(getattr(options, "url", DEFAULT_URL), HTTP_PORT)
        if not tcp_reachable(host, port, 1.0):
            return f"no Weaviate server answers at {host}:{port}; {start_hint('weaviate')} or set BENCH_WEAVIATE_URL"
        return None

    def connect(self) -> None:
        import weaviate
        from weaviate.classes.init import AdditionalConfig, Auth, Timeout

        if self.client is not None:
            return
        o = self.options
        host, port = self.address
        if not tcp_reachable(host, port, 2.0):
            raise unreachable("weaviate", host, port, "weaviate")
        secure = o.url.startswith("https://")
        try:
            self.client = weaviate.connect_to_custom(
                http_host=host, http_port=port, http_secure=secure, grpc_host=host, grpc_port=o.grpc_port,
                grpc_secure=secure, auth_credentials=Auth.api_key(o.api_key.get_secret_value()) if o.api_key.get_secret_value() else None,
                additional_config=AdditionalConfig(timeout=Timeout(init=5, query=o.timeout_s, insert=o.timeout_s)))
        except Exception as e:  # noqa: BLE001 - start-up errors of REST or gRPC mean the same to the user
            raise unreachable("weaviate", host, port, "weaviate", f"{type(e).__name__}; gRPC port {o.grpc_port}") from None

    def _require_collection(self) -> CollectionSpec:
        if self.collection is None or self.handle is None:
            raise RuntimeError(f"{self.name}: create() or attach() must come first")
        return self.collection

    def create(self, collection: CollectionSpec) -> None:
        self.connect()
        req = collection_request(collection, rescore_limit=self.options.rescore_limit,
                                 training_limit=self.options.training_limit, shards=self.options.shards,
                                 replicas=self.options.replicas) | multi_tenancy_request(collection)
        if self.client.collections.exists(req["name"]):
            self.client.collections.delete(req["name"])
        self.handle = self.client.collections.create(**req)
        self.collection = collection
        self._ef = None
        self._efs = {}

    def attach(self, collection: CollectionSpec) -> None:
        self.connect()
        name = collection_name(collection.name)
        if not self.client.collections.exists(name):
            raise UserError(f"weaviate: collection '{name}' does not exist",
                            "the parent process creates and loads it before starting workers")
        self.handle = self.client.collections.get(name)
        self.collection = collection
        self._ef = None
        self._efs = {}

    def _insert(self, objects: list[Any]) -> None:
        res = self.handle.data.insert_many(objects)
        if res.has_errors:
            first = next(iter(res.errors.values()))
            raise RuntimeError(f"weaviate rejected {len(res.errors)} of {len(objects)} objects: {first.message}")

    def _tenant(self, tenant: str) -> Any:
        """The collection handle confined to `tenant` (no request: the client only names the tenant)."""
        h = self._tenants.get(tenant)
        if h is None:
            h = self._tenants[tenant] = self.handle.with_tenant(tenant)
        return h

    def _load(self, objects: list[Any]) -> None:
        """Load `objects` through the client's batching (`batch_context`), then fail on any object it reports
        failed (Weaviate docs, Batch import: error handling through `batch.failed_objects`). Multi-tenant
        collections: each tenant's objects into that tenant, created first."""
        field = self.collection.tenant_field if self.collection else None
        if not field:
            self._load_into(self.handle, objects)
            return
        from weaviate.classes.tenants import Tenant

        groups: dict[str, list[Any]] = {}
        for obj in objects:
            groups.setdefault(str(obj.properties[field]), []).append(obj)
        new = [t for t in groups if t not in self._tenants]
        if new:
            self.handle.tenants.create([Tenant(name=t) for t in new])
        for t, objs in groups.items():
            self._load_into(self._tenant(t), objs)

    def _load_into(self, handle: Any, objects: list[Any]) -> None:
        o = self.options
        method, kwargs = batch_context(o.batch_mode, o.batch_size, o.batch_concurrent_requests)
        with getattr(handle.batch, method)(**kwargs) as batch:
            for obj in objects:
                batch.add_object(properties=obj.properties, uuid=obj.uuid, vector=obj.vector)
        failed = handle.batch.failed_objects
        if failed:
            raise RuntimeError(f"weaviate rejected {len(failed)} of {len(objects)} objects: {failed[0].message}")

    def insert(self, ids: np.ndarray, vectors: np.ndarray | Mapping[str, np.ndarray],
               payloads: Sequence[Mapping[str, Any]] | None = None) -> None:
        col = self._require_collection()
        if isinstance(vectors, Mapping):  # multi-vector records: {name: (n, dim)}
            if set(vectors) != set(col.vectors):
                raise UserError(f"weaviate: the batch has vectors {sorted(vectors)} but the collection has "
                                f"{sorted(col.vectors)}", "insert every named vector of the collection")
            self._load([data_object(i, {name: v[j] for name, v in vectors.items()}, payloads[j] if payloads else None)
                        for j, i in enumerate(ids)])
            return
        if vectors.ndim != 2 or vectors.shape[1] != col.dim:
            raise UserError(f"weaviate: vectors have shape {vectors.shape}, the collection has dimension {col.dim}",
                            "check the dataset's dimension against the workload")
        self._load([data_object(i, v, payloads[j] if payloads else None)
                    for j, (i, v) in enumerate(zip(ids, vectors, strict=True))])

    def wait_indexed(self, timeout_s: float) -> BuiltIndex:
        col = self._require_collection()
        name = collection_name(col.name)
        start = time.monotonic()
        while True:
            nodes = self.client.cluster.nodes(name, output="verbose")
            ready, objects, queued, why = shards_ready(nodes, name)
            if ready and col.index.quantization:
                done, shards = shards_compressed(nodes, name)
                # BQ compresses at once; SQ and PQ once a shard holds training_limit objects (then asynchronously).
                trains = col.index.quantization == "binary" or objects >= self.options.training_limit
                if done < shards and trains:
                    ready, why = False, f"{done} of {shards} shards compressed"
            if ready:
                break
            if time.monotonic() - start > timeout_s:
                raise UserError(f"weaviate did not finish indexing '{name}' within the {timeout_s:.0f} s timeout ({why})",
                                "raise run.index_timeout_s, or check the server's load")
            time.sleep(0.2)
        if col.tenant_field:  # every tenant is a shard of its own: count each
            tenants = sorted(self.handle.tenants.get())
            total = sum(self._tenant(t).aggregate.over_all(total_count=True).total_count for t in tenants)
        else:
            total = self.handle.aggregate.over_all(total_count=True).total_count
        compressed = shards_compressed(nodes, name) if col.index.quantization else None
        config = self.handle.config.get()
        built = built_index_from_config(config, col, total, queued, compressed)
        built.params["cluster"] = c = cluster_readback(config, nodes, name, self.options.shards, self.options.replicas)
        built.substitutions.extend(c["substitutions"])
        o = self.options
        method, kwargs = batch_context(o.batch_mode, o.batch_size, o.batch_concurrent_requests)
        built.params["load_recipe"] = {
            "batch": f"collection.batch.{method}({', '.join(f'{k}={v}' for k, v in kwargs.items())})",
            "wait": "until every shard is READY with an empty vector queue",
            "docs": ["Weaviate docs: Batch import (fixed_size batch_size/concurrent_requests, dynamic, server-side "
                     "batching from 1.36; failed_objects)"]}
        if col.hybrid is not None:
            built.params["hybrid"] = hybrid_readback(config, col, built.substitutions)
        if col.tenant_field:
            mt = getattr(config, "multi_tenancy_config", None)
            built.params["tenants"] = {"field": col.tenant_field, "enabled": getattr(mt, "enabled", None),
                                       "tenants": len(tenants), "how": "native multi-tenancy: one shard per tenant, "
                                       "each search names its tenant (collection.with_tenant)"}
            if getattr(mt, "enabled", None) is not True:
                built.substitutions.append("asked for multi-tenancy; the collection reports it disabled")
        return built

    def _set_ef(self, ef: int, vector_name: str | None = None) -> None:
        self.handle.config.update(**ef_update(ef, vector_name or VECTOR_NAME))
        if vector_name is None:
            self._ef = ef
        else:
            self._efs[vector_name] = ef

    def search(self, vector: np.ndarray, k: int, params: SearchParams) -> Sequence[int]:
        name = params.vector_name
        current = self._ef if name is None else self._efs.get(name)
        if params.ef_search is not None and params.ef_search != current and self.collection.index.kind == "hnsw":
            self._set_ef(params.ef_search, name)
        if params.text is not None:
            return hit_ids(self.handle.query.hybrid(**hybrid_request(vector, k, params, self.collection.hybrid.text_field)))
        handle = self.handle if params.tenant is None else self._tenant(params.tenant)
        return hit_ids(handle.query.near_vector(**search_request(vector, k, params.filter, name)))

    def get(self, id: int) -> Record | None:
        self._require_collection()
        obj = self.handle.query.fetch_object_by_id(object_uuid(id), include_vector=True)
        return None if obj is None else record_from_object(obj)

    def upsert(self, id: int, vector: np.ndarray, payload: Mapping[str, Any] | None = None) -> None:
        self._require_collection()
        self._insert([data_object(id, vector, payload)])  # a batch write with an existing uuid replaces it

    def delete(self, id: int) -> None:
        self._require_collection()
        self.handle.data.delete_by_id(object_uuid(id))

    def info(self) -> EngineInfo:
        server = None
        if self.client is not None:
            try:
                server = str(self.client.get_meta().get("version"))
            except Exception:  # noqa: BLE001 - info must not fail a finished run
                server = None
        return EngineInfo(engine="weaviate", client_version=package_version("weaviate-client"), server_version=server,
                          server_address=self.address,
                          extra={"url": self.options.url, "grpc_port": self.options.grpc_port, "ef_set": self._ef, "ef_set_per_vector": dict(self._efs),
                                 "collection": collection_name(self.collection.name) if self.collection else None})

    def drop(self) -> None:
        if self.collection is not None and self.client is not None:
            name = collection_name(self.collection.name)
            if self.client.collections.exists(name):
                self.client.collections.delete(name)
        self.handle = None

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
