"""The backend contract.

Small, synchronous and explicit. A backend adapter wraps one engine; the harness drives it through these calls
and never knows which engine it is talking to. Rules every adapter keeps:

- It reads back from the engine the index that was really built and reports it in `BuiltIndex`. Where an
  engine silently changes the request (a lite edition that builds FLAT when asked for HNSW, an M it caps),
  `BuiltIndex.substitutions` says so, and the run records it and warns.
- It hides no latency: no client-side caching, no batching of per-operation calls.
- `in_process` adapters are driven by threads in one process; client-server adapters by N processes, each
  with its own adapter instance (and so its own client), created by `connect()` in the worker process.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from bench.backends.query import Filter
from bench.backends.secrets import Secret, public_options, redact_command  # noqa: F401 - the contract's names


def package_version(name: str) -> str | None:
    """The installed version of a client package, or None when it is not installed."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


class BackendOptions(BaseModel):
    """Connection and engine settings of one backend, from `configs/<name>.toml` or `--set backend.X=...`.

    Each adapter subclasses this with its own fields; unknown keys are rejected, and so are NaN and infinity.
    A key, token or password is a `Secret` field (bench.backends.secrets): it may be given as `env:NAME` or
    `file:PATH`, and results store only `public_options(options)`, where it is a fingerprint.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # What an hour of the engine's machine costs (every backend; `bench run --price-per-hour`): compare and report
    # show queries per currency unit and the cost of a million queries beside QPS. Not an engine setting.
    price_per_hour: float | None = Field(None, gt=0, description="price of one hour of the engine's machine")
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code of price_per_hour, e.g. USD")


@dataclass(frozen=True)
class Capabilities:
    """What the adapter drives through bench (not everything the engine can do): `bench compare` prints it as the
    capability matrix, and the runner refuses a workload that needs what the adapter does not declare."""

    in_process: bool = False  # driven by threads in one process, not by worker processes
    get: bool = True  # fetch a record by id
    upsert: bool = True
    delete: bool = True
    filters: bool = False  # payload filters pushed into the search
    hybrid: bool = False  # native BM25/sparse + dense fusion
    quantization: tuple[str, ...] = ()  # e.g. ("int8", "pq", "binary")
    multi_vector: bool = False
    # replicas the adapter configures or drives: pgvector sends searches to read replicas itself (served_by per
    # node; measured live here), Qdrant, Milvus and Weaviate ask their cluster for a replication factor and read
    # back its placement (their cluster profiles are not run on this machine): docs/engines.md
    replication: bool = False
    sharding: bool = False  # shards the adapter asks the engine for and reads back; no engine shards live here
    server: bool = False  # needs a server (a URL / URI in its options)
    reopen: bool = False  # in-process: `reopen()` closes the engine and opens the collection again from its files
    # multi-tenancy the engine's native way (`CollectionSpec.tenant_field`, `SearchParams.tenant`)
    tenants: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IndexSpec:
    """Engine-neutral index request."""

    kind: str = "hnsw"  # "hnsw" or "flat"
    m: int = 16
    ef_construction: int = 200
    quantization: str | None = None  # None, "int8", "fp16", "pq", "binary"
    rescore: bool = True  # quantized: rescore the candidates with the original vectors


@dataclass(frozen=True)
class HybridSpec:
    """Hybrid search: the record's text is in payload field `text_field`; the engine builds its BM25 side over it.
    `avgdl` (the corpus' mean tokens per record, by the harness' tokenizer) is for adapters that compute BM25
    document weights themselves (sparse vectors with an IDF modifier)."""

    text_field: str = "text"
    k1: float = 1.2
    b: float = 0.75
    avgdl: float | None = None


@dataclass(frozen=True)
class CollectionSpec:
    name: str
    dim: int
    metric: str  # "cosine", "l2" or "ip"
    index: IndexSpec = field(default_factory=IndexSpec)
    payload_fields: Mapping[str, str] = field(default_factory=dict)  # field name -> "int" | "keyword" | "text"
    ef_search: int | None = None  # the first ef_search the run searches with, for engines that fix it per collection
    # Multi-vector records: several named vectors per record, name -> dimension (empty = one unnamed vector of
    # `dim`). Each named vector gets its own index; `insert` then takes {name: (n, dim) array} and a search names
    # the vector it searches in `SearchParams.vector_name`. `vector_metrics` may give a name its own metric
    # (default: `metric`).
    vectors: Mapping[str, int] = field(default_factory=dict)
    vector_metrics: Mapping[str, str] = field(default_factory=dict)

    hybrid: HybridSpec | None = None  # set for hybrid workloads
    # The workload reads, from the client that wrote them, records it wrote during the run (a YCSB mix with
    # writes); False: nothing reads its own writes (search-only). An engine with tunable consistency picks the
    # weakest level that still guarantees this (set by the kind scenario, `KindScenario.collection`).
    reads_own_writes: bool = False
    # Multi-tenant collections: the keyword payload field naming each record's tenant (None: one tenant). The
    # adapter keeps tenants apart its engine's native way (a partition key, a tenant payload index, one tenant
    # shard or collection each, a tenant column) and confines a search with `SearchParams.tenant` to that tenant.
    tenant_field: str | None = None

    def metric_of(self, vector_name: str) -> str:
        """The metric of a named vector (its own, else the collection's)."""
        return self.vector_metrics.get(vector_name, self.metric)


@dataclass
class BuiltIndex:
    """What the engine reports it built, read back from the engine, not echoed from the request."""

    kind: str  # "hnsw", "flat", "ivf", ...
    params: dict[str, Any] = field(default_factory=dict)  # e.g. {"m": 64, "ef_construction": 200}
    indexed_count: int | None = None  # vectors in the index, if the engine reports it
    total_count: int | None = None  # vectors stored
    substitutions: list[str] = field(default_factory=list)  # human-readable: what differs from the request
    # human-readable: what the run must say although it was built as asked (a configured setting known to
    # distort the measurement); the run warns with each, as with substitutions
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EngineInfo:
    engine: str  # engine name, e.g. "qdrant-edge"
    client_version: str | None = None
    server_version: str | None = None
    index_size_bytes: int | None = None  # on disk, where the engine exposes it
    memory_bytes: int | None = None
    server_pid: int | None = None  # for resource sampling of a server on this machine, when known
    server_address: tuple[str, int] | None = None  # (host, port) the client talks to; the harness finds a local pid by it
    extra: dict[str, Any] = field(default_factory=dict)
    # engine timers a request may wait on, as configured: what -> period in microseconds (e.g. Milvus' time tick
    # under Strong consistency). A latency that sits on one measures the timer, and the run says so.
    latency_timers: dict[str, int] = field(default_factory=dict)
    # the server nodes searches are spread over, when there is more than one (read replicas: "replica1", ...);
    # None = one endpoint. It is a key of every row (`read_nodes`).
    read_nodes: list[str] | None = None
    node_addresses: list[tuple[str, int]] | None = None  # every server of the engine (primary first), if several

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ServerNode:
    """One server of an engine that runs as several on this machine's reach (a primary and its read replicas), as
    its configuration names it: what `bench fault --node NAME` kills, and how the engine recovers from that."""

    name: str  # primary, replica1, ...
    role: str  # primary | replica
    address: tuple[str, int]
    # shell command run after the kill: the failover (promote a standby) for the primary, a restart for a replica;
    # None = the configuration names none
    recover_cmd: str | None
    # option values that point the backend at this node alone, so check_available probes just it
    probe_options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Record:
    id: int
    vector: np.ndarray | None
    payload: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class SearchParams:
    """Per-query search settings, engine-neutral."""

    ef_search: int | None = None
    # the payload filter, a typed tree (`bench.backends.query`: Eq, Range, And, Or) each adapter translates with
    # its own ConditionParser; None = unfiltered
    filter: Filter | None = None
    vector_name: str | None = None  # multi-vector collections: which named vector to search (None = the only one)
    # hybrid search (BM25 + dense, fused by the engine): the query text, "rrf" or "weighted", the dense side's
    # weight (weighted), and the per-side prefetch limit
    text: str | None = None
    fusion: str | None = None
    alpha: float | None = None
    candidates: int | None = None
    # multi-tenant collections (`CollectionSpec.tenant_field`): the tenant the search is confined to
    tenant: str | None = None


def installed(*modules: str) -> bool:
    """Whether every module can be imported, found without importing it (an engine's client can take seconds to
    import; `bench backends` asks about all of them)."""
    from importlib.util import find_spec

    try:
        return all(find_spec(m) is not None for m in modules)
    except (ImportError, ValueError):
        return False


class Backend(ABC):
    """One engine. Instances are not shared between threads unless `capabilities.in_process` is true."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()
    Options: ClassVar[type[BackendOptions]] = BackendOptions
    # hybrid: how the engine normalises each side's scores before a weighted fusion ("minmax" as Weaviate's
    # relativeScoreFusion, "atan" as Milvus' WeightedRanker); None when it has no alpha-weighted fusion
    hybrid_weighted_norm: ClassVar[str | None] = None

    @classmethod
    def supports(cls, feature: str, options: BackendOptions, **details: Any) -> str | None:
        """None when this adapter (with these options) can do `feature`, else one sentence why not. The one
        question scenarios ask an engine; `details` narrow it (e.g. `supports("hybrid", o, fusion="weighted")`,
        `supports("quantization", o, kind="pq")`). It may ask a server its version, before anything is written:
        an adapter whose answer depends on more than its capabilities overrides this and calls it first.

        Features: "filters" (the typed filter tree of `bench.backends.query`), "range_filters" (its `Range`
        nodes; by default every adapter with filters translates them), "hybrid", "multi_vector",
        "quantization", "get", "upsert", "delete", "reopen", "tenants" (multi-tenancy, `CollectionSpec.tenant_field`),
        "remote_workers" (driven by workers on other machines).
        """
        caps = cls.capabilities
        if feature == "hybrid":
            if not caps.hybrid:
                return f"{cls.name} has no native hybrid (BM25 + dense) search through bench"
            if details.get("fusion") == "weighted" and cls.hybrid_weighted_norm is None:
                return f"{cls.name} has no alpha-weighted score fusion"
            return None
        if feature == "multi_vector":
            return None if caps.multi_vector else f"{cls.name} cannot store several named vectors per record through bench"
        if feature == "quantization":
            kind = details.get("kind")
            if kind and kind not in caps.quantization:
                return (f"{cls.name} does not offer quantization '{kind}' (it offers: "
                        f"{', '.join(caps.quantization) or 'none'})")
            return None
        if feature == "remote_workers":  # workers in other processes or machines (bench run --cluster)
            return None if caps.server else (f"{cls.name} runs inside the harness process, so workers on other "
                                              "machines cannot reach its data")
        if feature == "range_filters":
            return None if caps.filters else f"{cls.name} does not support range filters through bench"
        flag = getattr(caps, feature, None)
        if not isinstance(flag, bool):
            raise ValueError(f"unknown feature {feature!r}")
        return None if flag else f"{cls.name} does not support {feature.replace('_', ' ')} through bench"

    def __init__(self, options: BackendOptions, workdir: str):
        """`workdir` is a private folder for this run (for embedded engines' files)."""
        self.options = options
        self.workdir = workdir

    # -- availability -------------------------------------------------------------------------------------
    @classmethod
    def server_nodes(cls, options: BackendOptions) -> list[ServerNode]:
        """The servers of a replicated engine as `options` name them ([]: one endpoint, or a cluster the engine
        manages itself behind one address)."""
        return []

    @classmethod
    def check_available(cls, options: BackendOptions) -> str | None:
        """None when usable here; otherwise one sentence saying why not and how to fix it."""
        return None

    # -- lifecycle ----------------------------------------------------------------------------------------
    def load_batch_size(self, requested: int) -> int:
        """Records per `insert` call while the run loads, given the workload's `run.batch_size`. An adapter whose
        engine documents a bulk-load request size (Chroma's max batch size) returns it; `insert` still takes
        any size."""
        return requested

    op_timeout_s: float | None = None  # run.op_timeout_s once set_op_timeout was called, else None (no timeout)

    def set_op_timeout(self, seconds: float) -> None:
        """From now on every get/upsert/delete/search gives up after `seconds`, raising (the driver counts it as
        an error). Called on each worker's adapter before its timed phases. An adapter whose client has a
        per-call timeout applies it (override, calling super()); one whose client has none relies on the
        pool's watchdog (bench.load.pool), which ends a phase whose worker stays silent past
        run.op_timeout_s + run.phase_margin_s."""
        self.op_timeout_s = seconds

    def connect(self) -> None:  # noqa: B027 - optional hook
        """Open the client. Raise ServerUnreachable with a hint when the server does not answer."""

    def attach(self, collection: CollectionSpec) -> None:  # noqa: B027 - optional hook
        """Open an existing collection made by another instance (a worker process after the parent loaded it)."""

    @abstractmethod
    def create(self, collection: CollectionSpec) -> None:
        """Create the collection (dropping any previous one of the same name)."""

    @abstractmethod
    def insert(self, ids: np.ndarray, vectors: np.ndarray, payloads: Sequence[Mapping[str, Any]] | None = None) -> None:
        """Insert one batch. ids: int64 (n,), vectors: float32 (n, dim); for a multi-vector collection
        (`CollectionSpec.vectors`) a mapping {name: float32 (n, dim of that name)} instead."""

    @abstractmethod
    def wait_indexed(self, timeout_s: float) -> BuiltIndex:
        """Block until the index is built and searchable; report what the engine built."""

    @abstractmethod
    def search(self, vector: np.ndarray, k: int, params: SearchParams) -> Sequence[int]:
        """Return the ids of the k nearest neighbours, best first. `vector` is a float32 row, or one item of
        `prepare_queries`."""

    def prepare_queries(self, queries: np.ndarray) -> Sequence[Any]:
        """A phase's query vectors in the form this engine's client takes, converted once before the clock
        starts (as ann-benchmarks' prepare_query), so a timed search does not convert its vector again. Item i
        is query i; `search` takes these and plain float32 rows alike (scans and probes search stored rows).
        Default: the rows as they are."""
        return list(queries)

    def served_by(self) -> dict[str, int]:
        """Searches this client sent to each server node since it connected, by node name ({}: one endpoint).
        A phase's share goes into its rows' served_by column."""
        return {}

    def get(self, id: int) -> Record | None:
        raise NotImplementedError(f"{self.name} does not support get")

    def upsert(self, id: int, vector: np.ndarray, payload: Mapping[str, Any] | None = None) -> None:
        raise NotImplementedError(f"{self.name} does not support upsert")

    def delete(self, id: int) -> None:
        raise NotImplementedError(f"{self.name} does not support delete")

    @abstractmethod
    def info(self) -> EngineInfo:
        """Versions, index settings as read back, memory and on-disk size where known."""

    @abstractmethod
    def drop(self) -> None:
        """Remove the collection."""

    def reopen(self) -> None:
        """In-process engines (`capabilities.reopen`): close the engine and open the same collection again from
        its files, as a restarted process would (the next search is a cold one)."""
        raise NotImplementedError(f"{self.name} cannot be reopened")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the client."""
