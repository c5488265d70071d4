"""`pgvector`: PostgreSQL with the pgvector extension, through psycopg 3.

One table per collection: `id bigint PRIMARY KEY, embedding vector(dim), payload jsonb`, plus one typed,
generated column per declared payload field (so filters use a plain btree-indexable column).

Filters: the typed filter tree (`bench.backends.query`) becomes a parameterized WHERE clause (`PgConditionParser`):
`p_<field> = %s` for Eq, `p_<field> > %s AND p_<field> < %s` for a Range, AND / OR in parentheses for And / Or.
Values always travel as statement parameters, never in the SQL text. A field not declared in the collection's
payload fields is read from the jsonb payload (`payload @> %s` for Eq, `(payload ->> 'field')::numeric` for a
Range). Each distinct filter's statement is composed once and kept (filter nodes are hashable).
Loading uses binary COPY into the bare table; the HNSW index is built afterwards, in `wait_indexed` (so the
harness times the build there), with `WITH (m = ..., ef_construction = ...)` and the operator class of the
metric. What was built is read back from the catalog (`pg_index`, `pg_class.reloptions`, `pg_am`, `pg_opclass`).

Multi-vector records (`CollectionSpec.vectors`): one `v_<name> vector(dim)` column per named vector instead of
`embedding`, each with its own HNSW index (`<table>_<name>_hnsw`, the operator class of that vector's metric),
built one after the other in `wait_indexed` and read back per column from the catalog; a search orders by the
column `SearchParams.vector_name` names.

Quantization (pgvector offers two of the four kinds; int8 and pq are refused with a UserError):
- fp16: the HNSW index is built on the expression `(embedding::halfvec(dim))` with `halfvec_<metric>_ops`, and
  queries order by the same expression against `%s::halfvec(dim)`, so the planner uses it. The table keeps the
  float32 vectors.
- binary: the index is on `(binary_quantize(embedding)::bit(dim))` with `bit_hamming_ops`; queries order by the
  Hamming distance `<~>` to `binary_quantize(q)::bit(dim)`.
- rescore (either kind): pgvector's documented re-ranking subquery: the index returns `k * rescore_factor`
  candidates ordered by the quantized distance, which the outer query re-orders by the full-precision distance
  on the stored float32 vectors (`ORDER BY embedding <=> q LIMIT k`). Without rescore the quantized order is
  the answer.
The index really built is read back with `pg_get_indexdef` (what `pg_indexes.indexdef` shows: the expression and
operator class) and its size with `pg_relation_size`; `wait_indexed` ANALYZEs the table, then EXPLAINs one search
and records whether its plan uses the index (a substitution when it does not, e.g. a 1,000-row table).

`hnsw.ef_search` is a session setting: it is SET when a query asks for a value other than the session's
current one, never on every query. Results are never cached: every call is one statement.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import version
from typing import Any, Literal

import numpy as np
from pydantic import Field, SecretStr

from bench.backends import _pgvector_build as build
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
    Secret,
    ServerNode,
)
from bench.backends.query import ConditionParser, Eq, Filter, with_tenant
from bench.backends.secrets import redact_text
from bench.errors import BackendUnavailable, ServerUnreachable, UserError

DEFAULT_DSN = "postgresql://bench@127.0.0.1:5432/bench"
_OPCLASS = {"cosine": "vector_cosine_ops", "l2": "vector_l2_ops", "ip": "vector_ip_ops"}
_OPERATOR = {"cosine": "<=>", "l2": "<->", "ip": "<#>"}  # <#> is the negative inner product: ascending is best
_HALF_OPCLASS = {"cosine": "halfvec_cosine_ops", "l2": "halfvec_l2_ops", "ip": "halfvec_ip_ops"}
QUANTIZATION = ("fp16", "binary")  # halfvec and binary_quantize; pgvector has no int8 scalar or product quantizer
_PG_TYPE = {"int": "bigint", "keyword": "text", "text": "text", "float": "double precision", "bool": "boolean"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class PgvectorOptions(BackendOptions):
    dsn: str = Field(default_factory=lambda: os.environ.get("BENCH_PGVECTOR_DSN", DEFAULT_DSN),
                     description="libpq connection URI; default from BENCH_PGVECTOR_DSN")
    password: Secret = Field(SecretStr(""), description="password when the DSN has none (libpq also reads "
                             "PGPASSWORD and ~/.pgpass); \"env:NAME\" or \"file:PATH\" reads it from there")
    connect_timeout_s: int = Field(5, ge=1, le=600)
    maintenance_work_mem: str | None = Field(
        None, pattern=r"^\d+\s*(kB|MB|GB)$",
        description="memory for the index build (None = sized to the HNSW graph from n, dim and M)")
    maintenance_work_mem_max: str = Field(
        "960MB", pattern=r"^\d+\s*(kB|MB|GB)$",
        description="the most the sizing asks for (a parallel build holds it in /dev/shm: Docker's shm_size)")
    max_parallel_maintenance_workers: int | None = Field(
        None, ge=0, le=64, description="parallel build workers (None = this machine's cores - 1 for a server on "
        "loopback, else the server's setting)")
    vector_storage: Literal["auto", "plain", "main", "extended", "external"] = Field(
        "auto", description="storage of the vector columns (auto = PLAIN when they fit a page, else MAIN)")
    iterative_scan: Literal["off", "strict_order", "relaxed_order"] = Field(
        "strict_order", description="pgvector 0.8 iterative index scans, so filtered searches still find k rows")
    copy_rows_per_statement: int = Field(10_000, ge=1, description="rows per COPY while loading")
    rescore_factor: float = Field(2.0, ge=1, le=100, description="quantized with rescore: the index returns "
                                  "k * this candidates, re-ordered by the full float32 distance (as faiss, qdrant)")
    replica_dsns: list[str] = Field(default_factory=list, description="hot standbys (streaming replicas) the "
                                    "searches are spread over, named replica1, replica2, ... in results; writes, "
                                    "gets and the load always go to `dsn`, the primary")
    reads_on_primary: bool = Field(False, description="with replica_dsns: the primary serves searches too")
    replica_retry_s: float = Field(1.0, gt=0, le=600, description="a read node that refused a connection is "
                                   "skipped for this long, its searches going to the others (as a load balancer)")
    promote_cmd: str | None = Field(None, description="failover: the shell command that promotes a standby to "
                                    "primary (`bench fault --node primary` runs it after the kill); `dsn` must "
                                    "then reach the new primary (a multi-host DSN, target_session_attrs=read-write)")
    node_start_cmd: str | None = Field(None, description="shell command that starts a killed node again "
                                       "(`bench fault --node replicaN`); {node} is replaced by the node's name")


def _column(field: str) -> str:
    return f"p_{field}"


def _vcolumn(name: str) -> str:
    """The column of named vector `name`."""
    return f"v_{name}"


_SQL_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
Condition = tuple[Any, list[Any]]  # (a psycopg `sql.Composable` with %s placeholders, their values in order)


class PgConditionParser(ConditionParser[Condition]):
    """The filter tree as a parameterized SQL condition. Declared payload fields are compared on their typed
    generated column; undeclared ones are read from the jsonb payload (`jsonb` wraps a dict as a Jsonb value)."""

    def __init__(self, declared: Mapping[str, str], jsonb: Callable[[Mapping[str, Any]], Any]):
        from psycopg import sql

        self.sql, self.declared, self.jsonb = sql, declared, jsonb

    def build_eq(self, field: str, value: int | str) -> Condition:
        sql = self.sql
        if field in self.declared:
            return sql.SQL("{} = %s").format(sql.Identifier(_column(field))), [value]
        return sql.SQL("payload @> %s"), [self.jsonb({field: value})]

    def build_range(self, field: str, **bounds: float) -> Condition:
        sql = self.sql
        if field in self.declared:
            target: Any = sql.Identifier(_column(field))
        else:
            target = sql.SQL("(payload ->> {})::numeric").format(sql.Literal(field))
        parts = [sql.SQL("{} {} %s").format(target, sql.SQL(_SQL_OPS[name])) for name in bounds]
        return self._join(" AND ", [(p, [v]) for p, v in zip(parts, bounds.values(), strict=True)])

    def build_and(self, items: list[Condition]) -> Condition:
        return self._join(" AND ", items)

    def build_or(self, items: list[Condition]) -> Condition:
        return self._join(" OR ", items)

    def _join(self, op: str, items: list[Condition]) -> Condition:
        if len(items) == 1:
            return items[0]
        sql = self.sql
        cond = sql.SQL("(") + sql.SQL(op).join(c for c, _ in items) + sql.SQL(")")
        return cond, [v for _, args in items for v in args]


class PgvectorBackend(Backend):
    name = "pgvector"
    # replication: PostgreSQL streaming replicas: writes to the primary (`dsn`), searches spread over the hot standbys
    # (`replica_dsns`), each trial row's served_by says which node served how many; sharding needs an extension
    # (Citus), so not here.
    # quantization: halfvec (fp16) and binary_quantize (binary) expression indexes, with or without rescoring.
    capabilities = Capabilities(in_process=False, get=True, upsert=True, delete=True, filters=True,
                                hybrid=False, quantization=QUANTIZATION, multi_vector=True, replication=True,
                                sharding=False, server=True, tenants=True)
    Options = PgvectorOptions
    options: PgvectorOptions

    # -- availability and connection ----------------------------------------------------------------------
    @classmethod
    def _address(cls, dsn: str) -> tuple[str, int]:
        from psycopg.conninfo import conninfo_to_dict

        try:
            d = conninfo_to_dict(dsn)
            host = str(d.get("host") or "127.0.0.1").split(",")[0]
            return host, int(str(d.get("port") or 5432).split(",")[0])
        except Exception as e:  # noqa: BLE001 - psycopg raises ProgrammingError for a bad DSN, int() ValueError
            raise UserError(f"pgvector dsn '{redact_text(dsn)}' is not a valid connection string "
                            f"({redact_text(_first_line(e))})",
                            "write it as postgresql://USER@HOST:PORT/DB") from None

    @classmethod
    def check_available(cls, options: BackendOptions) -> str | None:
        try:
            import pgvector.psycopg  # noqa: F401
            import psycopg
        except ImportError:
            return "psycopg or pgvector is not installed; install them with `pip install -e '.[servers]'`"
        assert isinstance(options, PgvectorOptions)
        host, port = cls._address(options.dsn)
        try:
            psycopg.connect(options.dsn, connect_timeout=1, **_auth(options)).close()
        except psycopg.Error as e:
            return (f"the pgvector server at {host}:{port} does not answer ({_first_line(e)}); "
                    + start_hint("pgvector"))
        return None

    @classmethod
    def server_nodes(cls, options: BackendOptions) -> list[ServerNode]:
        """With replica_dsns: the primary (the first host of `dsn`; its recovery is promote_cmd) and each replica
        (its recovery: node_start_cmd)."""
        assert isinstance(options, PgvectorOptions)
        if not options.replica_dsns:
            return []
        nodes = [ServerNode("primary", "primary", cls._address(options.dsn), options.promote_cmd)]
        for i, dsn in enumerate(options.replica_dsns, start=1):
            name = f"replica{i}"
            start = options.node_start_cmd.replace("{node}", name) if options.node_start_cmd else None
            nodes.append(ServerNode(name, "replica", cls._address(dsn), start, {"dsn": dsn, "replica_dsns": []}))
        return nodes

    def connect(self) -> None:
        try:
            import psycopg
            from pgvector.psycopg import register_vector  # noqa: F401 - fail here, with the hint below
        except ImportError as e:
            raise BackendUnavailable(f"pgvector's client libraries are missing ({e})",
                                     "install them with `pip install -e '.[servers]'`") from None
        self._psycopg = psycopg
        host, port = self._address(self.options.dsn)
        self.address = (host, port)
        try:
            self.conn = psycopg.connect(self.options.dsn, autocommit=True,
                                        connect_timeout=self.options.connect_timeout_s, **_auth(self.options))
        except psycopg.OperationalError as e:
            raise ServerUnreachable(f"The pgvector server at {host}:{port} does not answer ({_first_line(e)})",
                                    start_hint("pgvector")) from None
        try:
            self.conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as e:
            raise UserError(f"The pgvector extension is not available in the database at {host}:{port} "
                            f"({_first_line(e)})", "install pgvector on the server or ask its owner to run "
                            "CREATE EXTENSION vector") from None
        self._build_s: float | None = None
        self._notices: list[str] = []
        self._debug: list[str] = []
        self.reconnects = 0
        self._session(self.conn)

    def _session(self, conn: Any) -> None:
        """What every connection of this adapter needs: the vector type, notices, session settings."""
        from pgvector.psycopg import register_vector

        register_vector(conn)
        if not hasattr(self, "_efs"):
            self._efs: dict[int, int | None] = {}
        self._efs[id(conn)] = None  # a new session starts at the server's default hnsw.ef_search
        conn.add_notice_handler(self._on_notice)
        if self.options.iterative_scan != "off":
            conn.execute(f"SET hnsw.iterative_scan = {self.options.iterative_scan}")
        self._session_timeout(conn)

    def set_op_timeout(self, seconds: float) -> None:
        """The server cancels a statement running past `seconds` (statement_timeout on this session). A frozen
        server cancels nothing: psycopg has no client-side call timeout, so there the pool's watchdog ends the
        phase."""
        super().set_op_timeout(seconds)
        self._session_timeout(self.conn)
        for conn in getattr(self, "_rconn", {}).values():
            if not (conn.broken or conn.closed):
                self._session_timeout(conn)

    def _session_timeout(self, conn: Any) -> None:
        if self.op_timeout_s is not None:
            conn.execute(f"SET statement_timeout = {max(1, int(self.op_timeout_s * 1000))}")

    def _on_notice(self, d: Any) -> None:
        """NOTICE and WARNING messages are kept as build notices; DEBUG ones (the build's, see `_build_hnsw`) apart."""
        text = d.message_primary or ""
        if str(d.severity_nonlocalized or "").startswith("DEBUG"):
            self._debug.append(text)
        else:
            self._notices.append(text)

    def _live(self) -> Any:
        """The connection, replaced first when the last one broke (server restarted, connection dropped).

        Nothing is retried: the operation that met the broken connection failed and was counted as failed by the
        caller; the reconnect happens here, on the next operation, and its time counts in that operation. When
        the server is still down, psycopg.OperationalError makes this operation fail too."""
        conn = self.conn
        if conn.broken or conn.closed:
            try:
                conn.close()
            except self._psycopg.Error:
                pass
            conn = self._psycopg.connect(self.options.dsn, autocommit=True,
                                         connect_timeout=self.options.connect_timeout_s, **_auth(self.options))
            try:
                self._session(conn)
            except BaseException:
                conn.close()
                raise
            self.conn = conn
            self.reconnects += 1
        return conn

    def _sql(self) -> Any:
        from psycopg import sql

        return sql

    # -- collection ---------------------------------------------------------------------------------------
    def _check(self, collection: CollectionSpec) -> None:
        if not _NAME.match(collection.name):
            raise UserError(f"pgvector table name '{collection.name}' is not a plain SQL identifier",
                            "use letters, digits and underscores, at most 63 characters")
        if collection.metric not in _OPCLASS:
            raise UserError(f"pgvector does not support metric '{collection.metric}'", "use cosine, l2 or ip")
        quant = collection.index.quantization
        if quant and quant not in QUANTIZATION:
            raise UserError(f"pgvector offers no {quant} quantization (only fp16 as halfvec and binary as "
                            "binary_quantize), so the run is skipped rather than built unquantized",
                            "set index.quantization to 'fp16' or 'binary', or choose faiss, qdrant-edge or milvus")
        if quant and collection.index.kind != "hnsw":
            raise UserError(f"pgvector quantization '{quant}' needs an hnsw index, not '{collection.index.kind}'",
                            "set index.kind = \"hnsw\" or remove index.quantization")
        if quant and collection.vectors:
            raise UserError("the pgvector adapter does not quantize named vectors (multi-vector records), so the run "
                            "is skipped rather than built unquantized", "remove index.quantization or [multivector]")
        for v, m in ((v, collection.metric_of(v)) for v in collection.vectors):
            if not _NAME.match(_vcolumn(v)) or m not in _OPCLASS:
                raise UserError(f"pgvector cannot store named vector '{v}' with metric '{m}'",
                                "use a plain lower-case name and cosine, l2 or ip")
        for f, t in collection.payload_fields.items():
            if t not in _PG_TYPE or not _NAME.match(_column(f)):
                raise UserError(f"pgvector cannot store payload field '{f}' of type '{t}'",
                                f"use a plain name and one of the types {', '.join(_PG_TYPE)}")
        if not hasattr(self, "conn"):
            self.connect()

    def create(self, collection: CollectionSpec) -> None:
        self._check(collection)
        self.collection = collection
        sql = self._sql()
        table = sql.Identifier(collection.name)
        cols = [sql.SQL("id bigint PRIMARY KEY")]
        if collection.vectors:
            cols += [sql.SQL("{} vector({})").format(sql.Identifier(_vcolumn(v)), sql.Literal(int(d)))
                     for v, d in collection.vectors.items()]
        else:
            cols.append(sql.SQL("embedding vector({})").format(sql.Literal(collection.dim)))
        cols.append(sql.SQL("payload jsonb"))
        for f, t in collection.payload_fields.items():
            cols.append(sql.SQL("{} {} GENERATED ALWAYS AS ((payload ->> {})::{}) STORED").format(
                sql.Identifier(_column(f)), sql.SQL(_PG_TYPE[t]), sql.Literal(f), sql.SQL(_PG_TYPE[t])))
        with self.conn.transaction():
            self.conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
            self.conn.execute(sql.SQL("CREATE TABLE {} ({})").format(table, sql.SQL(", ").join(cols)))
            for stmt in self._storage_statements(collection):
                self.conn.execute(stmt)
            for f in collection.payload_fields:
                self.conn.execute(sql.SQL("CREATE INDEX ON {} ({})").format(table, sql.Identifier(_column(f))))
        self._loaded = 0
        self._copy_rows = 0
        self._prepare_statements()

    def _storage_statements(self, collection: CollectionSpec) -> list[Any]:
        """`ALTER TABLE ... ALTER COLUMN ... SET STORAGE` for each vector column (see `_pgvector_build`): inline
        vectors are what lets PostgreSQL plan a parallel HNSW build, and spare the build a detoast per vector."""
        sql = self._sql()
        dims = list(collection.vectors.values()) or [collection.dim]
        storage = build.vector_storage([int(d) for d in dims], self.options.vector_storage)
        columns = [_vcolumn(v) for v in collection.vectors] or ["embedding"]
        return [sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET STORAGE {}").format(
            sql.Identifier(collection.name), sql.Identifier(c), sql.SQL(storage.upper())) for c in columns]

    def attach(self, collection: CollectionSpec) -> None:
        self._check(collection)
        row = self.conn.execute("SELECT to_regclass(%s)", (self._quoted(collection.name),)).fetchone()
        if row is None or row[0] is None:
            raise UserError(f"pgvector table '{collection.name}' does not exist at {self.address[0]}:{self.address[1]}",
                            "create and load it first (the parent process does this)")
        self.collection = collection
        self._prepare_statements()

    def _quoted(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def _prepare_statements(self) -> None:
        sql = self._sql()
        t = sql.Identifier(self.collection.name)
        self._q_search = self._search_sql(None)
        self._q_get = sql.SQL("SELECT embedding, payload FROM {} WHERE id = %s").format(t)
        self._q_upsert = sql.SQL("INSERT INTO {} (id, embedding, payload) VALUES (%s, %s, %s) ON CONFLICT (id) DO "
                                 "UPDATE SET embedding = EXCLUDED.embedding, payload = EXCLUDED.payload").format(t)
        self._q_delete = sql.SQL("DELETE FROM {} WHERE id = %s").format(t)
        self._filtered: dict[Filter, tuple[Any, list[Any]]] = {}
        self._q_named = {v: sql.SQL("SELECT id FROM {} ORDER BY {} {} %s LIMIT %s").format(
            t, sql.Identifier(_vcolumn(v)), sql.SQL(_OPERATOR[self.collection.metric_of(v)]))
            for v in self.collection.vectors}

    # -- quantization: the indexed expression and the distance a query orders by ----------------------------
    def _index_column(self) -> Any:
        """The indexed column or expression with its operator class, e.g. `(embedding::halfvec(768)) halfvec_cosine_ops`."""
        sql = self._sql()
        c = self.collection
        quant = c.index.quantization
        if quant == "fp16":
            return sql.SQL("(embedding::halfvec({})) {}").format(sql.Literal(c.dim), sql.SQL(_HALF_OPCLASS[c.metric]))
        if quant == "binary":
            return sql.SQL("(binary_quantize(embedding)::bit({})) bit_hamming_ops").format(sql.Literal(c.dim))
        return sql.SQL("embedding {}").format(sql.SQL(_OPCLASS[c.metric]))

    def _index_distance(self) -> Any:
        """The distance the index orders by, with one %s for the query vector; it repeats the indexed expression
        exactly, so the planner can use the index."""
        sql = self._sql()
        c = self.collection
        quant = c.index.quantization
        dim = sql.Literal(c.dim)
        if quant == "fp16":
            return sql.SQL("embedding::halfvec({}) {} %s::halfvec({})").format(dim, sql.SQL(_OPERATOR[c.metric]), dim)
        if quant == "binary":
            return sql.SQL("binary_quantize(embedding)::bit({}) <~> binary_quantize(%s::vector)::bit({})").format(dim, dim)
        return sql.SQL("embedding {} %s").format(sql.SQL(_OPERATOR[c.metric]))

    def _rescoring(self) -> bool:
        return bool(self.collection.index.quantization) and self.collection.index.rescore

    def _candidates(self, k: int) -> int:
        return max(int(k), math.ceil(int(k) * self.options.rescore_factor))

    def _search_sql(self, where: Any | None) -> Any:
        """One search statement. Arguments: the filter values (if `where`), the vector, then the limit k; with
        rescore: filter values, vector, candidate count, vector, k (the documented re-ranking subquery)."""
        sql = self._sql()
        t = sql.Identifier(self.collection.name)
        cond = sql.SQL(" WHERE {}").format(where) if where is not None else sql.SQL("")
        if not self._rescoring():
            return sql.SQL("SELECT id FROM {}{} ORDER BY {} LIMIT %s").format(t, cond, self._index_distance())
        return sql.SQL("SELECT id FROM (SELECT id, embedding FROM {}{} ORDER BY {} LIMIT %s) AS candidates "
                       "ORDER BY embedding {} %s LIMIT %s").format(
            t, cond, self._index_distance(), sql.SQL(_OPERATOR[self.collection.metric]))

    def _search_args(self, filter_args: list[Any], vec: np.ndarray, k: int) -> tuple[Any, ...]:
        if self._rescoring():
            return (*filter_args, vec, self._candidates(k), vec, int(k))
        return (*filter_args, vec, int(k))

    # -- writes -------------------------------------------------------------------------------------------
    def _jsonb(self, payload: Mapping[str, Any] | None) -> Any:
        from psycopg.types.json import Jsonb

        return None if payload is None else Jsonb(dict(payload))

    def insert(self, ids: np.ndarray, vectors: np.ndarray | Mapping[str, np.ndarray],
               payloads: Sequence[Mapping[str, Any]] | None = None) -> None:
        sql = self._sql()
        if isinstance(vectors, Mapping):  # multi-vector records: one column per named vector
            names = list(self.collection.vectors)
            if set(vectors) != set(names):
                raise UserError(f"pgvector: the batch has vectors {sorted(vectors)} but the table has {names}",
                                "insert every named vector of the collection")
            columns = [sql.Identifier(_vcolumn(v)) for v in names]
            arrays = [np.ascontiguousarray(vectors[v], dtype=np.float32) for v in names]
        else:
            columns = [sql.Identifier("embedding")]
            arrays = [np.ascontiguousarray(vectors, dtype=np.float32)]
        stmt = sql.SQL("COPY {} (id, {}, payload) FROM STDIN WITH (FORMAT BINARY)").format(
            sql.Identifier(self.collection.name), sql.SQL(", ").join(columns))
        types = ["int8", *["vector"] * len(arrays), "jsonb"]
        step = self.options.copy_rows_per_statement
        with self.conn.cursor() as cur:
            for s in range(0, len(ids), step):
                with cur.copy(stmt) as copy:
                    copy.set_types(types)  # binary: pgvector-python's vector dumper, no text formatting
                    for j in range(s, min(s + step, len(ids))):
                        copy.write_row((int(ids[j]), *[a[j] for a in arrays],
                                        self._jsonb(payloads[j] if payloads else None)))
        self._loaded = getattr(self, "_loaded", 0) + len(ids)
        self._copy_rows = max(getattr(self, "_copy_rows", 0), min(step, len(ids)))

    def upsert(self, id: int, vector: np.ndarray, payload: Mapping[str, Any] | None = None) -> None:
        self._live().execute(self._q_upsert, (int(id), np.asarray(vector, dtype=np.float32), self._jsonb(payload)))

    def delete(self, id: int) -> None:
        self._live().execute(self._q_delete, (int(id),))

    def get(self, id: int) -> Record | None:
        row = self._live().execute(self._q_get, (int(id),)).fetchone()
        if row is None:
            return None
        vec = row[0].to_numpy() if hasattr(row[0], "to_numpy") else row[0]
        return Record(id=int(id), vector=np.asarray(vec, dtype=np.float32), payload=row[1])

    # -- index --------------------------------------------------------------------------------------------
    def _index_name(self, vector: str | None = None) -> str:
        if vector:
            return f"{self.collection.name[:30]}_{vector}_hnsw"
        return f"{self.collection.name[:50]}_hnsw"

    def _hnsw_targets(self) -> list[tuple[str, str, str]]:
        """(index name, column, operator class) of every HNSW index the collection needs."""
        c = self.collection
        if c.vectors:
            return [(self._index_name(v), _vcolumn(v), _OPCLASS[c.metric_of(v)]) for v in c.vectors]
        return [(self._index_name(), "embedding", _OPCLASS[c.metric])]

    def wait_indexed(self, timeout_s: float) -> BuiltIndex:
        sql = self._sql()
        recipe: dict[str, Any] = {"load": "COPY ... FROM STDIN WITH (FORMAT BINARY), pgvector-python's binary "
                                  "vector dumper, into the bare table; indexes built after the load",
                                  "rows_per_copy": getattr(self, "_copy_rows", 0) or None}
        if self.collection.index.kind == "hnsw":
            recipe.update(self._build_hnsw(timeout_s))
        # Planner statistics now, not whenever autovacuum gets to it: without them every equality filter is
        # estimated at 0.5% of the rows and answered by the payload btree plus an exact sort, whatever its
        # selectivity, so filtered results would depend on whether autovacuum had run yet.
        self.conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(self.collection.name)))
        built = self._read_back()
        built.params["load_recipe"] = {**recipe, "analyze": True, **self._storage_read_back(), "docs": build.DOCS}
        if self.options.replica_dsns:
            built.params["replicas"] = self.wait_replicas(timeout_s)
        if any("no longer fits into maintenance_work_mem" in n for n in self._notices):
            built.warnings.append(f"the HNSW graph did not fit maintenance_work_mem = "
                                  f"{recipe.get('maintenance_work_mem')} and the build went on on disk, much slower "
                                  "(raise backend.maintenance_work_mem_max, or set backend.maintenance_work_mem)")
        return built

    def _host(self) -> build.Host:
        """The server's machine as far as it is known: this one when the server is on loopback or a socket."""
        host = self.address[0]
        workers = int(self.conn.execute("SHOW max_parallel_workers").fetchone()[0])
        if not (host.startswith(("127.", "/")) or host in ("localhost", "::1")):
            return build.Host(max_parallel_workers=workers)
        import shutil

        import psutil

        shm = shutil.disk_usage("/dev/shm").free if os.path.isdir("/dev/shm") else None
        return build.Host(cores=os.cpu_count(), available_bytes=int(psutil.virtual_memory().available),
                          shm_free_bytes=shm, max_parallel_workers=workers)

    def _build_hnsw(self, timeout_s: float) -> dict[str, Any]:
        """CREATE INDEX for every HNSW the collection needs, each in a transaction with the build's settings;
        returns the load recipe: the settings, where each came from, and the workers pgvector reports."""
        sql, c = self._sql(), self.collection
        idx = c.index
        n = getattr(self, "_loaded", 0) or int(self.conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
            sql.Identifier(c.name))).fetchone()[0])
        dim = max([int(d) for d in c.vectors.values()] or [c.dim])
        plan = build.plan_build(n, dim, idx.m, idx.quantization, self._host(), mem=self.options.maintenance_work_mem,
                                mem_max=self.options.maintenance_work_mem_max,
                                workers=self.options.max_parallel_maintenance_workers)
        if c.vectors:
            targets = [(name, sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(opclass)))
                       for name, column, opclass in self._hnsw_targets()]
        else:
            targets = [(self._index_name(), self._index_column())]
        self._notices.clear()
        self._build_mem = plan.maintenance_work_mem
        per: dict[str, Any] = {}
        t0 = time.perf_counter()
        for name, column in targets:
            self._debug.clear()
            self._create_index(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw ({}) WITH (m = {}, "
                                       "ef_construction = {})").format(
                sql.Identifier(name), sql.Identifier(c.name), column, sql.Literal(idx.m),
                sql.Literal(idx.ef_construction)), plan, t0 + timeout_s, timeout_s)
            per[name] = build.read_build_debug(self._debug)
        self._build_s = time.perf_counter() - t0
        out = {**plan.recipe, **(per[targets[0][0]] if len(per) == 1 else {"per_index": per})}
        return out

    def _create_index(self, stmt: Any, plan: build.BuildPlan, deadline: float, timeout_s: float) -> None:
        """One CREATE INDEX in a transaction with the build's settings, cancelled by the server at `deadline`."""
        sql = self._sql()
        host, port = self.address
        try:
            with self.conn.transaction():
                self.conn.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(
                    sql.Literal(max(1, int((deadline - time.perf_counter()) * 1000)))))
                for name, value in plan.settings():
                    self.conn.execute(sql.SQL("SET LOCAL {} = {}").format(sql.Identifier(name), sql.Literal(value)))
                self.conn.execute(stmt)
        except self._psycopg.errors.QueryCanceled:
            raise UserError(f"pgvector at {host}:{port} did not finish building the HNSW index within the "
                            f"{timeout_s:g} s timeout", "raise run.index_timeout_s or use a smaller dataset") from None
        except self._psycopg.errors.ProgramLimitExceeded as e:
            raise UserError(f"pgvector cannot build an HNSW index here ({_first_line(e)})",
                            "pgvector's HNSW indexes take at most 2,000 dimensions for `vector`, 4,000 for "
                            "halfvec (index.quantization = 'fp16') and 64,000 for binary") from None

    def _storage_read_back(self) -> dict[str, Any]:
        """The vector columns' storage as the catalog has it, and the heap and TOAST sizes it led to."""
        c = self.collection
        columns = [_vcolumn(v) for v in c.vectors] or ["embedding"]
        rel = self._quoted(c.name)
        rows = self.conn.execute("SELECT attname, attstorage FROM pg_attribute WHERE attrelid = to_regclass(%s) "
                                 "AND attname = ANY(%s)", (rel, columns)).fetchall()
        names = {"p": "plain", "m": "main", "x": "extended", "e": "external"}
        storage = sorted({names.get(str(s), str(s)) for _, s in rows})
        heap, toast = self.conn.execute(
            "SELECT pg_relation_size(to_regclass(%s)), coalesce(pg_relation_size(reltoastrelid), 0) FROM pg_class "
            "WHERE oid = to_regclass(%s)", (rel, rel)).fetchone()
        return {"vector_storage": storage[0] if len(storage) == 1 else storage,
                "vector_storage_from": "backend.vector_storage" if self.options.vector_storage != "auto" else
                "auto: PLAIN when the row's vectors fit a page, else MAIN",
                "heap_bytes": int(heap), "toast_bytes": int(toast)}

    def _read_back(self) -> BuiltIndex:
        if self.collection.vectors:
            return self._read_back_named()
        idx = self.collection.index
        rows = self.conn.execute(
            """SELECT c.relname, am.amname, c.reloptions, c.reltuples, i.indisvalid, i.indisready, oc.opcname,
                      pg_get_indexdef(i.indexrelid), pg_relation_size(i.indexrelid)
               FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
               JOIN pg_opclass oc ON oc.oid = i.indclass[0]
               WHERE i.indrelid = to_regclass(%s) AND am.amname IN ('hnsw', 'ivfflat')""",
            (self._quoted(self.collection.name),)).fetchall()
        total = int(self.conn.execute(self._sql().SQL("SELECT count(*) FROM {}").format(
            self._sql().Identifier(self.collection.name))).fetchone()[0])
        subs: list[str] = []
        if not rows:
            if idx.kind == "hnsw":
                subs.append("no HNSW index exists on the table; searches are exact sequential scans")
            return BuiltIndex(kind="flat", params={"scan": "sequential"}, indexed_count=total, total_count=total,
                              substitutions=subs)
        name, am, reloptions, reltuples, valid, ready, opclass, indexdef, index_bytes = rows[0]
        if not (valid and ready):
            raise UserError(f"pgvector index {name} is not valid (a build was interrupted)",
                            "drop the table and load it again")
        opts = dict(o.split("=", 1) for o in (reloptions or []))
        params: dict[str, Any] = {k: int(v) if v.isdigit() else v for k, v in opts.items()}
        params["opclass"] = opclass
        params["indexdef"] = indexdef
        params["index_bytes"] = int(index_bytes)
        built_quant = index_quantization(indexdef, opclass)
        params["quantization"] = built_quant
        params["rescore"] = self._rescoring() if built_quant else None
        if params["rescore"]:
            params["rescore_factor"] = self.options.rescore_factor
        params["iterative_scan"] = self.options.iterative_scan
        if self._notices:
            params["build_notices"] = list(self._notices)
        if idx.kind == "flat":
            subs.append(f"asked for a flat (exact) index, but the table has a {am} index {name}")
        elif am != "hnsw":
            subs.append(f"asked for hnsw, but the table has a {am} index")
        elif (params.get("m"), params.get("ef_construction")) != (idx.m, idx.ef_construction):
            subs.append(f"asked for m={idx.m}, ef_construction={idx.ef_construction}; the index has "
                        f"m={params.get('m', 16)}, ef_construction={params.get('ef_construction', 64)}")
        if built_quant != idx.quantization:
            subs.append(f"asked for quantization {idx.quantization or 'none'}; the index {name} is "
                        f"{built_quant or 'unquantized'} ({indexdef})")
        if am == "hnsw":
            plan = self._plan_uses_index(name)
            params["search_plan_uses_index"] = plan
            if plan is False:
                subs.append(f"the planner does not use index {name} for a search; searches are exact scans")
        if self.collection.tenant_field:
            params["tenants"] = self._tenant_readback(name if am == "hnsw" else None)
        indexed = int(reltuples) if reltuples is not None and reltuples >= 0 else None
        return BuiltIndex(kind=am, params=params, indexed_count=indexed, total_count=total, substitutions=subs)

    def _tenant_readback(self, index_name: str | None) -> dict[str, Any]:
        field = self.collection.tenant_field
        assert field is not None
        return {"field": field, "how": f"a tenant column {_column(field)} (btree index) in the one table; every search "
                f"filtered on it through the HNSW index, hnsw.iterative_scan = {self.options.iterative_scan}",
                "plans": self._tenant_plans(index_name) if index_name else None}

    def _tenant_plans(self, index_name: str) -> list[dict[str, Any]]:
        """Whether the planner searches the largest and the smallest tenant through the HNSW index (a small tenant
        is often read through the tenant column's btree and sorted exactly instead)."""
        sql, field = self._sql(), self.collection.tenant_field
        assert field is not None
        rows = self.conn.execute(sql.SQL("SELECT {c}, count(*) FROM {t} GROUP BY {c} ORDER BY 2 DESC, 1").format(
            c=sql.Identifier(_column(field)), t=sql.Identifier(self.collection.name))).fetchall()
        picks = [rows[0], rows[-1]] if len(rows) > 1 else rows
        return [{"tenant": t, "rows": int(n), "uses_hnsw_index": self._plan_uses_index(index_name, Eq(field, t))}
                for t, n in picks]

    def _read_back_named(self) -> BuiltIndex:
        """Multi-vector read-back: the index on each named vector's column, from the catalog."""
        idx = self.collection.index
        rows = self.conn.execute(
            """SELECT a.attname, c.relname, am.amname, c.reloptions, c.reltuples, i.indisvalid, i.indisready, oc.opcname
               FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
               JOIN pg_opclass oc ON oc.oid = i.indclass[0]
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
               WHERE i.indrelid = to_regclass(%s) AND am.amname IN ('hnsw', 'ivfflat')""",
            (self._quoted(self.collection.name),)).fetchall()
        total = int(self.conn.execute(self._sql().SQL("SELECT count(*) FROM {}").format(
            self._sql().Identifier(self.collection.name))).fetchone()[0])
        by_column = {r[0]: r[1:] for r in rows}
        per: dict[str, Any] = {}
        subs: list[str] = []
        indexed_total = 0
        for v in self.collection.vectors:
            found = by_column.get(_vcolumn(v))
            if found is None:
                per[v] = {"kind": "flat", "scan": "sequential"}
                indexed_total += total
                if idx.kind == "hnsw":
                    subs.append(f"vector '{v}': no HNSW index on {_vcolumn(v)}; its searches are exact sequential scans")
                continue
            name, am, reloptions, reltuples, valid, ready, opclass = found
            if not (valid and ready):
                raise UserError(f"pgvector index {name} is not valid (a build was interrupted)",
                                "drop the table and load it again")
            opts = dict(o.split("=", 1) for o in (reloptions or []))
            p: dict[str, Any] = {k: int(x) if x.isdigit() else x for k, x in opts.items()}
            indexed = int(reltuples) if reltuples is not None and reltuples >= 0 else None
            per[v] = {"kind": am, "index": name, "column": _vcolumn(v), "opclass": opclass, **p,
                      "indexed_count": indexed}
            indexed_total += indexed or 0
            if opclass != _OPCLASS[self.collection.metric_of(v)]:
                subs.append(f"vector '{v}': asked for {_OPCLASS[self.collection.metric_of(v)]}; the index uses {opclass}")
            if idx.kind == "flat":
                subs.append(f"vector '{v}': asked for a flat (exact) index, but the column has a {am} index {name}")
            elif am != "hnsw":
                subs.append(f"vector '{v}': asked for hnsw, but the column has a {am} index")
            elif (p.get("m"), p.get("ef_construction")) != (idx.m, idx.ef_construction):
                subs.append(f"vector '{v}': asked for m={idx.m}, ef_construction={idx.ef_construction}; the index "
                            f"has m={p.get('m', 16)}, ef_construction={p.get('ef_construction', 64)}")
        kinds = sorted({p["kind"] for p in per.values()})

        def _same(key: str) -> Any:
            vals = sorted({str(p.get(key)) for p in per.values()})
            return per[next(iter(per))].get(key) if len(vals) == 1 else vals

        params: dict[str, Any] = {"m": _same("m"), "ef_construction": _same("ef_construction"), "vectors": per,
                                  "iterative_scan": self.options.iterative_scan}
        if self._notices:
            params["build_notices"] = list(self._notices)
        return BuiltIndex(kind=kinds[0] if len(kinds) == 1 else "mixed", params=params, indexed_count=indexed_total,
                          total_count=total * len(per), substitutions=subs)

    def _plan_uses_index(self, index_name: str, flt: Filter | None = None) -> bool | None:
        """EXPLAIN one search (a unit query vector, under `flt` if given) and say whether its plan scans the index."""
        try:
            vec = np.full(self.collection.dim, 1.0 / math.sqrt(self.collection.dim), dtype=np.float32)
            sql = self._sql()
            query, args = self._filtered_query(flt) if flt is not None else (self._q_search, [])
            rows = self.conn.execute(sql.SQL("EXPLAIN ") + query, self._search_args(args, vec, 10)).fetchall()
        except self._psycopg.Error:
            return None
        return any(index_name in str(r[0]) for r in rows)

    # -- search -------------------------------------------------------------------------------------------
    def _set_ef(self, ef: int | None, conn: Any = None) -> None:
        conn = self.conn if conn is None else conn
        if ef == self._efs.get(id(conn)):
            return
        if ef is None:
            conn.execute("RESET hnsw.ef_search")
        else:
            conn.execute(self._sql().SQL("SET hnsw.ef_search = {}").format(self._sql().Literal(int(ef))))
        self._efs[id(conn)] = ef

    def _filtered_query(self, flt: Filter) -> tuple[Any, list[Any]]:
        """(the search statement with the filter's WHERE clause, the filter's values), composed once per filter."""
        got = self._filtered.get(flt)
        if got is None:
            where, args = PgConditionParser(self.collection.payload_fields, self._jsonb).parse(flt)
            got = self._filtered[flt] = (self._search_sql(where), args)
        return got

    def search(self, vector: np.ndarray, k: int, params: SearchParams) -> Sequence[int]:
        conn = self._reader()
        self._set_ef(params.ef_search, conn)
        vec = np.asarray(vector, dtype=np.float32)
        if params.vector_name is not None:
            q = self._q_named.get(params.vector_name)
            if q is None or params.filter is not None:
                raise UserError(f"pgvector: table '{self.collection.name}' has no named vector '{params.vector_name}'"
                                if q is None else "pgvector: filtered search of a named vector is not supported",
                                "search one of the collection's named vectors, without a filter")
            return [r[0] for r in conn.execute(q, (vec, int(k))).fetchall()]
        flt = with_tenant(params.filter, self.collection.tenant_field, params.tenant)
        if flt is not None:
            query, args = self._filtered_query(flt)
            rows = conn.execute(query, self._search_args(args, vec, k)).fetchall()
        else:
            rows = conn.execute(self._q_search, self._search_args([], vec, k)).fetchall()
        return [r[0] for r in rows]

    # -- read replicas ------------------------------------------------------------------------------------
    def read_nodes(self) -> list[str]:
        """The nodes searches go to: the replicas (replica1, ...), and the primary when it serves reads too."""
        replicas = [f"replica{i}" for i in range(1, len(self.options.replica_dsns) + 1)]
        return (["primary"] if self.options.reads_on_primary or not replicas else []) + replicas

    def served_by(self) -> dict[str, int]:
        return dict(getattr(self, "_served", {}))

    def _reader(self) -> Any:
        """The connection the next search goes to: the read nodes in turn (round robin), skipping one that refused
        a connection less than replica_retry_s ago. A search that fails on a node is not retried elsewhere (it
        counts as failed); the next one finds the node down and moves on."""
        nodes = self.read_nodes()
        if nodes == ["primary"]:  # one endpoint: nothing to spread, nothing to count
            return self._live()
        if not hasattr(self, "_rconn"):
            self._rconn: dict[str, Any] = {}
            self._down_until: dict[str, float] = {}
            self._rr = 0
        last: Exception | None = None
        for step in range(len(nodes)):
            i = (self._rr + step) % len(nodes)
            name = nodes[i]
            if self._down_until.get(name, 0.0) > time.monotonic():
                continue
            try:
                conn = self._live() if name == "primary" else self._replica(name)
            except self._psycopg.OperationalError as e:
                self._down_until[name] = time.monotonic() + self.options.replica_retry_s
                last = e
                continue
            self._rr = i + 1
            self._count(name)
            return conn
        if last is not None:
            raise last
        raise self._psycopg.OperationalError(f"every read node ({', '.join(nodes)}) refused a connection in the "
                                             f"last {self.options.replica_retry_s:g} s")

    def _count(self, node: str) -> None:
        if not hasattr(self, "_served"):
            self._served: dict[str, int] = {}
        self._served[node] = self._served.get(node, 0) + 1

    def _replica(self, name: str) -> Any:
        conn = self._rconn.get(name)
        if conn is not None and not (conn.broken or conn.closed):
            return conn
        if conn is not None:
            try:
                conn.close()
            except self._psycopg.Error:
                pass
            self.reconnects += 1
        dsn = self.options.replica_dsns[int(name.removeprefix("replica")) - 1]
        conn = self._psycopg.connect(dsn, autocommit=True, connect_timeout=self.options.connect_timeout_s,
                                     **_auth(self.options))
        try:
            self._session(conn)
        except BaseException:
            conn.close()
            raise
        self._rconn[name] = conn
        return conn

    def wait_replicas(self, timeout_s: float) -> list[dict[str, Any]]:
        """Until every replica has replayed the primary's WAL as of now (the table and its index included), so
        searches on it find what was loaded; per replica, how long that took."""
        lsn = self.conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        out = []
        t0 = time.perf_counter()
        for i, dsn in enumerate(self.options.replica_dsns, start=1):
            host, port = self._address(dsn)
            with self._psycopg.connect(dsn, autocommit=True, connect_timeout=self.options.connect_timeout_s,
                                       **_auth(self.options)) as conn:
                while True:
                    done, replay = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn, "
                                                "pg_last_wal_replay_lsn()::text", (lsn,)).fetchone()
                    if done:
                        break
                    if time.perf_counter() - t0 > timeout_s:
                        raise UserError(f"pgvector replica{i} at {host}:{port} had not replayed the primary's WAL "
                                        f"up to {lsn} (only to {replay}) after {timeout_s:g} s",
                                        "check its replication (bench.pgcluster status) or raise run.index_timeout_s")
                    time.sleep(0.01)
            out.append({"node": f"replica{i}", "address": f"{host}:{port}",
                        "caught_up_s": round(time.perf_counter() - t0, 4)})
        return out

    # -- info and teardown --------------------------------------------------------------------------------
    def info(self) -> EngineInfo:
        server = self.conn.execute("SHOW server_version").fetchone()[0]
        ext = self.conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        size = table_size = None
        coll = getattr(self, "collection", None)
        if coll is not None:
            names = [self._index_name(v) for v in coll.vectors] or [self._index_name()]
            size = 0
            for n in names:
                size += self.conn.execute("SELECT coalesce(pg_relation_size(to_regclass(%s)), 0)",
                                          (self._quoted(n),)).fetchone()[0]
            table_size = self.conn.execute("SELECT pg_total_relation_size(to_regclass(%s))",
                                           (self._quoted(coll.name),)).fetchone()[0]
            size = size or None  # no index built (yet)
        return EngineInfo(
            engine="pgvector",
            client_version=f"psycopg {version('psycopg')}; pgvector-python {version('pgvector')}",
            server_version=f"PostgreSQL {server}; pgvector {ext[0] if ext else 'missing'}",
            index_size_bytes=size,
            server_address=self.address,
            extra={"table_total_bytes": table_size, "index_build_s": self._build_s,
                   "ef_search_session": self._efs.get(id(self.conn)), "iterative_scan": self.options.iterative_scan,
                   "maintenance_work_mem": getattr(self, "_build_mem", self.options.maintenance_work_mem),
                   "dsn": redact_text(self.options.dsn),
                   "replica_dsns": [redact_text(d) for d in self.options.replica_dsns] or None},
            read_nodes=self.read_nodes() if self.options.replica_dsns else None,
            node_addresses=[self.address, *map(self._address, self.options.replica_dsns)]
            if self.options.replica_dsns else None,
        )

    def drop(self) -> None:
        coll = getattr(self, "collection", None)
        if coll is not None and hasattr(self, "conn"):
            stmt = self._sql().SQL("DROP TABLE IF EXISTS {}").format(self._sql().Identifier(coll.name))
            try:
                self._live().execute(stmt)
            except self._psycopg.OperationalError:  # the server restarted since: the connection is found broken
                self._live().execute(stmt)  # now, and replaced

    def close(self) -> None:
        for conn in getattr(self, "_rconn", {}).values():
            conn.close()
        self._rconn = {}
        conn = getattr(self, "conn", None)
        if conn is not None:
            conn.close()
            del self.conn


def index_quantization(indexdef: str, opclass: str) -> str | None:
    """The quantization an index definition (pg_get_indexdef) applies: fp16 (halfvec), binary (bit) or None."""
    if opclass.startswith("halfvec_") or "halfvec" in indexdef:
        return "fp16"
    if opclass.startswith("bit_") or "binary_quantize" in indexdef:
        return "binary"
    return None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0].rstrip(".") if text else type(e).__name__


def _auth(options: PgvectorOptions) -> dict[str, str]:
    """psycopg.connect keywords for the password option (the real value; it is a fingerprint in results)."""
    password = options.password.get_secret_value()
    return {"password": password} if password else {}

