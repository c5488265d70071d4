"""One conformance suite, run against every registered backend except `null` and `fake-slow`.

Each backend gets a small clustered data set (2,000 x 64 from a seeded Gaussian mixture, cosine), is created,
loaded and indexed once (module-scoped fixture), then checked: what it reports it built, info, search recall
against exact numpy top-k, filtered search, attach from a second instance, get, upsert, delete, drop and create
again. Searches come before the writes that change the data. Operations a backend does not declare in its
capabilities are skipped with the reason. Options come from tests/backend_options.py; a backend whose client
library is missing or whose server does not answer is skipped with the reason, unless BENCH_REQUIRE_SERVERS is
set (scripts/test.sh sets it), and then it fails (tests/backend_options.py: `no_server`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from backend_options import BACKEND_OPTIONS, no_server

from bench.backends import registry
from bench.backends.base import Backend, BuiltIndex, CollectionSpec, IndexSpec, SearchParams
from bench.backends.query import Eq
from bench.errors import UserError

N, DIM, CLUSTERS, NQ, K = 2000, 64, 16, 50, 10
EF = 128  # one value for every search here (a chroma-server collection is created with it)
NAME = "BenchConformance"
# reads_own_writes: the suite reads back what it just wrote (get after upsert, search after delete)
SPEC = CollectionSpec(name=NAME, dim=DIM, metric="cosine", index=IndexSpec(kind="hnsw", m=16, ef_construction=100),
                      payload_fields={"group": "int"}, reads_own_writes=True)
GROUPS = 5
EXCLUDED = {"null", "fake-slow"}
BACKENDS = [n for n in registry.names() if n not in EXCLUDED]


# -- data -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Data:
    ids: np.ndarray
    vectors: np.ndarray
    queries: np.ndarray
    payloads: list[dict]

    def exact(self, q: np.ndarray, k: int, mask: np.ndarray | None = None) -> list[int]:
        x = self.vectors / np.linalg.norm(self.vectors, axis=1, keepdims=True)
        s = x @ (q / np.linalg.norm(q))
        if mask is not None:
            s = np.where(mask, s, -np.inf)
        return [int(self.ids[i]) for i in np.argsort(-s, kind="stable")[:k]]


def _mixture(rng: np.random.Generator, centers: np.ndarray, n: int) -> np.ndarray:
    which = rng.integers(0, len(centers), n)
    return (centers[which] + 0.35 * rng.standard_normal((n, centers.shape[1]))).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> Data:
    rng = np.random.default_rng(20240601)
    centers = rng.standard_normal((CLUSTERS, DIM))
    ids = np.arange(1, N + 1, dtype=np.int64) * 3  # not 0..N-1, so an adapter cannot confuse ids and offsets
    payloads = [{"group": int(i % GROUPS)} for i in ids]
    return Data(ids, _mixture(rng, centers, N), _mixture(rng, centers, NQ), payloads)


# -- the loaded backend ---------------------------------------------------------------------------------------

@dataclass
class Loaded:
    name: str
    cls: type[Backend]
    backend: Backend
    built: BuiltIndex
    options: dict
    workdir: str


def _skip(name: str, reason: str) -> None:
    no_server(name, reason)


def _open(name: str, workdir: Path) -> tuple[type[Backend], Backend, dict]:
    opts_fn = BACKEND_OPTIONS.get(name)
    if opts_fn is None:
        _skip(name, "no entry in tests/backend_options.py")
    opts = opts_fn()
    if isinstance(opts, str):
        _skip(name, opts)
    try:
        cls = registry.get(name)
    except UserError as e:
        _skip(name, str(e))
    options = cls.Options.model_validate(opts)
    reason = cls.check_available(options)
    if reason:
        _skip(name, reason)
    backend = cls(options, str(workdir))
    backend.connect()
    return cls, backend, opts


def _load(backend: Backend, data: Data) -> BuiltIndex:
    backend.create(SPEC)
    for s in range(0, N, 500):
        backend.insert(data.ids[s:s + 500], data.vectors[s:s + 500], data.payloads[s:s + 500])
    return backend.wait_indexed(timeout_s=180)


@pytest.fixture(scope="module", params=BACKENDS)
def loaded(request: pytest.FixtureRequest, data: Data, tmp_path_factory: pytest.TempPathFactory):
    name = request.param
    workdir = tmp_path_factory.mktemp(name)
    cls, backend, opts = _open(name, workdir)
    built = _load(backend, data)
    yield Loaded(name, cls, backend, built, opts, str(workdir))
    try:
        backend.drop()
    finally:
        backend.close()


def _need(loaded: Loaded, capability: str) -> None:
    if not getattr(loaded.cls.capabilities, capability):
        pytest.skip(f"{loaded.name} does not declare capabilities.{capability}")


def _recall(found: list[list[int]], truth: list[list[int]]) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def _same_direction(a: np.ndarray, b: np.ndarray) -> bool:
    """Cosine engines may store vectors normalised, so compare directions."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))) > 0.9999


# -- the checks, in the order they run for each backend ---------------------------------------------------

def test_wait_indexed_reports_what_was_built(loaded: Loaded) -> None:
    b = loaded.built
    assert isinstance(b.kind, str) and b.kind and b.kind != "none"
    if b.kind == "hnsw":
        reported = (b.params.get("m"), b.params.get("ef_construction"))
        assert reported == (16, 100) or b.substitutions, f"params {b.params} differ from the request without a note"
    else:
        assert b.substitutions, f"{loaded.name} built {b.kind} for an hnsw request without saying so"
    if b.total_count is not None:
        assert b.total_count == N
    if b.indexed_count is not None:
        assert 0 <= b.indexed_count <= N


def test_info_reports_versions_and_address(loaded: Loaded) -> None:
    info = loaded.backend.info()
    assert info.engine
    assert info.client_version
    if loaded.cls.capabilities.server:
        assert info.server_version, "a server backend asks its server for its version"
        host, port = info.server_address
        assert isinstance(host, str) and host and isinstance(port, int) and port > 0


def test_search_recall(loaded: Loaded, data: Data) -> None:
    found = [list(loaded.backend.search(q, K, SearchParams(ef_search=EF))) for q in data.queries]
    for f in found:
        assert len(f) == K and len(set(f)) == K
        assert all(isinstance(i, int) for i in f)
    truth = [data.exact(q, K) for q in data.queries]
    recall = _recall(found, truth)
    assert recall >= 0.9, f"{loaded.name}: recall@{K} = {recall:.3f}"
    # best first: the nearest stored vector to a stored vector is itself
    assert loaded.backend.search(data.vectors[7], K, SearchParams(ef_search=EF))[0] == int(data.ids[7])


def test_prepared_queries_search_the_same(loaded: Loaded, data: Data) -> None:
    """`prepare_queries` (the form a worker converts its queries to before the clock) finds what the rows find."""
    b = loaded.backend
    queries = data.queries[:5]  # a few: a server may wait for a consistency tick on every search
    prepared = b.prepare_queries(queries)
    assert len(prepared) == len(queries)
    params = [SearchParams(ef_search=EF)]
    if loaded.cls.capabilities.filters:
        params.append(SearchParams(ef_search=EF, filter=Eq("group", 2)))
    for p in params:
        for q in queries:  # a first pass: Milvus' first filtered searches can answer otherwise than later ones
            b.search(q, K, p)
        assert [list(b.search(v, K, p)) for v in prepared] == [list(b.search(q, K, p)) for q in queries]


def test_filtered_search(loaded: Loaded, data: Data) -> None:
    _need(loaded, "filters")
    group = 2
    mask = np.array([p["group"] == group for p in data.payloads])
    params = SearchParams(ef_search=EF, filter=Eq("group", group))
    found = [list(loaded.backend.search(q, K, params)) for q in data.queries]
    allowed = set(int(i) for i in data.ids[mask])
    for f in found:
        assert len(f) == K
        assert set(f) <= allowed, f"{loaded.name} returned ids outside the filter: {sorted(set(f) - allowed)[:5]}"
    recall = _recall(found, [data.exact(q, K, mask) for q in data.queries])
    # Below plain search's 0.9: engines differ in how filters meet the graph (pre-filter, iterative scan,
    # filter-aware links). This floor catches a filter applied after a plain top-k, not a slow strategy.
    assert recall >= 0.8, f"{loaded.name}: filtered recall@{K} = {recall:.3f}"


def test_attach_from_a_second_instance(loaded: Loaded, data: Data, tmp_path: Path) -> None:
    if loaded.cls.capabilities.in_process:
        pytest.skip(f"{loaded.name} is in-process: it is driven by threads sharing one instance, never attached")
    other = loaded.cls(loaded.cls.Options.model_validate(loaded.options), loaded.workdir)
    other.connect()
    try:
        other.attach(SPEC)
        for q in data.queries[:5]:
            mine = list(loaded.backend.search(q, K, SearchParams(ef_search=EF)))
            theirs = list(other.search(q, K, SearchParams(ef_search=EF)))
            assert len(set(mine) & set(theirs)) >= K - 1
    finally:
        other.close()


def test_get(loaded: Loaded, data: Data) -> None:
    _need(loaded, "get")
    r = loaded.backend.get(int(data.ids[10]))
    assert r is not None and r.id == int(data.ids[10])
    assert _same_direction(r.vector, data.vectors[10])
    assert loaded.backend.get(10**9 + 7) is None


def test_upsert(loaded: Loaded, data: Data) -> None:
    _need(loaded, "upsert")
    target = int(data.ids[20])
    new = -data.vectors[20]  # the opposite direction: far from where it was
    loaded.backend.upsert(target, new, {"group": int(target % GROUPS)})
    if loaded.cls.capabilities.get:
        r = loaded.backend.get(target)
        assert r is not None and _same_direction(r.vector, new)
    assert target in list(loaded.backend.search(new, K, SearchParams(ef_search=EF)))[:3]


def test_delete(loaded: Loaded, data: Data) -> None:
    _need(loaded, "delete")
    target = int(data.ids[30])
    loaded.backend.delete(target)
    if loaded.cls.capabilities.get:
        assert loaded.backend.get(target) is None
    assert target not in list(loaded.backend.search(data.vectors[30], K, SearchParams(ef_search=EF)))


def test_drop_and_create_again(loaded: Loaded, data: Data) -> None:
    b = loaded.backend
    b.drop()
    built = _load(b, data)
    assert built.total_count in (None, N)
    assert b.search(data.vectors[40], K, SearchParams(ef_search=EF))[0] == int(data.ids[40])
    if loaded.cls.capabilities.get:
        assert loaded.backend.get(int(data.ids[30])) is not None, "a dropped and re-created collection is fresh"


def test_installed_finds_client_modules_without_importing_them(monkeypatch) -> None:
    import sys

    from bench.backends.base import installed

    monkeypatch.delitem(sys.modules, "weaviate", raising=False)
    assert installed("weaviate", "json") and "weaviate" not in sys.modules  # found, not imported
    assert not installed("json", "no_such_client_module") and not installed("no_such_client_module.sub")
