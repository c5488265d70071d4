"""The mixed filtered load: filtered searches beside plain searches and upserts in a YCSB mix.

Unit tests of the payload of inserted keys and of filtered ground truth under writes (against a brute force
built independently); the worker's upserts on real engines keep each key's payload (read back through the
adapter); `bench run` end to end on qdrant-edge (in-process) and pgvector (server on loopback); refusals."""

from __future__ import annotations

import json
import tempfile

import numpy as np
import pyarrow.parquet as pq
import pytest
from backend_options import server_options

from bench.backends import registry
from bench.backends.base import CollectionSpec, SearchParams
from bench.datasets import filtered
from bench.datasets.exact import exact_topk
from bench.load.task import PhaseTask
from bench.load.worker import WorkerData, run_phase
from bench.metrics.recall import recall_under_updates
from bench.ops import YcsbSpec
from bench.results.worker import WorkerResult

TINY = ["--set", "dataset.n=2000", "--set", "dataset.dim=48", "--set", "dataset.queries=40", "--set", "run.min_operations=1",
        "--set", "dataset.holdout=500", "--set", "run.warmup_s=0.2", "--set", "run.duration_s=0.8",
        "--set", "index.m=16", "--set", "index.ef_construction=100", "--set", "search.ef_search=[200]",
        "--trials", "2"]


# -- payloads of keys written under load --------------------------------------------------------------------

def test_inserted_keys_get_seeded_payloads_near_the_selectivity():
    keys = np.arange(10_000, 60_000, dtype=np.int64)
    for s in (0.5, 0.1, 0.01):
        m = filtered.inserted_mask(keys, s, seed=42)
        assert m.dtype == bool and m.shape == keys.shape
        assert abs(m.mean() - s) < 4 * np.sqrt(s * (1 - s) / len(keys)), (s, m.mean())
        assert np.array_equal(m, filtered.inserted_mask(keys, s, seed=42))  # the same for every caller
        assert not np.array_equal(m, filtered.inserted_mask(keys, s, seed=43))
    # a key's answer does not depend on which other keys are asked with it
    one = [bool(filtered.inserted_mask(np.array([k]), 0.1, 42)[0]) for k in keys[:200]]
    assert one == filtered.inserted_mask(keys[:200], 0.1, 42).tolist()


def test_key_payloads_agree_with_the_load_and_between_mask_and_payload():
    cases = filtered.cases([0.1, 0.01])
    kp = filtered.KeyPayloads(3000, cases, seed=5)
    loaded = filtered.masks(3000, cases, seed=5)
    ids = np.arange(3000, dtype=np.int64)
    assert filtered.payloads(ids[:50], loaded) == [kp.payload(int(i)) for i in ids[:50]]
    new = np.arange(3000, 4000, dtype=np.int64)
    for c in cases:
        assert np.array_equal(kp.mask(c.field, ids), loaded[c.field])
        both = kp.mask(c.field, np.concatenate([ids[:10], new]))
        assert [kp.payload(int(k))[c.field] for k in new] == both[10:].astype(int).tolist()
        assert np.array_equal(both[10:], filtered.inserted_mask(new, c.selectivity, 5))
    assert filtered.key_payloads(3000, tuple(cases), 5) is filtered.key_payloads(3000, tuple(cases), 5)


def test_key_payloads_of_range_cases_rank_inserted_keys_uniformly():
    n = 3000
    cases = filtered.cases([0.1, 0.01], kind="range", n=n)
    kp = filtered.KeyPayloads(n, cases, seed=5)
    loaded = filtered.columns(n, cases, seed=5)
    ids = np.arange(n, dtype=np.int64)
    assert filtered.payloads(ids[:50], loaded) == [kp.payload(int(i)) for i in ids[:50]]
    new = np.arange(n, n + 40_000, dtype=np.int64)
    ranks = filtered.inserted_rank(new, n, 5)
    assert ranks.min() >= 0 and ranks.max() < n and np.array_equal(ranks, filtered.inserted_rank(new, n, 5))
    assert not np.array_equal(ranks, filtered.inserted_rank(new, n, 6))
    assert [kp.payload(int(k)) for k in new[:20]] == [{"rank": int(r)} for r in ranks[:20]]
    for c in cases:
        assert np.array_equal(kp.mask(c, ids), loaded["rank"] < c.value)
        share = kp.mask(c, new).mean()
        assert abs(share - c.selectivity) < 4 * np.sqrt(c.selectivity / len(new)) + 1e-3, (c.label, share)
        mixed = np.concatenate([ids[:10], new[:10]])
        assert np.array_equal(kp.mask(c, mixed), np.concatenate([kp.mask(c, ids[:10]), kp.mask(c, new[:10])]))
    with pytest.raises(KeyError, match="pass the case"):
        kp.mask("rank", ids)  # one field, two cases: the case must be named
    assert np.array_equal(kp.mask(cases[0].key, ids), kp.mask(cases[0], ids))


# -- filtered ground truth under writes, against brute force ------------------------------------------------

class _DS:
    metric = "l2"

    def __init__(self, base, holdout, queries):
        self.base, self.holdout, self.queries = base, holdout, queries


class _State:
    def __init__(self, before, log):
        self.before, self.trial_log = before, log


def _collection_at(base, holdout, writes):
    """The collection after `writes` (key -> holdout row), built independently: ids and vectors."""
    vecs = {i: base[i] for i in range(len(base))}
    for key, row in writes.items():
        vecs[key] = holdout[row]
    ids = np.array(sorted(vecs), dtype=np.int64)
    return ids, np.stack([vecs[i] for i in ids])


@pytest.mark.parametrize("cache_bytes", [512 << 20, 0])  # base scores cached per query, or computed per search
def test_filtered_recall_under_writes_matches_brute_force_over_updates_and_inserts(monkeypatch, cache_bytes):
    monkeypatch.setattr("bench.metrics.recall.SCORE_CACHE_BYTES", cache_bytes)
    rng = np.random.default_rng(1)
    n, dim = 400, 8
    base = rng.standard_normal((n, dim)).astype(np.float32)
    queries = rng.standard_normal((12, dim)).astype(np.float32)
    # written vectors land right next to the queries, so every write changes some query's top-k
    holdout = (np.repeat(queries, 5, axis=0) + 0.05 * rng.standard_normal((60, dim))).astype(np.float32)
    ds = _DS(base, holdout, queries)
    cases = filtered.cases([0.1])
    kp = filtered.KeyPayloads(n, cases, seed=9)
    field = cases[0].field
    old_in = np.flatnonzero(kp.masks[field])[:3].tolist()
    old_out = np.flatnonzero(~kp.masks[field])[:2].tolist()
    new_keys = np.arange(n, n + 200)
    new_in = new_keys[kp.mask(field, new_keys)][:3].tolist()
    new_out = new_keys[~kp.mask(field, new_keys)][:2].tolist()
    assert len(new_in) == 3 and len(old_in) == 3
    # writes before the trial, then a log during it: updates of loaded keys and inserts of new keys (>= n), some
    # kept by the filter and some not; a key written twice keeps its payload
    before = {old_in[0]: 0, old_out[0]: 5}
    order = [new_in[0], old_in[1], new_out[0], old_out[1], new_in[1], old_in[1], new_in[2], old_in[2], new_out[1]]
    log = [(100 + 10 * i, key, 10 + 5 * i + i % 5) for i, key in enumerate(order)]
    state = _State(before, log)
    starts = [50, 125, 165, 300]  # before, between and after the logged writes
    k = 10
    truth, stale = [], []
    for t in starts:
        writes = dict(before) | {key: row for at, key, row in log if at < t}
        ids, vecs = _collection_at(base, holdout, writes)
        keep = kp.mask(field, ids)
        got = exact_topk(vecs[keep], queries, k, "l2")
        truth.append(np.where(got >= 0, ids[keep][np.maximum(got, 0)], -1))
        # the same search scored without the writes: what a collection that lost them would return
        old = exact_topk(base, queries, k, "l2", mask=filtered.masks(n, cases, 9)[field])
        stale.append(old)
    r = WorkerResult(worker=0, started_wall=0, ended_wall=1)
    qi = np.array([i % len(queries) for i in range(len(starts) * 3)])
    r.search_queries = qi
    r.search_started = np.repeat(starts, 3)
    r.search_filtered = np.ones(len(qi), dtype=bool)
    r.search_ids = np.stack([truth[i // 3][qi[i]] for i in range(len(qi))])
    allowed = lambda keys: kp.mask(field, keys)  # noqa: E731
    assert recall_under_updates([r], state, ds, k, allowed=allowed) == pytest.approx(1.0)
    assert recall_under_updates([r], state, ds, k) is None  # no unfiltered search was sampled
    r.search_ids = np.stack([stale[i // 3][qi[i]] for i in range(len(qi))])
    assert recall_under_updates([r], state, ds, k, allowed=allowed) < 0.95
    # an unfiltered top-k scored as a filtered search mostly misses
    r.search_ids = exact_topk(base, queries[qi], k, "l2")
    assert recall_under_updates([r], state, ds, k, allowed=allowed) < 0.5


def test_plain_recall_under_writes_counts_inserted_keys():
    """A search that finds a newly inserted record right next to the query scores it as a hit."""
    rng = np.random.default_rng(2)
    base = rng.standard_normal((100, 8)).astype(np.float32)
    holdout = rng.standard_normal((10, 8)).astype(np.float32)
    ds = _DS(base, holdout, holdout[:1] + 0.001)
    state = _State({}, [(100, 100, 0)])  # at t=100 a new key 100 got holdout row 0
    r = WorkerResult(worker=0, started_wall=0, ended_wall=1)
    r.search_queries, r.search_ids = np.array([0, 0]), np.array([[100], [100]])
    r.search_started = np.array([200, 50])
    r.search_filtered = np.array([False, False])
    assert recall_under_updates([r], state, ds, 1) == pytest.approx(0.5)  # right after the insert, not before


# -- upserts keep the payload on real engines ---------------------------------------------------------------

def _backend(name, workdir):
    opts = server_options(name)
    cls = registry.get(name)
    b = cls(cls.Options.model_validate(opts), workdir)
    b.connect()
    return b


# qdrant-local: the Qdrant server adapter's logic on qdrant-client's local mode (never a Qdrant figure)
@pytest.mark.parametrize("name", ["qdrant-edge", "pgvector", "chroma", "milvus-lite", "qdrant-local"])
def test_worker_upserts_and_inserts_carry_each_keys_payload(name):
    n, dim = 1500, 16
    rng = np.random.default_rng(4)
    base = rng.standard_normal((n, dim)).astype(np.float32)
    holdout = rng.standard_normal((400, dim)).astype(np.float32)
    cases = filtered.cases([0.1])
    field = cases[0].field
    kp = filtered.KeyPayloads(n, cases, seed=11)
    with tempfile.TemporaryDirectory() as d:
        b = _backend(name, d)
        b.create(CollectionSpec("bench_test_ycsb_filtered", dim, "l2", payload_fields=filtered.payload_fields(cases)))
        try:
            ids = np.arange(n, dtype=np.int64)
            b.insert(ids, base, filtered.payloads(ids, kp.masks))
            b.wait_indexed(120)
            task = PhaseTask(mode="ycsb", trial=0, seed=11, k=10, ef_search=200, duration_s=None, operations=300,
                             ycsb=YcsbSpec(update_proportion=0.6, insert_proportion=0.4,
                                           request_distribution="uniform"),
                             record_count=n, payload_cases=tuple(cases), params={"filter": cases[0].query},
                             track_writes=True)
            res = run_phase(b, WorkerData(base[:10], base, holdout), task, 0, 1)
            assert not res.errors, res.error_samples
            last = {key: row for _, key, row in sorted(map(tuple, res.updates.tolist()))}
            assert len(last) > 100 and any(k >= n for k in last) and any(k < n for k in last)
            for key in list(last)[:60]:
                rec = b.get(key)
                assert rec is not None and dict(rec.payload or {}) == kp.payload(key), (key, rec and rec.payload)
            hits = misses = 0
            for key, row in list(last.items())[:80]:
                got = list(b.search(holdout[row], 10, SearchParams(ef_search=200, filter=cases[0].query)))
                assert got and kp.mask(field, np.array(got)).all(), (key, got)  # only records the filter keeps
                if kp.mask(field, np.array([key]))[0]:
                    assert key in got  # a written record that qualifies is still found through the filter
                    hits += 1
                else:
                    assert key not in got
                    misses += 1
            assert hits and misses
        finally:
            b.drop()
            b.close()


def test_weaviate_upsert_object_carries_the_payload():
    """No Weaviate server here: the object the adapter's upsert writes (a replace by uuid) holds the payload."""
    pytest.importorskip("weaviate")
    from bench.backends.weaviate import ID_PROPERTY, data_object

    kp = filtered.KeyPayloads(100, filtered.cases([0.5, 0.1]), seed=1)
    for key in (3, 150):
        obj = data_object(key, np.ones(4, dtype=np.float32), kp.payload(key))
        assert obj.properties == {**kp.payload(key), ID_PROPERTY: key}


# -- bench run end to end -----------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["qdrant-edge", "pgvector"])
def test_run_mixed_filtered_load(bench_cli, tmp_path, backend):
    if backend == "pgvector":
        server_options("pgvector")
    p = bench_cli("run", "--backend", backend, "--workload", "ycsb-filtered-mixed", *TINY, "--json")
    assert p.returncode == 0, p.stderr
    run_dir = tmp_path / json.loads(p.stdout)["results"]
    trials = pq.read_table(run_dir / "trials.parquet").to_pylist()
    assert {r["op"] for r in trials} == {"search", "filtered-search", "update", "total"}
    assert {(r["filter"], r["selectivity"]) for r in trials} == {("sel_1=1", 0.01)}
    for t in range(2):
        rows = {r["op"]: r for r in trials if r["trial"] == t}
        assert all(r["status"] == "ok" and r["errors"] == 0 and r["count"] > 0 for r in rows.values())
        assert sum(r["count"] for op, r in rows.items() if op != "total") == rows["total"]["count"]
        share = rows["filtered-search"]["count"] / rows["total"]["count"]
        assert 0.3 < share < 0.5, share  # 40% of the mix
        # recall of both kinds against exact ground truth that follows the upserts; ef_search=200 on 2,000 rows
        assert rows["filtered-search"]["recall"] is not None and rows["filtered-search"]["recall"] >= 0.95
        assert rows["search"]["recall"] is not None and rows["search"]["recall"] >= 0.9
        assert rows["update"]["recall"] is None
        assert rows["total"]["recall"] == rows["search"]["recall"]
    summary = pq.read_table(run_dir / "summary.parquet").to_pylist()
    assert {r["op"] for r in summary} == {"search", "filtered-search", "update", "total"}


def test_run_mixed_filtered_load_one_configuration_per_selectivity(bench_cli, tmp_path):
    p = bench_cli("run", "--backend", "qdrant-edge", "--workload", "ycsb-filtered-mixed", *TINY, "--trials", "1",
                  "--set", "filter.selectivities=[0.1, 0.01]", "--json")
    assert p.returncode == 0, p.stderr
    trials = pq.read_table(tmp_path / json.loads(p.stdout)["results"] / "trials.parquet").to_pylist()
    assert sorted((r["filter"], r["op"]) for r in trials) == sorted(
        (f, op) for f in ("sel_10=1", "sel_1=1") for op in ("search", "filtered-search", "update", "total"))
    for r in trials:
        if r["op"] == "filtered-search":
            assert r["recall"] >= 0.9 and r["count"] > 0, r


@pytest.mark.parametrize("args, words", [
    (["--backend", "faiss"], ["faiss", "cannot update records"]),
    (["--backend", "fake-slow"], ["fake-slow", "cannot push payload filters"]),  # upserts, no filters
    (["--backend", "qdrant-edge", "--set", "ycsb.filtered_search_proportion=0", "--set", "ycsb.search_proportion=0.8"],
     ["[filter]", "filtered_search_proportion"]),
    (["--backend", "qdrant-edge", "--set", "dataset.holdout=0"], ["holdout"]),
])
def test_mixed_filtered_refusals_are_user_errors(bench_cli, args, words):
    p = bench_cli("run", "--workload", "ycsb-filtered-mixed", *TINY, *args, "--quiet")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert all(w in p.stderr for w in words), p.stderr


def test_filtered_search_without_a_filter_table_is_a_user_error(bench_cli, tmp_path):
    wl = tmp_path / "nofilter.toml"
    wl.write_text('name = "nofilter"\nkind = "ycsb"\n[dataset]\nn = 500\ndim = 8\nholdout = 50\n'
                  "[ycsb]\nfiltered_search_proportion = 0.5\nupdate_proportion = 0.5\n")
    p = bench_cli("run", "--backend", "qdrant-edge", "--workload", str(wl), "--quiet")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "filtered_search_proportion" in p.stderr and "[filter]" in p.stderr, p.stderr


def test_bench_fault_refuses_a_filtered_workload(bench_cli):
    """bench fault's own worker has no filtered search: it refuses rather than run them unfiltered."""
    p = bench_cli("fault", "--backend", "pgvector", "--workload", "ycsb-filtered-mixed", "--quiet")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "filtered searches" in p.stderr and "[filter]" in p.stderr, p.stderr
