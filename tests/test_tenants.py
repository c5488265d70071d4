"""Multi-tenancy ([tenants]): tenants dealt from disjoint parts of the data, uniform or zipfian tenant choice,
per-tenant exact ground truth, and `bench run` end to end on real engines' native multi-tenancy (qdrant-edge's
is_tenant index, pgvector's tenant column, Chroma server's collection per tenant), then compare and report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from backend_options import BACKEND_OPTIONS, no_server
from inproc import bench

from bench.backends.base import CollectionSpec, SearchParams
from bench.backends.query import And, Eq, with_tenant
from bench.datasets.exact import exact_topk
from bench.scenarios.tenants import TenantsScenario, tenant_topk
from bench.workload_file import parse_workload

WORKLOAD = """
name = "tenants-test"
kind = "ann"
[dataset]
source = "synthetic"
n = 1000
queries = 30
dim = 32
metric = "cosine"
seed = 5
[index]
kind = "hnsw"
m = 16
ef_construction = 64
[search]
k = 10
ef_search = [64]
[run]
trials = 1
warmup_s = 0
concurrency = 1
min_operations = 1
[tenants]
counts = [1, 10]
choice = "zipfian"
searches = 100
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tenants-cache")


def _scenario(cache: Path, counts=(1, 10, 100), choice="zipfian", n=3000):
    import tomllib

    from bench import datasets
    from bench.scenarios.base import Prep

    data = tomllib.loads(WORKLOAD)
    data["dataset"]["n"] = n
    data["tenants"] = {"counts": list(counts), "choice": choice, "searches": 2000}
    spec = parse_workload(data, "test")
    sc = TenantsScenario(spec.features["tenants"], spec)
    ds = datasets.load(spec.dataset, cache, progress=False)
    sc.prepare(Prep(spec, ds, cache, False, print, object))
    return sc, ds


def test_rows_are_dealt_into_equal_parts_and_equal_tenants_and_zipfian_favours_tenant_0(cache):
    sc, ds = _scenario(cache)
    parts = np.bincount(sc.part)
    assert parts.tolist() == [1000, 1000, 1000]
    for c, count in enumerate((1, 10, 100)):
        sizes = np.bincount(sc.tenant[sc.part == c], minlength=count)
        assert len(sizes) == count and sizes.min() == sizes.max() == 1000 // count
    _, chosen = sc.pairs[2]
    freq = np.bincount(chosen, minlength=100)
    assert freq[0] == freq.max() and freq[0] > 5 * np.median(freq)  # skewed, tenant 0 the most asked
    uni, _ = _scenario(cache, choice="uniform")
    assert np.bincount(uni.pairs[2][1], minlength=100).max() < 60  # ~20 each of 2,000
    labels = sc.payloads(np.arange(6, dtype=np.int64))["tenant"]
    assert labels == [f"n{(1, 10, 100)[sc.part[i]]}_t{sc.tenant[i]}" for i in range(6)]
    again, _ = _scenario(cache)
    assert np.array_equal(again.part, sc.part) and np.array_equal(again.pairs[1][1], sc.pairs[1][1])


def test_per_tenant_truth_is_the_exact_top_k_of_the_tenants_rows_only(cache):
    sc, ds = _scenario(cache)
    c = 1
    qidx, chosen = sc.pairs[c]
    q = ds.queries[qidx[:40]]
    owner = np.where(sc.part == c, sc.tenant, -1)
    got = tenant_topk(ds, q, chosen[:40], owner, 10)
    for i in range(40):
        mask = owner == chosen[i]
        want = exact_topk(ds.base, q[i:i + 1], 10, ds.metric, mask=mask)[0]
        assert np.array_equal(got[i], want)
        assert all(owner[j] == chosen[i] for j in got[i] if j >= 0)


def test_with_tenant_ands_the_tenant_onto_the_searchs_own_filter():
    assert with_tenant(None, "tenant", None) is None
    assert with_tenant(Eq("a", 1), "tenant", None) == Eq("a", 1)
    assert with_tenant(None, "tenant", "n10_t3") == Eq("tenant", "n10_t3")
    assert with_tenant(Eq("a", 1), "tenant", "t") == And((Eq("tenant", "t"), Eq("a", 1)))
    with pytest.raises(ValueError, match="no tenant field"):
        with_tenant(None, None, "t")


def test_qdrant_server_and_weaviate_requests_ask_for_native_tenants():
    pytest.importorskip("qdrant_client")
    pytest.importorskip("weaviate")
    from bench.backends.qdrant import payload_index_requests
    from bench.backends.weaviate import multi_tenancy_request

    c = CollectionSpec("c", 8, "cosine", payload_fields={"tenant": "keyword", "x": "int"}, tenant_field="tenant")
    reqs = {r["field_name"]: r["field_schema"] for r in payload_index_requests(c)}
    assert reqs["tenant"].is_tenant is True and not hasattr(reqs["x"], "is_tenant")
    assert multi_tenancy_request(c)["multi_tenancy_config"].enabled is True
    assert multi_tenancy_request(CollectionSpec("c", 8, "cosine")) == {}


def test_qdrant_edge_search_stays_inside_its_tenant(tmp_path):
    from bench.backends.qdrant_edge import QdrantEdgeBackend, QdrantEdgeOptions

    rng = np.random.default_rng(1)
    x = rng.standard_normal((400, 8)).astype(np.float32)
    b = QdrantEdgeBackend(QdrantEdgeOptions(), str(tmp_path))
    b.create(CollectionSpec("t", 8, "l2", payload_fields={"tenant": "keyword"}, tenant_field="tenant"))
    ids = np.arange(400, dtype=np.int64)
    b.insert(ids, x, [{"tenant": f"t{i % 4}"} for i in ids])
    built = b.wait_indexed(60)
    assert built.params["tenants"]["is_tenant"] is True
    got = b.search(x[1], 10, SearchParams(ef_search=64, tenant="t2"))
    assert len(got) == 10 and all(i % 4 == 2 for i in got)
    b.drop()


@pytest.mark.parametrize("bad, words", [
    ('counts = [1, 1000]', "exceed"),
    ('counts = [10, 10]', "distinct"),
    ('choice = "pareto"', "choice"),
])
def test_bad_tenants_table_is_one_sentence(bad, words, tmp_path):
    text = WORKLOAD.replace("counts = [1, 10]", bad) if bad.startswith("counts") else WORKLOAD.replace(
        'choice = "zipfian"', bad)
    p = _cli(tmp_path, text, "qdrant-edge")
    assert p.returncode == 2 and words in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_tenants_with_another_feature_table_and_faiss_are_refused(tmp_path):
    p = _cli(tmp_path, WORKLOAD + "[filter]\nselectivities = [0.5]\n", "qdrant-edge")
    assert p.returncode == 2 and "on its own" in p.stderr and "Traceback" not in p.stderr, p.stderr
    p = _cli(tmp_path, WORKLOAD, "faiss")
    assert p.returncode == 2 and "faiss" in p.stderr and "tenancy" in p.stderr and "Traceback" not in p.stderr


# -- end to end ----------------------------------------------------------------------------------------------

def _cli(where: Path, workload: str, backend: str, *extra: str, cache: Path | None = None):
    where.mkdir(parents=True, exist_ok=True)
    wl = where / "tenants-test.toml"
    wl.write_text(workload)
    return bench("run", "-b", backend, "-w", str(wl), "--json", "--results-dir", str(where / "results"),
                 "--cache-dir", str(cache or where / "cache"), *extra)


SERVERS = {"pgvector": [], "chroma-server": ["--set", "backend.ef_search=64"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One run per engine (qdrant-edge, pgvector, chroma-server), sharing a dataset cache."""
    root = tmp_path_factory.mktemp("tenants")
    out = {}
    for backend in ["qdrant-edge", *SERVERS]:
        reason = BACKEND_OPTIONS[backend]()
        if isinstance(reason, str):
            out[backend] = reason
            continue
        p = _cli(root / backend, WORKLOAD, backend, *SERVERS.get(backend, []), cache=root / "cache")
        assert p.returncode == 0, p.stderr[-2000:]
        out[backend] = Path(json.loads(p.stdout)["results"])
    return out


@pytest.mark.parametrize("backend", ["qdrant-edge", *SERVERS])
def test_run_measures_each_tenant_count_with_recall_inside_the_tenant(runs, backend):
    if isinstance(runs[backend], str):
        no_server(backend, runs[backend])
    run_dir = runs[backend]
    summary = pq.read_table(run_dir / "summary.parquet").to_pylist()
    assert sorted((r["tenants"], r["tenant_choice"]) for r in summary) == [(1, "zipfian"), (10, "zipfian")]
    for r in summary:
        assert r["count"] == 100 and r["errors"] == 0
        # each tenant's own exact top-k: a search leaking other tenants' records (10% of them for 10 tenants of
        # a part) or ignoring the tenant would score far lower
        assert r["recall"] >= 0.85, (backend, r["tenants"], r["recall"])
    built = json.loads(summary[0]["index_built"])
    assert built["params"]["tenants"]["field"] == "tenant"
    if backend == "pgvector":  # the planner's choice for the largest and the smallest tenant, read back
        plans = built["params"]["tenants"]["plans"]
        assert [p["rows"] for p in plans] == [500, 50] and all(isinstance(p["uses_hnsw_index"], bool) for p in plans)
    if backend == "chroma-server":
        assert built["params"]["tenants"]["collections"] == 11  # one per tenant of counts 1 and 10
    assert built["total_count"] == 1000


def test_compare_and_report_show_tenants(runs, tmp_path):
    dirs = [str(d) for d in runs.values() if not isinstance(d, str)]
    p = bench("compare", *dirs, "--format", "markdown")
    assert p.returncode == 0, p.stderr
    assert "tenants=1 zipfian" in p.stdout and "tenants=10 zipfian" in p.stdout
    from bench.analysis.load import summary_frame
    from bench.analysis.tenant_plot import against_tenants

    pic = against_tenants(summary_frame(dirs), "tenants-test")
    assert pic.figure is not None and len(pic.figure.axes[0].lines) == len(dirs)  # one line per run
    assert against_tenants(summary_frame(dirs).assign(tenants=None), "tenants-test").skipped
