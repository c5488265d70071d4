"""`milvus` (a Milvus server, through pymilvus) and `milvus-lite` (the in-process milvus-lite engine, a `.db` folder).

Both speak to the engine through pymilvus's MilvusClient; pymilvus starts milvus-lite's gRPC server in a thread
of this process when the URI is a local path ending in `.db`. The two are separate backends because they are
driven differently: a server by N worker processes, milvus-lite by threads of one process (`in_process`).

Traps this module handles, each read back from the engine rather than trusted:

- The index is reported "Finished" before it is built. A server's describe_index says `state: Finished` right
  after a flush while `pending_index_rows` is still the whole collection; milvus-lite always says Finished with
  indexed_rows = all rows. `wait_indexed` therefore flushes, polls pending/indexed rows (server), loads, and
  reads what each loaded segment really carries (server: `list_loaded_segments` index names; lite: the engine's
  own segment objects, which live in this process).
- Unflushed rows are brute-forced. Rows still in milvus-lite's memtable, and in a server's growing segments, are
  searched exactly; segments under the server's 1,024-row threshold get no index at all. Both are counted and
  reported in `BuiltIndex.substitutions`.
- Build parameters. pymilvus 3 sends `M` / `efConstruction` as top-level key-value pairs, which a server reads
  and milvus-lite silently ignores (it builds M=16, efConstruction=200); milvus-lite reads them only nested as
  `params={"params": {...}}`. Each mode sends the form its engine reads, and the values the engine used are read
  back (lite: from the faiss graph itself).
- milvus-lite is a Python reimplementation (faiss HNSW per segment, Python loops around each search), so its
  QPS says little about Milvus; every milvus-lite run carries that caveat as a substitution line.

Multi-vector records (`CollectionSpec.vectors`): one FLOAT_VECTOR field per named vector, each with its own HNSW
index (index name = field name), searched with `anns_field=<name>`. A server needs Milvus 2.4 or later for that
(2.3 answers "multiple vector fields is not supported"): `create` reads the server version first and refuses an
older server with one sentence naming it. milvus-lite 3.2 holds several vector fields; each field's graph is read
back from the engine's own segment objects.

Quantization (read back from describe_index, and from the engine's own segment objects for lite):
- Milvus server 2.3.5 has no quantized HNSW (HNSW_SQ / HNSW_PQ / HNSW_PRQ arrived in 2.5): int8 becomes IVF_SQ8,
  pq without rescore IVF_PQ (one 8-bit code per 4 dimensions, as faiss), pq with rescore SCANN (IVF with 4-bit
  fast-scan PQ, raw data kept by default, `reorder_k` = 2k candidates reranked on the raw vectors). These are IVF
  indexes searched with `nprobe` of `nlist` lists (options `ivf_nlist`, `ivf_nprobe`), not HNSW graphs: the
  run's ef_search does not apply to them, and `BuiltIndex.substitutions` says both. IVF_SQ8 has no refine step
  in 2.3, so int8 with rescore is refused; fp16 (FLOAT16_VECTOR is 2.4+) and binary (no float-to-bit quantizer;
  BIN_* indexes take BINARY_VECTOR fields) are refused naming the version.
- milvus-lite 3.2.2 builds HNSW_SQ (faiss IndexHNSWSQ, 8-bit, no refine): int8 without rescore only. Its
  IVF_PQ raises NotImplementedError, so pq, fp16 and binary are refused.

`SearchParams.ef_search` is sent per query as `{"params": {"ef": ...}}`. Payload filters (the typed filter tree of
`bench.backends.query`) become Milvus boolean expressions (`MilvusConditionParser`): `field == value` for Eq,
`field >= a and field < b` for a Range, `and` / `or` for And / Or, every compound part in parentheses; strings are
double-quoted with JSON escapes, field names must be identifiers. The same expression serves both `milvus` and
`milvus-lite`, plain and hybrid searches.

Hybrid: Milvus' own BM25. The text field is a VARCHAR with `enable_analyzer` (the standard analyzer: no
stemming, no stopwords) feeding a `Function(type=BM25)` into a SPARSE_FLOAT_VECTOR field with a
SPARSE_INVERTED_INDEX (metric BM25, bm25_k1 / bm25_b); a search is `hybrid_search` with a dense and a BM25
`AnnSearchRequest` (each limited to the candidates) and `RRFRanker(60)` or `WeightedRanker(alpha, 1 - alpha,
norm_score=True)` (scores normalised with arctan: cosine (1 + s) / 2, BM25 2 atan(s) / pi). That needs Milvus
2.5 or later: an older server is refused, naming its version. milvus-lite 3.2.2 has it, with a caveat read back
into the run: it keeps BM25 statistics (N, df, avgdl) per segment, not over the collection.
"""

from __future__ import annotations

import json
import math
import os
import time
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

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
    IndexSpec,
    Record,
    SearchParams,
    Secret,
    installed,
    package_version,
)
from bench.backends.query import ConditionParser, Filter, with_tenant
from bench.errors import UserError

DEFAULT_URI = "http://127.0.0.1:19530"
DEFAULT_PORT = 19530
ID_FIELD = "id"
VECTOR_FIELD = "vector"
INDEX_NAME = "vector"
SPARSE_FIELD = "text_sparse"
SPARSE_INDEX = "text_sparse"
BM25_MIN_SERVER = (2, 5)
SERVER_MIN_INDEXED_ROWS = 1024  # Milvus's default minSegmentNumRowsToEnableIndex: smaller segments stay unindexed
LITE_CAVEAT = ("milvus-lite is a pure-Python reimplementation of Milvus (faiss per segment, Python loops around "
               "each search, exact search over unflushed rows): its QPS and latency say little about a Milvus server")

METRICS = {"cosine": "COSINE", "l2": "L2", "ip": "IP"}
INDEX_TYPES = {"hnsw": "HNSW", "flat": "FLAT"}
_KINDS = {"HNSW": "hnsw", "FLAT": "flat", "BRUTE_FORCE": "flat", "AUTOINDEX": "autoindex", "IVF_SQ8": "ivf",
          "IVF_PQ": "ivf", "IVF_FLAT": "ivf", "SCANN": "ivf", "HNSW_SQ": "hnsw"}
_FAISS_KINDS = {"FaissHnswIndex": "hnsw", "BruteForceIndex": "flat", "FaissHnswSqIndex": "hnsw",
                "FaissIvfSq8Index": "ivf", "FaissIvfFlatIndex": "ivf"}
_FAISS_QUANT = {"FaissHnswSqIndex": "int8", "FaissIvfSq8Index": "int8"}
SERVER_QUANTIZATION = ("int8", "pq")  # IVF_SQ8; IVF_PQ / SCANN (Milvus 2.3.5 has no quantized HNSW)
LITE_QUANTIZATION = ("int8",)  # HNSW_SQ, without refine
RESCORE_FACTOR = 2.0  # SCANN reorder_k = k * this (as faiss, qdrant-edge, pgvector)
_VARCHAR_MAX = {"keyword": 1024, "text": 65535}

ConsistencyLevel = Literal["Strong", "Bounded", "Session", "Eventually"]
TIME_TICK_US = 200_000  # proxy.timeTickInterval, Milvus's default (docs: configure_proxy)
TIME_TICK = "Milvus proxy time tick (proxy.timeTickInterval, 200 ms by default)"
LOAD_DOCS = ["Milvus docs: Consistency (Strong, Bounded, Session, Eventually; Bounded is the default)",
             "Milvus docs: configure_proxy (proxy.timeTickInterval = 200 ms)",
             "pymilvus docs: flush() (seal once after inserting, not after every insert; only sealed segments are "
             "indexed)", "Milvus docs: Insert Entities (batched MilvusClient.insert), Load Collection"]


def choose_consistency(configured: str | None, reads_own_writes: bool) -> tuple[str, str, list[str]]:
    """(level, why, warnings): the weakest Milvus consistency level that guarantees what the workload needs
    (Milvus docs, Consistency): Bounded when nothing reads its own writes (search-only), Session when a client
    reads its own writes. A configured level wins, with a warning when it is Strong on a search-only workload
    (every request then waits for the time tick) or too weak for a workload that reads its own writes."""
    needed = "Session" if reads_own_writes else "Bounded"
    what = "a client reads its own writes" if reads_own_writes else "no client reads its own writes"
    if configured is None:
        return needed, f"auto: {needed}, the weakest level that serves this workload ({what})", []
    warnings = []
    if configured == "Strong" and not reads_own_writes:
        warnings.append(f"consistency_level = Strong is configured on a search-only workload: every search waits "
                        f"for the {TIME_TICK}, so latency and QPS measure that timer; Bounded (Milvus's default) is "
                        "enough when no client reads its own writes (unset backend.consistency_level to let bench "
                        "choose)")
    if configured in ("Bounded", "Eventually") and reads_own_writes:
        warnings.append(f"consistency_level = {configured} is configured on a workload whose clients read their own "
                        "writes: a read may miss the write just before it (Session guarantees it)")
    return configured, "backend.consistency_level", warnings
MULTI_VECTOR_MIN_SERVER = (2, 4)  # several vector fields in one collection
# what a Milvus server's version decides (`MilvusBackend.supports`): feature -> (minimum version, why not before)
_SERVER_NEEDS = {
    "hybrid": (BM25_MIN_SERVER, "and the BM25 function with hybrid_search needs Milvus 2.5 or later"),
    "multi_vector": (MULTI_VECTOR_MIN_SERVER, "which cannot hold several vector fields in one collection (multi-vector "
                     f"records need Milvus >= {'.'.join(map(str, MULTI_VECTOR_MIN_SERVER))}; or use backend milvus-lite)"),
}


def server_version_tuple(text: str) -> tuple[int, ...] | None:
    """(2, 3, 5) from "v2.3.5" or "2.3.5-xyz"; None when the text holds no version."""
    import re

    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", str(text))
    return tuple(int(g) for g in m.groups() if g is not None) if m else None


def _env_uri() -> str:
    return os.environ.get("BENCH_MILVUS_URI") or DEFAULT_URI


def is_lite_uri(uri: str) -> bool:
    """True for a milvus-lite database: a local path (no scheme) ending in `.db`."""
    return "://" not in uri and uri.rstrip("/").endswith(".db")


class MilvusOptions(BackendOptions):
    uri: str = Field(default_factory=_env_uri, description="server URI; env BENCH_MILVUS_URI is the default")
    token: Secret = Field(SecretStr(""), description="`user:password` or an API key; empty for no authentication; "
                          "\"env:NAME\" or \"file:PATH\" reads it from an environment variable or a file")
    db_name: str = Field("", description="database; empty = the server's default")
    consistency_level: ConsistencyLevel | None = Field(
        None, description="collection consistency (None = per workload: Bounded when nothing reads its own writes, "
        "Session when a client reads its own writes); Strong makes every request wait for the 200 ms time tick")
    insert_request_mb: float = Field(4.0, gt=0, le=64, description="largest insert request while loading, MB of "
                                     "vectors (the proxy accepts up to proxy.grpc.serverMaxRecvSize)")
    shards_num: int = Field(1, ge=1, description="shards (DML channels) of the collection")
    num_partitions: int | None = Field(None, ge=1, le=1024, description="multi-tenancy ([tenants]): the partitions "
                                       "the partition key hashes tenants into; unset = the server's default")
    replicas: int = Field(1, ge=1, description="in-memory replicas the collection is loaded as (cluster mode: one "
                          "per query node at most)")
    connect_timeout_s: float = Field(5.0, gt=0, description="how long connect() waits for the server")
    ivf_nlist: int = Field(128, ge=1, le=65536, description="quantized (IVF_SQ8, IVF_PQ, SCANN): lists of the IVF index")
    ivf_nprobe: int = Field(16, ge=1, le=65536, description="quantized: lists each query probes (ef_search does not apply)")


class MilvusLiteOptions(BackendOptions):
    uri: str = Field("", description="milvus-lite database path ending in .db; empty = <run workdir>/milvus-lite.db")


# -- request building and response parsing (pure, unit-tested) ------------------------------------------------

@dataclass(frozen=True)
class QuantPlan:
    """What a quantization request becomes on this Milvus: the index type, its build and search parameters and
    the sentence that says what differs from an HNSW request."""

    quantization: str
    index_type: str
    build: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)  # per-query params; "reorder_factor" -> reorder_k
    note: str = ""


def replica_readback(shards: int | None, replicas: Sequence[Any], asked_shards: int,
                     asked_replicas: int) -> dict[str, Any]:
    """What a Milvus cluster built: shards, replicas, and per replica the query nodes serving it and each shard's
    leader (pymilvus `describe_replica`); `substitutions` where it differs from the request."""
    out: dict[str, Any] = {"shards": shards, "replicas": len(replicas), "placement": []}
    for r in replicas:
        nodes = sorted({int(n[0]) if isinstance(n, tuple | list) else int(getattr(n, "node_id", n))
                        for n in r.group_nodes})
        out["placement"].append({"replica": int(r.id), "query_nodes": nodes,
                                 "shard_leaders": {str(sh.channel_name): int(sh.shard_leader) for sh in r.shards}})
    subs = []
    if shards is not None and shards != asked_shards:
        subs.append(f"{shards} shards built where {asked_shards} were asked")
    if len(replicas) != asked_replicas:
        subs.append(f"loaded as {len(replicas)} replicas where {asked_replicas} were asked")
    out["substitutions"] = subs
    return out


def _pq_m(dim: int) -> int:
    """One 8-bit PQ code per 4 dimensions (16x smaller than float32), or the nearest divisor of dim below."""
    m = max(1, dim // 4)
    while dim % m:
        m -= 1
    return m


def quantization_plan(index: IndexSpec, dim: int, *, lite: bool, nlist: int = 128, nprobe: int = 16) -> QuantPlan | None:
    """The index a quantization request maps to, or a UserError naming what this Milvus lacks. None: unquantized."""
    q = index.quantization
    if not q:
        return None
    where = "milvus-lite 3.2.2" if lite else "Milvus server 2.3.5"
    fix = "remove index.quantization or choose another engine (`bench backends` lists quantization)"
    if index.kind != "hnsw":
        raise UserError(f"milvus quantization '{q}' is asked for with index.kind = '{index.kind}'",
                        "set index.kind = \"hnsw\" (the quantized index replaces it)")
    if lite:
        if q != "int8":
            raise UserError(f"{where} offers no {q} quantization (it builds HNSW_SQ for int8 only; its IVF_PQ is "
                            "not implemented), so the run is skipped rather than built unquantized", fix)
        if index.rescore:
            raise UserError(f"{where} HNSW_SQ has no refine step, so int8 with rescore cannot run there",
                            "set index.rescore = false, or choose faiss or qdrant-edge")
        return QuantPlan(q, "HNSW_SQ", {"M": int(index.m), "efConstruction": int(index.ef_construction)})
    ivf = (f"an IVF index, not HNSW, with nlist={nlist}, searched with nprobe={nprobe} (backend.ivf_nprobe); ef_search does "
           "not apply; Milvus 2.3.5 has no quantized HNSW (HNSW_SQ/HNSW_PQ are 2.5+)")
    if q == "int8":
        if index.rescore:
            raise UserError(f"{where} quantizes int8 only as IVF_SQ8, which has no refine step, so int8 with rescore "
                            "cannot run there", "set index.rescore = false, or choose faiss or qdrant-edge")
        return QuantPlan(q, "IVF_SQ8", {"nlist": nlist}, {"nprobe": nprobe}, f"int8 became IVF_SQ8, {ivf}")
    if q == "pq":
        if index.rescore:
            # with_raw_data is left to knowhere's default (true): 2.3.5 rejects the string "True" pymilvus sends
            # for it ("Type conflict in json") and then never builds the index.
            return QuantPlan(q, "SCANN", {"nlist": nlist},
                             {"nprobe": nprobe, "reorder_factor": RESCORE_FACTOR},
                             f"pq with rescore became SCANN (4-bit fast-scan PQ, candidates reranked on the raw "
                             f"vectors with reorder_k = {RESCORE_FACTOR:g}k), {ivf}")
        m = _pq_m(dim)
        return QuantPlan(q, "IVF_PQ", {"nlist": nlist, "m": m, "nbits": 8}, {"nprobe": nprobe},
                         f"pq became IVF_PQ (m={m}, nbits=8), {ivf}")
    if q == "fp16":
        raise UserError(f"{where} has no fp16 vectors (FLOAT16_VECTOR arrived in Milvus 2.4), so the run is skipped "
                        "rather than built unquantized", fix)
    raise UserError(f"{where} has no binary quantization of float vectors (its BIN_* indexes need a BINARY_VECTOR "
                    "field), so the run is skipped rather than built unquantized", fix)


def index_request(index: IndexSpec, metric: str, *, lite: bool, plan: QuantPlan | None = None,
                  field: str = VECTOR_FIELD) -> dict[str, Any]:
    """Keyword arguments for `IndexParams.add_index` asking for `index` with `metric` (or for `plan`, the index a
    quantization maps to; see `quantization_plan`).

    milvus-lite reads build parameters only from a nested `params` JSON entry; a server reads the flattened
    keys (pymilvus 3 flattens `params={...}` into top-level entries, hence the doubled nesting for lite).
    """
    if index.kind not in INDEX_TYPES:
        raise UserError(f"milvus has no index kind '{index.kind}'", f"use one of: {', '.join(INDEX_TYPES)}")
    if metric not in METRICS:
        raise UserError(f"milvus has no metric '{metric}'", f"use one of: {', '.join(METRICS)}")
    if index.quantization and plan is None:
        raise UserError(f"milvus quantization '{index.quantization}' needs the collection's dimension to plan",
                        "this is a harness bug if you see it")
    build: dict[str, Any] = {}
    index_type = INDEX_TYPES[index.kind]
    if plan is not None:
        index_type, build = plan.index_type, dict(plan.build)
    elif index.kind == "hnsw":
        build = {"M": int(index.m), "efConstruction": int(index.ef_construction)}
    req: dict[str, Any] = {"field_name": field, "index_type": index_type,
                           "index_name": INDEX_NAME if field == VECTOR_FIELD else field, "metric_type": METRICS[metric]}
    if build:
        req["params"] = {"params": build} if lite else build
    return req


def sparse_index_request(k1: float, b: float, *, lite: bool) -> dict[str, Any]:
    """`add_index` keyword arguments of the BM25 sparse index (nested params for milvus-lite, as for HNSW)."""
    build = {"bm25_k1": float(k1), "bm25_b": float(b)}
    return {"field_name": SPARSE_FIELD, "index_type": "SPARSE_INVERTED_INDEX", "index_name": SPARSE_INDEX,
            "metric_type": "BM25", "params": {"params": build} if lite else build}


def hybrid_requests(vector: np.ndarray | list[float], text: str, metric: str, ef: int | None, candidates: int,
                    flt: str = "") -> list[dict[str, Any]]:
    """The two `AnnSearchRequest` keyword sets of a hybrid search: dense first, then BM25."""
    return [{"data": [np.asarray(vector, dtype=np.float32).tolist()], "anns_field": VECTOR_FIELD,
             "param": search_params(metric, ef), "limit": int(candidates), "expr": flt or None},
            {"data": [text], "anns_field": SPARSE_FIELD, "param": {"metric_type": "BM25"}, "limit": int(candidates),
             "expr": flt or None}]


def ranker_for(fusion: str | None, alpha: float | None) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """(ranker class name, args, kwargs): RRFRanker(60) or WeightedRanker(alpha, 1 - alpha, norm_score=True)."""
    from bench.datasets.hybrid import RRF_K

    if fusion == "rrf":
        return "RRFRanker", (RRF_K,), {}
    if fusion == "weighted" and alpha is not None:
        return "WeightedRanker", (float(alpha), 1.0 - float(alpha)), {"norm_score": True}
    raise ValueError(f"milvus: unknown fusion {fusion!r} (alpha {alpha})")


def search_params(metric: str, ef: int | None, plan: QuantPlan | None = None, k: int = 10) -> dict[str, Any]:
    """The `search_params` of one query: ef for HNSW (and lite's HNSW_SQ); nprobe (and SCANN's reorder_k) for
    the IVF indexes a quantization maps to."""
    out: dict[str, Any] = {"metric_type": METRICS[metric]}
    if plan is not None and plan.search:
        p = {key: v for key, v in plan.search.items() if key != "reorder_factor"}
        if "reorder_factor" in plan.search:
            p["reorder_k"] = max(int(k), math.ceil(int(k) * plan.search["reorder_factor"]))
        out["params"] = p
    elif ef is not None:
        out["params"] = {"ef": int(ef)}
    return out


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | np.integer | np.floating):
        return repr(value.item() if isinstance(value, np.generic) else value)
    if isinstance(value, str):
        return json.dumps(value)
    raise UserError(f"milvus filters compare with numbers, booleans or strings, not {type(value).__name__}",
                    "filter on an int or keyword payload field")


_EXPR_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class MilvusConditionParser(ConditionParser[str]):
    """The filter tree as a Milvus boolean expression; every compound part is parenthesised."""

    @staticmethod
    def _name(field: str) -> str:
        if not field.isidentifier():
            raise UserError(f"milvus filter field '{field}' is not a valid field name", "use the payload field's name")
        return field

    def build_eq(self, field: str, value: int | str) -> str:
        return f"{self._name(field)} == {_literal(value)}"

    def build_range(self, field: str, **bounds: float) -> str:
        name = self._name(field)
        return self._join(" and ", [f"{name} {_EXPR_OPS[op]} {_literal(v)}" for op, v in bounds.items()])

    def build_and(self, items: list[str]) -> str:
        return self._join(" and ", items)

    def build_or(self, items: list[str]) -> str:
        return self._join(" or ", items)

    @staticmethod
    def _join(op: str, items: list[str]) -> str:
        return items[0] if len(items) == 1 else "(" + op.join(items) + ")"


def filter_expr(flt: Filter | None) -> str:
    """The Milvus boolean expression of a typed filter tree ('' for none)."""
    return "" if flt is None else MilvusConditionParser().parse(flt)


def nested_params(desc: Mapping[str, Any]) -> Mapping[str, Any]:
    """The `params` of a describe_index answer, given as a mapping or a JSON string (lite); {} when absent."""
    nested = desc.get("params")
    if isinstance(nested, str):
        try:
            nested = json.loads(nested)
        except json.JSONDecodeError:
            nested = None
    return nested if isinstance(nested, Mapping) else {}


def read_index_description(desc: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(kind, params) from describe_index: build params may come flat (server) or nested in `params` (lite)."""
    index_type = str(desc.get("index_type", "")).upper()
    raw: dict[str, Any] = dict(nested_params(desc))
    for key in ("M", "efConstruction", "nlist", "m", "nbits", "with_raw_data"):
        if key in desc:
            raw[key] = desc[key]
    params: dict[str, Any] = {"index_type": index_type, "metric_type": desc.get("metric_type")}
    if "M" in raw:
        params["m"] = int(raw["M"])
    if "efConstruction" in raw:
        params["ef_construction"] = int(raw["efConstruction"])
    if "nlist" in raw:
        params["nlist"] = int(raw["nlist"])
    if "m" in raw:
        params["pq_m"] = int(raw["m"])
    if "nbits" in raw:
        params["pq_nbits"] = int(raw["nbits"])
    if "with_raw_data" in raw:
        params["with_raw_data"] = str(raw["with_raw_data"]).lower() == "true"
    params["quantization"] = {"IVF_SQ8": "int8", "HNSW_SQ": "int8", "IVF_PQ": "pq", "SCANN": "pq"}.get(index_type)
    return _KINDS.get(index_type, index_type.lower() or "none"), params


def hit_ids(result: Any) -> list[int]:
    """Ids, best first, of the first query of a MilvusClient.search result. pymilvus' hits carry their primary
    keys as `ids`: read there, since iterating the hits decodes each into a dict first (about 1.5 us a hit)."""
    if not result:
        return []
    hits = result[0]
    ids = getattr(hits, "ids", None)
    return [int(i) for i in ids] if ids is not None else [int(hit["id"]) for hit in hits]


def record_from_row(row: Mapping[str, Any]) -> Record:
    vec = row.get(VECTOR_FIELD)
    payload = {k: v for k, v in row.items() if k not in (ID_FIELD, VECTOR_FIELD) and v is not None}
    return Record(id=int(row[ID_FIELD]), vector=None if vec is None else np.asarray(vec, dtype=np.float32),
                  payload=payload or None)


def compare_params(req: IndexSpec, kind: str, params: Mapping[str, Any], plan: QuantPlan | None = None) -> list[str]:
    """Substitution lines where what the engine reports differs from the request (for a quantization: from the
    index it maps to, whose own difference from HNSW is `plan.note`)."""
    subs = []
    if plan is not None:
        got = params.get("index_type")
        if got != plan.index_type:
            subs.append(f"asked for {plan.quantization} quantization as {plan.index_type}; the engine reports {got}")
        if plan.note:
            subs.append(plan.note)
        if params.get("quantization") != plan.quantization:
            subs.append(f"asked for {plan.quantization} quantization; the engine reports "
                        f"{params.get('quantization') or 'none'}")
        if plan.index_type.startswith("HNSW") and kind == "hnsw" and (params.get("m"), params.get("ef_construction")) \
                != (req.m, req.ef_construction):
            subs.append(f"asked for m={req.m}, ef_construction={req.ef_construction}; the engine reports "
                        f"m={params.get('m')}, ef_construction={params.get('ef_construction')}")
        return subs
    if kind != req.kind:
        subs.append(f"asked for a {req.kind} index; the engine reports {params.get('index_type') or kind}")
    elif kind == "hnsw":
        got = (params.get("m"), params.get("ef_construction"))
        if got != (req.m, req.ef_construction):
            subs.append(f"asked for m={req.m}, ef_construction={req.ef_construction}; the engine reports "
                        f"m={got[0]}, ef_construction={got[1]}")
    return subs


def lite_engine_state(db_path: str, collection: str, field: str = VECTOR_FIELD) -> dict[str, Any] | None:
    """What milvus-lite's engine holds for `collection`, read from its objects in this process.

    milvus-lite's describe_index is not a read-back (always Finished, all rows indexed), so this looks at the
    engine itself: rows per flushed segment and the index object each carries (a faiss HNSW graph, whose M and
    efConstruction are read from the graph, or brute force), and rows still in the memtable (searched exactly).
    None when the engine's internals are not reachable (another milvus-lite version).
    """
    try:
        from milvus_lite.server_manager import server_manager_instance

        entry = server_manager_instance._servers.get(os.path.abspath(db_path))
        if entry is None:
            return None
        col = entry[1].get_collection(collection)
        segments = []
        for seg in list(col._segment_cache.values()):
            idx = seg.indexes.get(field)
            info: dict[str, Any] = {"rows": int(seg.num_rows),
                                    "index": None if idx is None else _FAISS_KINDS.get(type(idx).__name__,
                                                                                       type(idx).__name__),
                                    "index_class": None if idx is None else type(idx).__name__,
                                    "quantization": None if idx is None else _FAISS_QUANT.get(type(idx).__name__)}
            graph = getattr(idx, "_index", None)
            hnsw = getattr(graph, "hnsw", None)
            if hnsw is not None:
                info["m"] = int(hnsw.nb_neighbors(1))
                info["ef_construction"] = int(hnsw.efConstruction)
            segments.append(info)
        return {"segments": segments, "memtable_rows": int(col._memtable.size())}
    except Exception:  # noqa: BLE001 - internals of another version: report "unknown" instead
        return None


def _one_or_list(values: list[Any]) -> Any:
    distinct = sorted(set(values))
    return distinct[0] if len(distinct) == 1 else distinct


# -- the adapters ----------------------------------------------------------------------------------------------

class _MilvusBase(Backend):
    lite: ClassVar[bool] = False

    def __init__(self, options: BackendOptions, workdir: str):
        super().__init__(options, workdir)
        self.client: Any = None
        self.collection: CollectionSpec | None = None
        self._fill_missing: dict[str, Any] = {}
        self._plan: QuantPlan | None = None

    def _quant_plan(self, collection: CollectionSpec) -> QuantPlan | None:
        return quantization_plan(collection.index, collection.dim, lite=self.lite)

    # -- connection ---------------------------------------------------------------------------------------
    @property
    @abstractmethod
    def uri(self) -> str: ...

    def _client_kwargs(self) -> dict[str, Any]:
        return {}

    def connect(self) -> None:
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException

        if self.client is not None:
            return
        try:
            self.client = MilvusClient(uri=self.uri, **self._client_kwargs())
        except MilvusException as e:
            raise self._unreachable(getattr(e, "message", str(e))) from None

    @abstractmethod
    def _unreachable(self, detail: str = "") -> UserError: ...

    def _require_collection(self) -> CollectionSpec:
        if self.collection is None:
            raise RuntimeError(f"{self.name}: create() or attach() must come first")
        return self.collection

    # -- lifecycle ----------------------------------------------------------------------------------------
    def _vector_fields(self, collection: CollectionSpec) -> dict[str, int]:
        """Vector field name -> dimension: the named vectors, else the one `vector` field."""
        return dict(collection.vectors) or {VECTOR_FIELD: int(collection.dim)}

    def create(self, collection: CollectionSpec) -> None:
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        self.connect()
        fields = self._vector_fields(collection)
        for f in collection.vectors:
            if f == ID_FIELD or f in collection.payload_fields:
                raise UserError(f"milvus: named vector '{f}' clashes with another field", "rename the vector")
        plan = self._quant_plan(collection)  # validates before dropping
        if plan is not None and collection.vectors:
            raise UserError("the milvus adapter does not quantize named vectors (multi-vector records), so the run "
                            "is skipped rather than built unquantized", "remove index.quantization or [multivector]")
        reqs = [index_request(collection.index, collection.metric_of(f), lite=self.lite, plan=plan, field=f)
                for f in fields]
        if collection.vectors and (why := self.supports("multi_vector", self.options)):
            raise UserError(f"{why[0].upper()}{why[1:]}, so the workload is skipped",
                            "run it against Milvus 2.4 or later, or on backend milvus-lite")
        name = collection.name
        if self.client.has_collection(name):
            self.client.drop_collection(name)
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
        schema.add_field(ID_FIELD, DataType.INT64, is_primary=True)
        for f, dim in fields.items():
            schema.add_field(f, DataType.FLOAT_VECTOR, dim=int(dim))
        h = collection.hybrid
        for field_name, kind in collection.payload_fields.items():
            if h is not None and field_name == h.text_field:
                schema.add_field(field_name, DataType.VARCHAR, max_length=_VARCHAR_MAX["text"], enable_analyzer=True)
                schema.add_field(SPARSE_FIELD, DataType.SPARSE_FLOAT_VECTOR)
                schema.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                             input_field_names=[field_name], output_field_names=[SPARSE_FIELD]))
            elif field_name == collection.tenant_field:  # Milvus' multi-tenancy: the partition key
                schema.add_field(field_name, DataType.VARCHAR, max_length=_VARCHAR_MAX["keyword"],
                                 is_partition_key=True)
            elif kind == "int":
                schema.add_field(field_name, DataType.INT64, nullable=True)
            elif kind in _VARCHAR_MAX:
                schema.add_field(field_name, DataType.VARCHAR, max_length=_VARCHAR_MAX[kind], nullable=True)
            else:
                raise UserError(f"milvus payload field '{field_name}' has unknown type '{kind}'",
                                "use int, keyword or text")
        self.client.create_collection(name, schema=schema, **self._create_kwargs())
        index_params = self.client.prepare_index_params()
        for req in reqs:
            index_params.add_index(**req)
        if h is not None:
            index_params.add_index(**sparse_index_request(h.k1, h.b, lite=self.lite))
        self.client.create_index(name, index_params)
        self.collection = collection
        self._plan = plan
        self._fill_missing = self._needs_fill(collection)

    def _create_kwargs(self) -> dict[str, Any]:
        return {}

    def _needs_fill(self, collection: CollectionSpec) -> dict[str, Any]:
        """Declared payload fields the server made non-nullable (servers before 2.5), with the value a row
        lacking them gets. Empty when the engine honours `nullable`."""
        if not collection.payload_fields:
            return {}
        fields = self.client.describe_collection(collection.name).get("fields", [])
        fill = {}
        for f in fields:
            if f["name"] in collection.payload_fields and not f.get("nullable", False):
                fill[f["name"]] = 0 if collection.payload_fields[f["name"]] == "int" else ""
        return fill

    def attach(self, collection: CollectionSpec) -> None:
        self.connect()
        if not self.client.has_collection(collection.name):
            raise UserError(f"{self.name}: collection '{collection.name}' does not exist at {self.uri}",
                            "the parent process creates and loads it before starting workers")
        self.collection = collection
        self._plan = self._quant_plan(collection)
        self._fill_missing = self._needs_fill(collection)
        self.client.load_collection(collection.name)

    def _row(self, id: int, vector: np.ndarray, payload: Mapping[str, Any] | None) -> dict[str, Any]:
        row: dict[str, Any] = dict(self._fill_missing)
        if payload:
            row.update(payload)
        row[ID_FIELD] = int(id)
        row[VECTOR_FIELD] = np.asarray(vector, dtype=np.float32).tolist()
        return row

    def insert(self, ids: np.ndarray, vectors: np.ndarray | Mapping[str, np.ndarray],
               payloads: Sequence[Mapping[str, Any]] | None = None) -> None:
        col = self._require_collection()
        if isinstance(vectors, Mapping):  # multi-vector records: one field per named vector
            lists = {f: np.asarray(v, dtype=np.float32).tolist() for f, v in vectors.items()}
            rows = []
            for j, i in enumerate(ids):
                row: dict[str, Any] = dict(self._fill_missing)
                if payloads and payloads[j]:
                    row.update(payloads[j])
                row[ID_FIELD] = int(i)
                row.update({f: vals[j] for f, vals in lists.items()})
                rows.append(row)
            self._insert_rows(col, rows)
            return
        if vectors.ndim != 2 or vectors.shape[1] != col.dim:
            raise UserError(f"{self.name}: vectors have shape {vectors.shape}, the collection has dimension {col.dim}",
                            "check the dataset's dimension against the workload")
        rows = [self._row(i, v, payloads[j] if payloads else None) for j, (i, v) in enumerate(zip(ids, vectors, strict=True))]
        self._insert_rows(col, rows)

    def _rows_per_request(self, col: CollectionSpec) -> int | None:
        """The most rows one insert request carries (None: a whole batch)."""
        return None

    def _insert_rows(self, col: CollectionSpec, rows: list[dict[str, Any]]) -> None:
        step = self._rows_per_request(col) or len(rows) or 1
        for s in range(0, len(rows), step):
            self.client.insert(col.name, rows[s:s + step])
        self._rows_sent = max(getattr(self, "_rows_sent", 0), min(step, len(rows)))

    def wait_indexed(self, timeout_s: float) -> BuiltIndex:
        col = self._require_collection()
        deadline = time.monotonic() + timeout_s
        self.client.flush(col.name)
        built = self._wait_built(col, deadline)
        total = self.count() * max(1, len(col.vectors))  # multi-vector: every named vector of every row
        built.total_count = total
        if built.indexed_count is not None and built.indexed_count < total:
            built.substitutions.append(f"only {built.indexed_count} of {total} vectors are in an index; the rest are "
                                       "searched by brute force")
        return built

    def _timeout(self, timeout_s: float, what: str) -> UserError:
        return UserError(f"{self.name} did not finish {what} within the {timeout_s:.0f} s timeout",
                         "raise run.index_timeout_s, or check the server's logs")

    @abstractmethod
    def _wait_built(self, col: CollectionSpec, deadline: float) -> BuiltIndex: ...

    def count(self) -> int:
        col = self._require_collection()
        res = self.client.query(col.name, filter="", output_fields=["count(*)"])
        return int(res[0]["count(*)"])

    def prepare_queries(self, queries: np.ndarray) -> Sequence[Any]:
        """Each query as the list of floats pymilvus sends, from one `tolist` before the clock starts."""
        return np.asarray(queries, dtype=np.float32).tolist()

    def search(self, vector: np.ndarray | list[float], k: int, params: SearchParams) -> Sequence[int]:
        col = self.collection
        if params.text is not None:
            return self._hybrid(vector, k, params)
        field = params.vector_name or VECTOR_FIELD
        # no output_fields: every hit carries its primary key, and asking for fields adds a retrieve step
        res = self.client.search(col.name, data=[vector if type(vector) is list else vector.tolist()], limit=k,
                                 anns_field=field,
                                 search_params=search_params(col.metric_of(field), params.ef_search, self._plan, k),
                                 filter=filter_expr(with_tenant(params.filter, col.tenant_field, params.tenant)),
                                 timeout=self.op_timeout_s)
        return hit_ids(res)

    def _hybrid(self, vector: np.ndarray | list[float], k: int, params: SearchParams) -> Sequence[int]:
        import pymilvus

        col = self._require_collection()
        reqs = [pymilvus.AnnSearchRequest(**r) for r in hybrid_requests(
            vector, params.text or "", col.metric, params.ef_search, params.candidates or k, filter_expr(params.filter))]
        name, args, kwargs = ranker_for(params.fusion, params.alpha)
        res = self.client.hybrid_search(col.name, reqs, ranker=getattr(pymilvus, name)(*args, **kwargs), limit=k,
                                        output_fields=[ID_FIELD], timeout=self.op_timeout_s)
        return hit_ids(res)

    def _hybrid_readback(self, col: CollectionSpec) -> dict[str, Any]:
        h = col.hybrid
        assert h is not None
        desc = self.client.describe_index(col.name, SPARSE_INDEX) or {}
        raw = {**nested_params(desc), **{k: desc[k] for k in ("bm25_k1", "bm25_b") if k in desc}}
        return {"bm25": "engine: BM25 function into a sparse field, SPARSE_INVERTED_INDEX", "index_type":
                desc.get("index_type"), "metric_type": desc.get("metric_type"), "described_k1": raw.get("bm25_k1"),
                "described_b": raw.get("bm25_b"), "fusion": {"rrf": "RRFRanker(60)",
                                                              "weighted": "WeightedRanker(alpha, 1 - alpha, norm_score=True)"}}

    def get(self, id: int) -> Record | None:
        col = self._require_collection()
        rows = self.client.get(col.name, ids=[int(id)], output_fields=["*"], timeout=self.op_timeout_s)
        return record_from_row(rows[0]) if rows else None

    def upsert(self, id: int, vector: np.ndarray, payload: Mapping[str, Any] | None = None) -> None:
        col = self._require_collection()
        self.client.upsert(col.name, [self._row(id, vector, payload)], timeout=self.op_timeout_s)

    def delete(self, id: int) -> None:
        col = self._require_collection()
        self.client.delete(col.name, ids=[int(id)], timeout=self.op_timeout_s)

    def drop(self) -> None:
        if self.collection is not None and self.client is not None and self.client.has_collection(self.collection.name):
            self.client.drop_collection(self.collection.name)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def _index_readback(self, col: CollectionSpec, index_name: str = INDEX_NAME) -> tuple[str, dict[str, Any], dict[str, Any]]:
        desc = self.client.describe_index(col.name, index_name) or {}
        kind, params = read_index_description(desc)
        return kind, params, desc


class MilvusBackend(_MilvusBase):
    """A Milvus server (standalone or cluster), driven by worker processes, each with its own client."""

    name = "milvus"
    # multi_vector: the adapter drives it on Milvus >= 2.4; `create` refuses an older server, naming its version
    capabilities = Capabilities(server=True, get=True, upsert=True, delete=True, filters=True, multi_vector=True,
                                hybrid=True, replication=True, sharding=True, quantization=SERVER_QUANTIZATION,
                                tenants=True)
    Options = MilvusOptions
    hybrid_weighted_norm = "atan"

    @classmethod
    def _older_than(cls, options: BackendOptions, minimum: tuple[int, int]) -> tuple[str, str | None]:
        """(uri, None) when the server is at least `minimum`, else (uri, a clause saying what it is), asking the
        server its version before anything of a run is written."""
        from pymilvus import MilvusClient

        b = cls(options, "")
        try:
            client = MilvusClient(uri=b.uri, **b._client_kwargs())
            version = str(client.get_server_version())
            client.close()
        except Exception as e:  # noqa: BLE001 - unreachable servers are reported by the run itself
            return b.uri, f"could not ask the Milvus server at {b.uri} its version ({type(e).__name__}: {e})"
        v = server_version_tuple(version)
        if v is None or v[:2] < minimum:
            return b.uri, f"the Milvus server at {b.uri} is {version}"
        return b.uri, None

    @classmethod
    def supports(cls, feature: str, options: BackendOptions, **details: Any) -> str | None:
        """Beyond its capabilities, a Milvus server answers by its version (asked before anything of a run is
        written): hybrid search (the BM25 function and hybrid_search) needs Milvus 2.5 or later, multi-vector
        records (several vector fields in one collection) 2.4 or later."""
        reason = super().supports(feature, options, **details)
        if reason is not None or feature not in _SERVER_NEEDS:
            return reason
        minimum, why = _SERVER_NEEDS[feature]
        _, older = cls._older_than(options, minimum)
        return f"{older}, {why}" if older else None

    def _quant_plan(self, collection: CollectionSpec) -> QuantPlan | None:
        o = self.options
        return quantization_plan(collection.index, collection.dim, lite=False, nlist=o.ivf_nlist, nprobe=o.ivf_nprobe)

    @property
    def uri(self) -> str:
        uri = self.options.uri
        if is_lite_uri(uri):
            raise UserError(f"milvus uri '{uri}' is a milvus-lite database, which runs inside the client process",
                            "use backend 'milvus-lite' (configs/milvus-lite.toml) for a .db file")
        return uri

    @property
    def address(self) -> tuple[str, int]:
        return host_port(self.uri, DEFAULT_PORT)

    @classmethod
    def check_available(cls, options: BackendOptions) -> str | None:
        if not installed("pymilvus"):
            return "pymilvus is not installed; install it with `pip install -e '.[servers]'`"
        uri = getattr(options, "uri", DEFAULT_URI)
        if is_lite_uri(uri):
            return f"uri '{uri}' is a milvus-lite database; use backend 'milvus-lite' for it"
        host, port = host_port(uri, DEFAULT_PORT)
        if not tcp_reachable(host, port, 1.0):
            return f"no Milvus server answers at {host}:{port}; {start_hint('milvus')} or set BENCH_MILVUS_URI"
        return None

    def _unreachable(self, detail: str = "") -> UserError:
        host, port = self.address
        return unreachable("milvus", host, port, "milvus", detail)

    def _client_kwargs(self) -> dict[str, Any]:
        o = self.options
        kw: dict[str, Any] = {"timeout": o.connect_timeout_s}
        if o.token.get_secret_value():
            kw["token"] = o.token.get_secret_value()
        if o.db_name:
            kw["db_name"] = o.db_name
        return kw

    def connect(self) -> None:
        host, port = self.address
        if self.client is None and not tcp_reachable(host, port, min(self.options.connect_timeout_s, 2.0)):
            raise self._unreachable()
        super().connect()

    def _choose_consistency(self, collection: CollectionSpec) -> None:
        self._level, self._level_from, self._level_warnings = choose_consistency(
            self.options.consistency_level, collection.reads_own_writes)

    def create(self, collection: CollectionSpec) -> None:
        self._choose_consistency(collection)
        self._tenant_field = collection.tenant_field
        super().create(collection)

    def attach(self, collection: CollectionSpec) -> None:
        self._choose_consistency(collection)
        super().attach(collection)

    def _create_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"consistency_level": self._level, "num_shards": self.options.shards_num}
        if self.options.num_partitions is not None and self._tenant_field:
            kw["num_partitions"] = self.options.num_partitions
        return kw

    def _rows_per_request(self, col: CollectionSpec) -> int | None:
        width = 4 * sum(self._vector_fields(col).values())
        return max(1, int(self.options.insert_request_mb * 1024 * 1024 // width))

    def _load_recipe(self, col: CollectionSpec) -> dict[str, Any]:
        """How this run loaded and built the collection, after Milvus's docs (see `LOAD_DOCS`)."""
        return {"insert": "MilvusClient.insert of row batches", "rows_per_insert_request": getattr(self, "_rows_sent", 0)
                or None, "insert_request_mb": self.options.insert_request_mb,
                "index": "created with the collection; the server builds it on each sealed segment",
                "flush": "once, after the load", "wait": "until describe_index reports no pending rows",
                "load": "load_collection, then each loaded segment's index read back",
                "consistency_level": self._level, "consistency_level_from": self._level_from, "docs": LOAD_DOCS}

    def search(self, vector: np.ndarray, k: int, params: SearchParams) -> Sequence[int]:
        if params.ef_search is not None and params.ef_search < k and self.collection.index.kind == "hnsw" \
                and self._plan is None:
            raise UserError(f"milvus: ef_search={params.ef_search} is below k={k}, which a Milvus HNSW search rejects",
                            "set search.ef_search to at least k")
        return super().search(vector, k, params)

    def _wait_built(self, col: CollectionSpec, deadline: float) -> BuiltIndex:
        """Poll describe_index until no row is pending (its `state` says Finished too early), then load."""
        if col.vectors:
            return self._wait_built_named(col, deadline)
        start = time.monotonic()
        while True:
            desc = self.client.describe_index(col.name, INDEX_NAME) or {}
            pending = int(desc.get("pending_index_rows", 0) or 0)
            indexed, total = int(desc.get("indexed_rows", 0) or 0), int(desc.get("total_rows", 0) or 0)
            if str(desc.get("state", "")) == "Failed":
                raise UserError(f"milvus failed to build the index of '{col.name}': {desc.get('index_state_fail_reason')}",
                                "check the server's logs")
            if pending == 0 and indexed >= total:
                break
            if time.monotonic() > deadline:
                raise self._timeout(deadline - start, f"building the index of '{col.name}' ({indexed} of {total} rows)")
            time.sleep(0.2)
        self.client.load_collection(col.name, timeout=max(1.0, deadline - time.monotonic()), **self._replicas())
        kind, params, desc = self._index_readback(col)
        segments = self.client.list_loaded_segments(col.name)
        seg_rows = [(int(s.num_rows), bool(s.index_name), str(getattr(s, "state_name", s.state))) for s in segments]
        indexed_rows = sum(n for n, has_index, _ in seg_rows if has_index)
        unindexed = [(n, st) for n, has_index, st in seg_rows if not has_index]
        params.update({"segments": len(seg_rows), "indexed_segments": len(seg_rows) - len(unindexed),
                       "consistency_level": self._level, "shards": self.options.shards_num,
                       "load_recipe": self._load_recipe(col), "cluster": self._cluster_readback(col)})
        if self._plan is not None:
            params["search_params"] = search_params(col.metric, None, self._plan, 10)["params"]
        subs = compare_params(col.index, kind, params, self._plan) + params["cluster"].get("substitutions", [])
        if col.tenant_field:
            params["tenants"] = self._tenant_readback(col)
        if col.hybrid is not None:
            params["hybrid"] = hb = self._hybrid_readback(col)
            if (hb["described_k1"], hb["described_b"]) != (col.hybrid.k1, col.hybrid.b):
                subs.append(f"asked for BM25 k1={col.hybrid.k1}, b={col.hybrid.b}; the server reports "
                            f"k1={hb['described_k1']}, b={hb['described_b']}")
        if unindexed and col.index.kind != "flat":
            small = sum(n for n, _ in unindexed)
            subs.append(f"{len(unindexed)} loaded segment(s) holding {small} rows carry no index and are searched "
                        f"by brute force (Milvus indexes only sealed segments of at least {SERVER_MIN_INDEXED_ROWS} "
                        "rows by default)")
        return BuiltIndex(kind=kind, params=params, indexed_count=indexed_rows, substitutions=subs,
                          warnings=list(self._level_warnings))

    def _tenant_readback(self, col: CollectionSpec) -> dict[str, Any]:
        """The partition key field and the partitions it hashes tenants into, as the server describes them
        (Milvus docs: Use Partition Key; Multi-tenancy strategies)."""
        desc = self.client.describe_collection(col.name) or {}
        keys = [f.get("name") for f in desc.get("fields", []) if f.get("is_partition_key")]
        return {"field": col.tenant_field, "partition_key": keys, "num_partitions": desc.get("num_partitions"),
                "how": "one collection, the tenant field its partition key (tenants hashed into its partitions), "
                       "every search filtered on the tenant so it reads only that tenant's partition"}

    def _wait_built_named(self, col: CollectionSpec, deadline: float) -> BuiltIndex:
        """Multi-vector (Milvus >= 2.4; not run against a server here, which is 2.3): every field's index has no
        pending rows, then load and read each index back."""
        start = time.monotonic()
        for f in col.vectors:
            while True:
                desc = self.client.describe_index(col.name, f) or {}
                pending = int(desc.get("pending_index_rows", 0) or 0)
                indexed, total = int(desc.get("indexed_rows", 0) or 0), int(desc.get("total_rows", 0) or 0)
                if str(desc.get("state", "")) == "Failed":
                    raise UserError(f"milvus failed to build the index of '{col.name}.{f}': "
                                    f"{desc.get('index_state_fail_reason')}", "check the server's logs")
                if pending == 0 and indexed >= total:
                    break
                if time.monotonic() > deadline:
                    raise self._timeout(deadline - start, f"building the index of '{col.name}.{f}'")
                time.sleep(0.2)
        self.client.load_collection(col.name, timeout=max(1.0, deadline - time.monotonic()))
        per: dict[str, Any] = {}
        subs: list[str] = []
        indexed_total = 0
        for f in col.vectors:
            kind, params, desc = self._index_readback(col, f)
            params["indexed_rows"] = int(desc.get("indexed_rows", 0) or 0)
            indexed_total += params["indexed_rows"]
            per[f] = {"kind": kind, **params}
            subs.extend(f"vector '{f}': {s}" for s in compare_params(col.index, kind, params))
        kinds = sorted({p["kind"] for p in per.values()})
        return BuiltIndex(kind=kinds[0] if len(kinds) == 1 else "mixed",
                          params={"vectors": per, "consistency_level": self._level,
                                  "load_recipe": self._load_recipe(col)},
                          indexed_count=indexed_total, substitutions=subs, warnings=list(self._level_warnings))

    def _replicas(self) -> dict[str, Any]:
        """load_collection's replica argument, only when more than the default one replica is asked for."""
        return {"replica_number": self.options.replicas} if self.options.replicas > 1 else {}

    def _cluster_readback(self, col: CollectionSpec) -> dict[str, Any]:
        """Shards and in-memory replicas as the server reports them, with the query nodes serving each."""
        try:
            shards = int(self.client.describe_collection(col.name).get("num_shards", 0)) or None
            replicas = self.client.describe_replica(col.name)
        except Exception as e:  # noqa: BLE001 - a server without these calls still ran the workload
            return {"error": f"{type(e).__name__}: {e}"[:200]}
        return replica_readback(shards, replicas, self.options.shards_num, self.options.replicas)

    def _timers(self) -> dict[str, int]:
        """The time tick a request waits for: every one under Strong, a read after its client's write under Session."""
        level = getattr(self, "_level", None)
        if level == "Strong":
            return {f"{TIME_TICK}, which every request waits for under Strong consistency": TIME_TICK_US}
        if level == "Session":
            return {f"{TIME_TICK}, which a read after its own client's write waits for under Session consistency":
                    TIME_TICK_US}
        return {}

    def info(self) -> EngineInfo:
        server = None
        if self.client is not None:
            try:
                server = str(self.client.get_server_version())
            except Exception:  # noqa: BLE001 - info must not fail a finished run
                server = None
        return EngineInfo(engine="milvus", client_version=package_version("pymilvus"), server_version=server,
                          server_address=self.address,
                          latency_timers=self._timers(),
                          extra={"uri": self.options.uri, "consistency_level": getattr(self, "_level", None),
                                 "shards": self.options.shards_num,
                                 "payload_defaults": dict(self._fill_missing)})


class MilvusLiteBackend(_MilvusBase):
    """milvus-lite: the same client calls against the in-process engine on a `.db` folder (driven by threads)."""

    name = "milvus-lite"
    lite = True
    capabilities = Capabilities(in_process=True, server=False, get=True, upsert=True, delete=True, filters=True,
                                multi_vector=True, hybrid=True, quantization=LITE_QUANTIZATION)
    Options = MilvusLiteOptions
    hybrid_weighted_norm = "atan"

    @property
    def uri(self) -> str:
        uri = self.options.uri or str(Path(self.workdir) / "milvus-lite.db")
        if not is_lite_uri(uri):
            raise UserError(f"milvus-lite uri '{uri}' is not a local path ending in .db",
                            "set backend.uri to a path such as ./milvus.db, or use backend 'milvus' for a server")
        return uri

    @classmethod
    def check_available(cls, options: BackendOptions) -> str | None:
        for module, pkg in (("pymilvus", "pymilvus"), ("milvus_lite", "milvus-lite"), ("faiss", "faiss-cpu")):
            if not installed(module):
                return f"{pkg} is not installed; install it with `pip install -e '.[servers]'`"
        return None

    def _unreachable(self, detail: str = "") -> UserError:
        return UserError(f"milvus-lite could not open '{self.uri}' ({detail})",
                         "check that the folder is writable and not opened by another process")

    def connect(self) -> None:
        Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
        super().connect()

    def _wait_built(self, col: CollectionSpec, deadline: float) -> BuiltIndex:
        """Flush happened; release + load builds every flushed segment's index synchronously (milvus-lite
        otherwise builds them in a background thread while describe_index already says Finished)."""
        start = time.monotonic()
        self.client.release_collection(col.name)
        self._lite_load(col.name, deadline)
        if time.monotonic() > deadline:
            raise self._timeout(time.monotonic() - start, f"building the index of '{col.name}'")
        built = self._lite_named(col) if col.vectors else self._lite_one(col)
        built.params["load_recipe"] = {
            "insert": "MilvusClient.insert of each batch", "index": "created with the collection",
            "flush": "once, after the load", "load": "release + load_collection, which builds every flushed "
            "segment's index in this process before returning", "docs": LOAD_DOCS[2:]}
        return built

    def _lite_load(self, name: str, deadline: float) -> None:
        """load_collection, again while milvus-lite's background thread is still writing a file that the load
        reads ("read error in ... .idx: 4470 != 5016 (Resource temporarily unavailable)", or for a FLAT index
        "Failed to read all data for array ... (file seems not fully written?)"; each seen here once in a few
        hundred loads); any other error, or the deadline, ends it."""
        from pymilvus.exceptions import MilvusException

        while True:
            try:
                self.client.load_collection(name)
                return
            except MilvusException as e:
                msg = str(e)
                partial = ("read error" in msg and "Resource temporarily unavailable" in msg) or (
                    "Failed to read all data" in msg and "not fully written" in msg)
                if not partial or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _lite_one(self, col: CollectionSpec) -> BuiltIndex:
        kind, params, _ = self._index_readback(col)
        subs = [LITE_CAVEAT]
        state = lite_engine_state(self.uri, col.name)
        if state is None:
            subs.append("could not read milvus-lite's segments (unknown version); the index kind and parameters "
                        "are what describe_index reports, not verified")
            subs.extend(compare_params(col.index, kind, params, self._plan))
            return BuiltIndex(kind=kind, params=params, substitutions=subs)
        segs = state["segments"]
        built_kinds = sorted({str(s["index"]) for s in segs})
        indexed = sum(s["rows"] for s in segs if s["index"] == col.index.kind)
        params.update({"described_m": params.pop("m", None), "described_ef_construction": params.pop("ef_construction", None),
                       "segments": len(segs), "segment_indexes": built_kinds, "memtable_rows": state["memtable_rows"]})
        hnsw = [s for s in segs if s["index"] == "hnsw"]
        if hnsw:
            params["m"] = _one_or_list([s["m"] for s in hnsw])
            params["ef_construction"] = _one_or_list([s["ef_construction"] for s in hnsw])
        real_kind = built_kinds[0] if len(built_kinds) == 1 else ("mixed" if built_kinds else "none")
        if real_kind == "None":
            real_kind = "none"
        params["segment_index_classes"] = sorted({str(s["index_class"]) for s in segs})
        if self._plan is not None:
            params["quantization"] = _one_or_list([str(s["quantization"]) for s in segs]) if segs else None
            subs.extend(compare_params(col.index, real_kind, params, self._plan))
        else:
            subs.extend(compare_params(col.index, real_kind,
                                       {**params, "index_type": "/".join(built_kinds) or "no index"}))
        if state["memtable_rows"]:
            subs.append(f"{state['memtable_rows']} rows are still unflushed in milvus-lite's memtable and are "
                        "searched by brute force")
        if col.hybrid is not None:
            params["hybrid"] = self._lite_hybrid_readback(col, subs)
        return BuiltIndex(kind=real_kind, params=params, indexed_count=indexed, substitutions=subs)

    def _lite_named(self, col: CollectionSpec) -> BuiltIndex:
        """Multi-vector read-back: each field's index as the engine's segments really carry it."""
        subs = [LITE_CAVEAT]
        per: dict[str, Any] = {}
        indexed_total = 0
        memtable = 0
        for f in col.vectors:
            kind, params, _ = self._index_readback(col, f)
            state = lite_engine_state(self.uri, col.name, f)
            if state is None:
                subs.append(f"vector '{f}': could not read milvus-lite's segments (unknown version); its index is what "
                            "describe_index reports, not verified")
                per[f] = {"kind": kind, **params}
                continue
            segs = state["segments"]
            built = sorted({str(s["index"]) for s in segs})
            real = built[0] if len(built) == 1 else ("mixed" if built else "none")
            real = "none" if real == "None" else real
            hnsw = [s for s in segs if s["index"] == "hnsw"]
            info: dict[str, Any] = {"kind": real, "metric_type": params.get("metric_type"), "segments": len(segs),
                                    "segment_indexes": built,
                                    "indexed_rows": sum(s["rows"] for s in segs if s["index"] == col.index.kind)}
            if hnsw:
                info["m"] = _one_or_list([s["m"] for s in hnsw])
                info["ef_construction"] = _one_or_list([s["ef_construction"] for s in hnsw])
            per[f] = info
            indexed_total += info["indexed_rows"]
            memtable = max(memtable, state["memtable_rows"])
            subs.extend(f"vector '{f}': {s}" for s in
                        compare_params(col.index, real, {**info, "index_type": "/".join(built) or "no index"}))
        if memtable:
            subs.append(f"{memtable} rows are still unflushed in milvus-lite's memtable and are searched by brute force")
        kinds = sorted({str(p["kind"]) for p in per.values()})
        return BuiltIndex(kind=kinds[0] if len(kinds) == 1 else "mixed",
                          params={"vectors": per, "memtable_rows": memtable},
                          indexed_count=indexed_total, substitutions=subs)

    def _lite_hybrid_readback(self, col: CollectionSpec, subs: list[str]) -> dict[str, Any]:
        """What milvus-lite's BM25 scorers really use: one BM25 search builds each segment's scorer, whose k1, b,
        document count and avgdl are then read from the engine's objects."""
        h = col.hybrid
        assert h is not None
        out = self._hybrid_readback(col)
        self.client.search(col.name, data=["warm"], anns_field=SPARSE_FIELD, limit=1,
                           search_params={"metric_type": "BM25"})
        scorers = []
        try:
            from milvus_lite.server_manager import server_manager_instance

            entry = server_manager_instance._servers.get(os.path.abspath(self.uri))
            lc = entry[1].get_collection(col.name)
            for seg in list(lc._segment_cache.values()):
                idx = seg.sparse_indexes.get(SPARSE_FIELD)
                if idx is not None:
                    scorers.append({"k1": idx.k1, "b": idx.b, "docs": idx.doc_count, "avgdl": round(idx.avgdl, 3)})
        except Exception:  # noqa: BLE001 - internals of another version
            scorers = []
        out["segment_scorers"] = scorers
        if not scorers:
            subs.append("could not read milvus-lite's BM25 scorers; k1 and b are what describe_index reports")
            return out
        ks = sorted({(s["k1"], s["b"]) for s in scorers})
        if ks != [(h.k1, h.b)]:
            subs.append(f"asked for BM25 k1={h.k1}, b={h.b}; milvus-lite's scorers use (k1, b) = {ks}")
        if len(scorers) > 1:
            subs.append(f"milvus-lite keeps BM25 statistics per segment ({len(scorers)} segments of "
                        f"{sorted(s['docs'] for s in scorers)} records), not over the collection: its IDF and avgdl "
                        "differ from the exact reference's")
        return out

    def info(self) -> EngineInfo:
        server = None
        if self.client is not None:
            try:
                server = str(self.client.get_server_version())
            except Exception:  # noqa: BLE001
                server = None
        return EngineInfo(engine="milvus-lite", client_version=package_version("pymilvus"),
                          server_version=server or package_version("milvus-lite"),
                          extra={"uri": self.uri, "milvus_lite_version": package_version("milvus-lite"),
                                 "caveat": LITE_CAVEAT})
