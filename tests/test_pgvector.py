"""pgvector specifics, against a live server (`python scripts/services.py up pgvector`): the index is read back
from the catalog, ef_search is SET only when it changes, metrics and filters map faithfully, and user
mistakes (unreachable server, too many dimensions, a build past its timeout) end in one clear UserError."""

from __future__ import annotations

import socket
from typing import Any

import numpy as np
import pytest
from backend_options import server_options

from bench.backends.base import CollectionSpec, IndexSpec, SearchParams
from bench.backends.query import And, Eq, Range
from bench.errors import ServerUnreachable, UserError

pytest.importorskip("psycopg")
from bench.backends._net import start_hint
from bench.backends.pgvector import PgvectorBackend, PgvectorOptions


@pytest.fixture(scope="module")
def options() -> PgvectorOptions:
    return PgvectorOptions.model_validate(server_options("pgvector"))


@pytest.fixture
def backend(options: PgvectorOptions, tmp_path):
    b = PgvectorBackend(options, str(tmp_path))
    b.connect()
    yield b
    b.drop()
    b.close()


def _data(n: int = 1000, dim: int = 16, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_a_user_error_with_the_compose_hint(tmp_path) -> None:
    port = _free_port()
    opts = PgvectorOptions(dsn=f"postgresql://bench@127.0.0.1:{port}/bench", connect_timeout_s=2)
    reason = PgvectorBackend.check_available(opts)
    assert reason and f"127.0.0.1:{port}" in reason and start_hint("pgvector") in reason
    with pytest.raises(ServerUnreachable) as e:
        PgvectorBackend(opts, str(tmp_path)).connect()
    msg = str(e.value)
    assert f"127.0.0.1:{port}" in msg and start_hint("pgvector") in msg and "\n" not in msg


def test_bad_dsn_is_a_user_error(tmp_path) -> None:
    with pytest.raises(UserError, match="not a valid connection string"):
        PgvectorBackend(PgvectorOptions(dsn="postgresql://x@h:notaport/db"), str(tmp_path)).connect()


@pytest.mark.parametrize("metric,opclass", [("cosine", "vector_cosine_ops"), ("l2", "vector_l2_ops"),
                                            ("ip", "vector_ip_ops")])
def test_index_is_read_back_and_searches_follow_the_metric(backend: PgvectorBackend, metric: str, opclass: str) -> None:
    x = _data(2000)  # at 1,000 rows of 16-d PostgreSQL plans a sequential scan (and the read-back says so)
    backend.create(CollectionSpec("pgv_metric", 16, metric, IndexSpec(m=12, ef_construction=48)))
    backend.insert(np.arange(len(x)), x)
    built = backend.wait_indexed(60)
    assert built.kind == "hnsw" and built.params["search_plan_uses_index"] is True
    assert built.params["m"] == 12 and built.params["ef_construction"] == 48 and built.params["opclass"] == opclass
    assert built.total_count == built.indexed_count == len(x)
    assert not built.substitutions
    info = backend.info()
    assert info.index_size_bytes and info.index_size_bytes > 0
    assert info.server_version.startswith("PostgreSQL ") and "pgvector 0." in info.server_version
    q = _data(20, seed=2)
    if metric == "l2":
        score = -((x[None, :, :] - q[:, None, :]) ** 2).sum(-1)
    elif metric == "ip":
        score = q @ x.T
    else:
        score = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (x / np.linalg.norm(x, axis=1, keepdims=True)).T
    truth = np.argsort(-score, axis=1)[:, :10]
    found = [backend.search(v, 10, SearchParams(ef_search=100)) for v in q]
    recall = np.mean([len(set(f) & set(t.tolist())) / 10 for f, t in zip(found, truth, strict=True)])
    assert recall >= 0.9


def test_a_planner_that_skips_the_index_is_a_substitution(backend: PgvectorBackend) -> None:
    x = _data(1000)
    backend.create(CollectionSpec("pgv_small", 16, "cosine", IndexSpec(m=12, ef_construction=48)))
    backend.insert(np.arange(len(x)), x)
    built = backend.wait_indexed(60)
    assert built.kind == "hnsw" and built.params["search_plan_uses_index"] is False
    assert built.substitutions == ["the planner does not use index pgv_small_hnsw for a search; searches are exact scans"]


def test_flat_request_builds_no_index_and_says_so(backend: PgvectorBackend) -> None:
    x = _data(200)
    backend.create(CollectionSpec("pgv_flat", 16, "l2", IndexSpec(kind="flat")))
    backend.insert(np.arange(200), x)
    built = backend.wait_indexed(60)
    assert built.kind == "flat" and built.params["scan"] == "sequential" and not built.substitutions
    assert set(built.params) == {"scan", "load_recipe"} and "maintenance_work_mem" not in built.params["load_recipe"]
    assert backend.search(x[5], 1, SearchParams())[0] == 5


class _CountingConn:
    """The real connection, with a record of the statements the adapter sends."""

    def __init__(self, conn: Any):
        self._conn, self.sent = conn, []

    def execute(self, query: Any, *args: Any, **kw: Any) -> Any:
        self.sent.append(query.as_string(self._conn) if hasattr(query, "as_string") else str(query))
        return self._conn.execute(query, *args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_ef_search_is_set_only_when_it_changes(backend: PgvectorBackend) -> None:
    x = _data(300)
    backend.create(CollectionSpec("pgv_ef", 16, "cosine"))
    backend.insert(np.arange(300), x)
    backend.wait_indexed(60)
    spy = _CountingConn(backend.conn)
    backend.conn = spy
    for ef in (77, 77, 77, 90, 90, None, None):
        backend.search(x[0], 5, SearchParams(ef_search=ef))
    sets = [s for s in spy.sent if "hnsw.ef_search" in s]
    assert sets == ["SET hnsw.ef_search = 77", "SET hnsw.ef_search = 90", "RESET hnsw.ef_search"]
    assert sum("SELECT id" in s for s in spy.sent) == 7, "every search is one statement; nothing is cached"
    backend.search(x[0], 5, SearchParams(ef_search=33))
    assert spy._conn.execute("SHOW hnsw.ef_search").fetchone()[0] == "33"
    backend.conn = spy._conn


def test_filters_on_declared_and_undeclared_fields(backend: PgvectorBackend) -> None:
    x = _data(400)
    backend.create(CollectionSpec("pgv_filter", 16, "l2", payload_fields={"group": "int"}))
    backend.insert(np.arange(400), x, [{"group": i % 4, "tag": f"t{i % 3}"} for i in range(400)])
    backend.wait_indexed(60)
    hits = backend.search(x[0], 10, SearchParams(ef_search=64, filter=Eq("group", 1)))
    assert len(hits) == 10 and all(i % 4 == 1 for i in hits)
    hits = backend.search(x[0], 10, SearchParams(ef_search=64, filter=And((Eq("tag", "t2"), Eq("group", 3)))))
    assert len(hits) == 10 and all(i % 3 == 2 and i % 4 == 3 for i in hits)
    hits = backend.search(x[0], 10, SearchParams(ef_search=64, filter=Range("group", lt=2)))
    assert len(hits) == 10 and all(i % 4 < 2 for i in hits)


def test_index_build_past_its_timeout_is_a_user_error(backend: PgvectorBackend) -> None:
    x = _data(3000, 64)
    backend.create(CollectionSpec("pgv_timeout", 64, "l2", IndexSpec(m=32, ef_construction=400)))
    backend.insert(np.arange(len(x)), x)
    with pytest.raises(UserError, match=r"did not finish building the HNSW index within the 0.001 s timeout"):
        backend.wait_indexed(0.001)


def test_too_many_dimensions_for_hnsw_is_a_user_error(backend: PgvectorBackend) -> None:
    backend.create(CollectionSpec("pgv_dims", 2001, "l2"))
    backend.insert(np.arange(2), np.ones((2, 2001), np.float32))
    with pytest.raises(UserError, match="at most 2,000 dimensions"):
        backend.wait_indexed(60)


def test_attach_to_a_missing_table_is_a_user_error(options: PgvectorOptions, tmp_path) -> None:
    b = PgvectorBackend(options, str(tmp_path))
    b.connect()
    try:
        with pytest.raises(UserError, match="does not exist"):
            b.attach(CollectionSpec("pgv_never_created", 8, "l2"))
    finally:
        b.close()
