"""Chroma: `chroma` (embedded, `chromadb.PersistentClient` under the run's workdir) and `chroma-server`
(`chromadb.HttpClient` against a `chroma run` server).

Index settings go in the collection's `configuration={"hnsw": {...}}` (chromadb 1.x; the old `hnsw:*` metadata
keys are the legacy form): `space` (cosine | l2 | ip), `max_neighbors` (M), `ef_construction`, `ef_search`.
What was built is read back from the collection's stored configuration. Chroma builds only HNSW; a request for
a flat index gets HNSW and a substitution note.

ef_search cannot be set per query in Chroma: it is a collection setting, and the engine applies it when it
loads the HNSW index into memory (then keeps the loaded index cached). So when a query asks for another
ef_search than the current one:
- `chroma` (embedded) modifies the collection's `ef_search` and reopens its client, so the engine reloads the
  index with the new value. That happens once per change (between phases), inside the first search that asks
  for it, never per query; the value in force is recorded in `info().extra["ef_search"]`.
- `chroma-server` cannot make a running server reload the index, so a changed ef_search would be recorded but
  not applied. Rather than mislabel results, it raises a UserError; create the collection with the wanted
  value through the `ef_search` option (`--set backend.ef_search=N`), one value per run.

Filters: the typed filter tree (`bench.backends.query`) becomes a `where` document (`ChromaConditionParser`):
`{field: {"$eq": v}}` for Eq, `{field: {"$gte": a}}` for a one-bound Range (two bounds: their `$and`), `$and` /
`$or` for And / Or (Chroma wants at least two items in either, so a one-item And / Or is its item). Payloads are
stored as metadata, so every payload field is filterable; `$gt`/`$lt` compare numbers only.

Multi-tenancy (`CollectionSpec.tenant_field`): one collection per tenant, as Chroma's docs advise for tenant
isolation within a database (`<collection>_<tenant>`, each with the run's HNSW configuration, created as its
first records arrive); the run's own collection stays empty and keeps the configuration read back. A search with
`SearchParams.tenant` queries that tenant's collection; worker processes open every tenant collection when they
attach, so no timed search pays for a lookup.

Chroma single-node applies writes to its HNSW index before `add` returns; it exposes no indexing progress
(`get_indexing_status` is a distributed-Chroma feature), so `wait_indexed` reports the stored count and
`indexed_count=None` when the engine does not say.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from pydantic import Field

from bench.backends._net import start_hint
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
from bench.backends.query import ConditionParser, Filter
from bench.errors import BackendUnavailable, ServerUnreachable, UserError

DEFAULT_URL = "http://127.0.0.1:8000"
_MISSING = "chromadb is not installed; install it with `pip install -e '.[embedded]'`"


class ChromaOptions(BackendOptions):
    ef_search: int | None = Field(None, ge=1, le=100_000,  # the same bound as the workload's search.ef_search
                                   description="ef_search the collection is created with (None = Chroma's 100)")
    num_threads: int | None = Field(None, ge=1, description="HNSW build/search threads (None = Chroma's default)")
    batch_size: int | None = Field(None, ge=2, description="Chroma's HNSW batch size (None = its default)")
    sync_threshold: int | None = Field(None, ge=2, description="vectors between index syncs to disk (None = default)")


class ChromaServerOptions(ChromaOptions):
    url: str = Field(default_factory=lambda: os.environ.get("BENCH_CHROMA_URL", DEFAULT_URL),
                     description="the Chroma server; default from BENCH_CHROMA_URL")


class ChromaConditionParser(ConditionParser[dict[str, Any]]):
    """The filter tree as a Chroma `where` document."""

    def build_eq(self, field: str, value: int | str) -> dict[str, Any]:
        return {field: {"$eq": value}}

    def build_range(self, field: str, **bounds: float) -> dict[str, Any]:
        return self.build_and([{field: {f"${op}": v}} for op, v in bounds.items()])

    def build_and(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return items[0] if len(items) == 1 else {"$and": items}

    def build_or(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return items[0] if len(items) == 1 else {"$or": items}


def where(flt: Filter | None) -> dict[str, Any] | None:
    """The `where` of one query (None for no filter)."""
    return None if flt is None else ChromaConditionParser().parse(flt)


def _chromadb() -> Any:
    try:
        import chromadb
    except ImportError:
        raise BackendUnavailable(_MISSING.capitalize()) from None
    return chromadb


def _settings() -> Any:
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False)


class _ChromaBase(Backend):
    """Everything but how the client is made."""

    options: ChromaOptions

    # -- client -------------------------------------------------------------------------------------------
    @abstractmethod
    def _open_client(self) -> Any: ...

    def connect(self) -> None:
        self.chromadb = _chromadb()
        self.client = self._open_client()
        self._lock = threading.Lock()
        self._ef: int | None = None
        self._ef_changes: list[int] = []

    def _ensure(self) -> None:
        if not hasattr(self, "client"):
            self.connect()

    # -- collection ---------------------------------------------------------------------------------------
    def _hnsw_config(self, collection: CollectionSpec) -> dict[str, Any]:
        if collection.metric not in ("cosine", "l2", "ip"):
            raise UserError(f"{self.name} does not support metric '{collection.metric}'", "use cosine, l2 or ip")
        if collection.index.quantization:
            raise UserError(f"{self.name} does not offer quantization '{collection.index.quantization}' (Chroma stores "
                            "float32 vectors), so the run is skipped rather than built unquantized",
                            "remove index.quantization or choose a backend that lists it (`bench backends`)")
        cfg: dict[str, Any] = {"space": collection.metric, "max_neighbors": collection.index.m,
                               "ef_construction": collection.index.ef_construction}
        o = self.options
        for key in ("ef_search", "num_threads", "batch_size", "sync_threshold"):
            value = getattr(o, key)
            if value is not None:
                cfg[key] = value
        if "ef_search" not in cfg and collection.ef_search is not None:
            cfg["ef_search"] = collection.ef_search  # the run's first value, so the first searches need no change
        return cfg

    def create(self, collection: CollectionSpec) -> None:
        self._ensure()
        try:
            self.client.delete_collection(collection.name)
        except (self.chromadb.errors.NotFoundError, ValueError):
            pass
        try:
            self.col = self.client.create_collection(collection.name, configuration={"hnsw": self._hnsw_config(collection)},
                                                     embedding_function=None)
        except self.chromadb.errors.InvalidArgumentError as e:
            raise UserError(f"{self.name} rejected collection '{collection.name}' ({e})",
                            "use 3-512 characters from [a-zA-Z0-9._-]") from None
        self.collection = collection
        self._ef = self._stored_hnsw().get("ef_search")
        self._max_batch = int(self.client.get_max_batch_size())
        self._tenants: dict[str, Any] = {}

    # -- tenants: one collection each ---------------------------------------------------------------------
    def _tenant_name(self, tenant: str) -> str:
        return f"{self.collection.name}_{tenant}"

    def _tenant_names(self) -> list[str]:
        """The tenants of this run's tenant collections, as the engine lists them."""
        prefix, out, offset = f"{self.collection.name}_", [], 0
        while True:
            page = self.client.list_collections(limit=1000, offset=offset)
            out += [c.name[len(prefix):] for c in page if c.name.startswith(prefix)]
            if len(page) < 1000:
                return out
            offset += 1000

    def _tenant_collections(self) -> dict[str, Any]:
        """Every tenant collection of this run, by tenant."""
        return {t: self.client.get_collection(self._tenant_name(t), embedding_function=None)
                for t in self._tenant_names()}

    def _tenant_add(self, tenant: str) -> Any:
        col = self._tenants.get(tenant)
        if col is None:
            col = self._tenants[tenant] = self.client.get_or_create_collection(
                self._tenant_name(tenant), configuration={"hnsw": self._hnsw_config(self.collection)},
                embedding_function=None)
        return col

    def _target(self, tenant: str | None) -> Any:
        if tenant is None:
            return self.col
        col = self._tenants.get(tenant)
        if col is None:
            raise UserError(f"{self.name}: tenant '{tenant}' has no collection ({self._tenant_name(tenant)})",
                            "search only tenants that were loaded")
        return col

    def attach(self, collection: CollectionSpec) -> None:
        self._ensure()
        try:
            self.col = self.client.get_collection(collection.name, embedding_function=None)
        except self.chromadb.errors.NotFoundError:
            raise UserError(f"{self.name} has no collection '{collection.name}'",
                            "create and load it first (the parent process does this)") from None
        self.collection = collection
        self._ef = self._stored_hnsw().get("ef_search")
        self._max_batch = int(self.client.get_max_batch_size())
        self._tenants = self._tenant_collections() if collection.tenant_field else {}

    def _stored_hnsw(self) -> dict[str, Any]:
        """The HNSW configuration as the engine stores it (fetched again, not the client's copy)."""
        col = self.client.get_collection(self.collection.name, embedding_function=None)
        return dict((col.configuration_json or {}).get("hnsw") or {})

    # -- writes -------------------------------------------------------------------------------------------
    def load_batch_size(self, requested: int) -> int:
        """Chroma's own bulk size: `client.get_max_batch_size()` records per `add` (Chroma cookbook, Batching: the
        most one add takes, which its SQLite backend bounds). Each add is one write transaction and one index
        update, so fewer, larger ones load faster (measured here: about 15% at 20,000 x 768); `insert` splits
        anything larger."""
        return max(int(requested), getattr(self, "_max_batch", 0))

    @staticmethod
    def _metadata(payload: Mapping[str, Any] | None) -> dict[str, Any] | None:
        return dict(payload) if payload else None

    def insert(self, ids: np.ndarray, vectors: np.ndarray, payloads: Sequence[Mapping[str, Any]] | None = None) -> None:
        field = self.collection.tenant_field
        if field and payloads:  # one collection per tenant: each tenant's records to its own
            tenants = np.asarray([p[field] for p in payloads])
            for t in np.unique(tenants).tolist():
                sel = np.flatnonzero(tenants == t)
                self._add(self._tenant_add(t), ids[sel], vectors[sel], [payloads[j] for j in sel])
            return
        self._add(self.col, ids, vectors, payloads)

    def _add(self, col: Any, ids: np.ndarray, vectors: np.ndarray, payloads: Sequence[Mapping[str, Any]] | None) -> None:
        vecs = np.ascontiguousarray(vectors, dtype=np.float32)
        for s in range(0, len(ids), self._max_batch):
            e = min(s + self._max_batch, len(ids))
            metas = None
            if payloads and any(payloads[s:e]):
                metas = [self._metadata(p) for p in payloads[s:e]]
            col.add(ids=[str(int(i)) for i in ids[s:e]], embeddings=vecs[s:e], metadatas=metas)
            self._rows_per_add = max(getattr(self, "_rows_per_add", 0), e - s)

    def upsert(self, id: int, vector: np.ndarray, payload: Mapping[str, Any] | None = None) -> None:
        """Replaces the vector; a payload given replaces the stored metadata, None keeps it (Chroma's upsert)."""
        self.col.upsert(ids=[str(int(id))], embeddings=[np.asarray(vector, dtype=np.float32)],
                        metadatas=[self._metadata(payload)] if payload else None)

    def delete(self, id: int) -> None:
        self.col.delete(ids=[str(int(id))])

    def get(self, id: int) -> Record | None:
        r = self.col.get(ids=[str(int(id))], include=["embeddings", "metadatas"])
        if not r["ids"]:
            return None
        metas = r.get("metadatas")
        return Record(id=int(r["ids"][0]), vector=np.asarray(r["embeddings"][0], dtype=np.float32),
                      payload=metas[0] if metas else None)

    # -- index --------------------------------------------------------------------------------------------
    def wait_indexed(self, timeout_s: float) -> BuiltIndex:
        hnsw = self._stored_hnsw()
        total = int(self.col.count()) + sum(int(c.count()) for c in self._tenants.values())
        indexed = None
        try:
            status = self.col.get_indexing_status()
            indexed = int(status.num_indexed_ops)
            if status.num_unindexed_ops:
                raise UserError(f"{self.name} reports {status.num_unindexed_ops} operations not yet indexed",
                                "raise run.index_timeout_s")
        except (NotImplementedError, self.chromadb.errors.ChromaError, AttributeError):
            pass  # single-node Chroma indexes on write and does not report progress
        req = self.collection.index
        params = {"m": hnsw.get("max_neighbors"), "ef_construction": hnsw.get("ef_construction"),
                  "ef_search": hnsw.get("ef_search"), "space": hnsw.get("space")}
        params.update({k: hnsw[k] for k in ("num_threads", "batch_size", "sync_threshold", "resize_factor") if k in hnsw})
        subs: list[str] = []
        if req.kind != "hnsw":
            subs.append(f"asked for a {req.kind} index, but Chroma builds only HNSW")
        if (params["m"], params["ef_construction"]) != (req.m, req.ef_construction):
            subs.append(f"asked for m={req.m}, ef_construction={req.ef_construction}; Chroma stores "
                        f"max_neighbors={params['m']}, ef_construction={params['ef_construction']}")
        if params["space"] != self.collection.metric:
            subs.append(f"asked for metric {self.collection.metric}; Chroma stores space {params['space']}")
        params["load_recipe"] = {"add": "collection.add of float32 arrays; Chroma applies each add to its HNSW "
                                 "index before returning", "max_batch_size": getattr(self, "_max_batch", None),
                                 "rows_per_add": getattr(self, "_rows_per_add", 0) or None,
                                 "docs": ["Chroma cookbook: Batching (client.get_max_batch_size(), create_batches)"]}
        if self.collection.tenant_field:
            tenant_hnsw = [dict((c.configuration_json or {}).get("hnsw") or {}) for c in self._tenants.values()]
            params["tenants"] = {"field": self.collection.tenant_field, "collections": len(self._tenants),
                                 "how": "one collection per tenant, each with the run's HNSW configuration",
                                 "same_hnsw": all(h == hnsw for h in tenant_hnsw)}
            if not params["tenants"]["same_hnsw"]:
                subs.append("some tenant collections store another HNSW configuration than the run's collection")
        return BuiltIndex(kind="hnsw", params=params, indexed_count=indexed, total_count=total, substitutions=subs)

    # -- search -------------------------------------------------------------------------------------------
    @abstractmethod
    def _apply_ef(self, ef: int) -> None: ...

    def search(self, vector: np.ndarray, k: int, params: SearchParams) -> Sequence[int]:
        ef = params.ef_search
        if ef is not None and ef != self._ef:
            with self._lock:
                if ef != self._ef:
                    self._apply_ef(ef)
        r = self._target(params.tenant).query(query_embeddings=[np.asarray(vector, dtype=np.float32)],
                                              n_results=int(k), where=where(params.filter), include=[])
        return [int(i) for i in r["ids"][0]]

    # -- info and teardown --------------------------------------------------------------------------------
    def _info(self, server_version: str | None, address: tuple[str, int] | None, size: int | None) -> EngineInfo:
        extra: dict[str, Any] = {"ef_search": self._ef, "ef_search_changes": list(self._ef_changes)}
        if hasattr(self, "collection"):
            extra["hnsw"] = self._stored_hnsw()
        return EngineInfo(engine=self.name, client_version=version("chromadb"), server_version=server_version,
                          index_size_bytes=size, server_address=address, extra=extra)

    def drop(self) -> None:
        coll = getattr(self, "collection", None)
        if coll is not None and hasattr(self, "client"):
            names = [coll.name] + ([self._tenant_name(t) for t in self._tenant_names()] if coll.tenant_field else [])
            for name in names:
                try:
                    self.client.delete_collection(name)
                except (self.chromadb.errors.NotFoundError, ValueError):
                    pass

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
            del self.client


class ChromaBackend(_ChromaBase):
    """Embedded Chroma in this process (its Rust engine through the Python bindings), files under workdir."""

    name = "chroma"
    capabilities = Capabilities(in_process=True, get=True, upsert=True, delete=True, filters=True, hybrid=False,
                                quantization=(), multi_vector=False, replication=False, sharding=False, server=False,
                                tenants=True)
    Options = ChromaOptions

    @classmethod
    def check_available(cls, options: BackendOptions) -> str | None:
        if not installed("chromadb"):
            return _MISSING
        return None

    @property
    def path(self) -> Path:
        return Path(self.workdir) / "chroma"

    def _open_client(self) -> Any:
        self.path.mkdir(parents=True, exist_ok=True)
        return self.chromadb.PersistentClient(path=str(self.path), settings=_settings())

    def _apply_ef(self, ef: int) -> None:
        """Store the new ef_search, then reopen the client so the engine reloads the index with it."""
        for col in [self.col, *self._tenants.values()]:
            col.modify(configuration={"hnsw": {"ef_search": int(ef)}})
        self.client.close()
        self.client = self._open_client()
        self.col = self.client.get_collection(self.collection.name, embedding_function=None)
        if self._tenants:
            self._tenants = self._tenant_collections()
        self._ef = int(ef)
        self._ef_changes.append(int(ef))

    def info(self) -> EngineInfo:
        self._ensure()
        size = sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file()) if self.path.exists() else None
        return self._info(f"chromadb {version('chromadb')} (embedded)", None, size)



class ChromaServerBackend(_ChromaBase):
    """A Chroma server (`chroma run`, or the chroma service of docker-compose.yml) through chromadb.HttpClient."""

    name = "chroma-server"
    capabilities = Capabilities(in_process=False, get=True, upsert=True, delete=True, filters=True, hybrid=False,
                                quantization=(), multi_vector=False, replication=False, sharding=False, server=True,
                                tenants=True)
    Options = ChromaServerOptions
    options: ChromaServerOptions

    @staticmethod
    def _address(url: str) -> tuple[str, int, bool]:
        u = urlparse(url if "://" in url else f"http://{url}")
        if u.scheme not in ("http", "https") or not u.hostname:
            raise UserError(f"chroma-server url '{url}' is not an http(s) URL", "write it as http://HOST:PORT")
        ssl = u.scheme == "https"
        return u.hostname, u.port or (443 if ssl else 8000), ssl

    @classmethod
    def check_available(cls, options: BackendOptions) -> str | None:
        if not installed("chromadb"):
            return _MISSING
        assert isinstance(options, ChromaServerOptions)
        host, port, ssl = cls._address(options.url)
        url = f"{'https' if ssl else 'http'}://{host}:{port}/api/v2/heartbeat"
        try:
            with urllib.request.urlopen(url, timeout=1):
                return None
        except (urllib.error.URLError, OSError) as e:
            return (f"the chroma server at {host}:{port} does not answer ({getattr(e, 'reason', e)}); "
                    + start_hint("chroma"))

    def _open_client(self) -> Any:
        host, port, ssl = self._address(self.options.url)
        self.address = (host, port)
        try:
            client = self.chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=_settings())
            client.heartbeat()
        except Exception as e:  # noqa: BLE001 - the client raises ValueError, httpx errors, ...
            raise ServerUnreachable(f"The chroma server at {host}:{port} does not answer ({_first_line(e)})",
                                    start_hint("chroma")) from None
        return client

    def set_op_timeout(self, seconds: float) -> None:
        """chromadb's HttpClient makes its httpx session with no timeout and offers no setting for one; set it on
        that session (a private attribute: when a chromadb release moves it, the pool's watchdog still ends a
        phase the server does not answer)."""
        super().set_op_timeout(seconds)
        session = getattr(getattr(self.client, "_server", None), "_session", None)
        if session is not None and hasattr(session, "timeout"):
            import httpx

            session.timeout = httpx.Timeout(seconds)

    def _apply_ef(self, ef: int) -> None:
        raise UserError(
            f"chroma-server cannot change ef_search to {ef} on a loaded index (the server keeps the index it loaded "
            f"with ef_search={self._ef} until it restarts)",
            f"create the collection with it: --set backend.ef_search={ef}, one ef_search value per run")

    def info(self) -> EngineInfo:
        self._ensure()
        return self._info(f"chroma server {self.client.get_version()}", self.address, None)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0].rstrip(".") if text else type(e).__name__
