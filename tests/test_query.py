"""The typed query model (`bench.backends.query`): the filter tree, its labels and exact evaluation."""

from __future__ import annotations

import itertools
import json
import pickle

import numpy as np
import pytest
from backend_options import no_server, server_options

from bench.backends.base import SearchParams
from bench.backends.query import (
    And,
    ConditionParser,
    Eq,
    Filter,
    Or,
    Range,
    evaluate,
    label,
    payload_fields_of,
)
from bench.errors import UserError

# -- the tree -------------------------------------------------------------------------------------------------


def test_labels_are_stable_and_equality_stays_field_equals_value():
    assert label(Eq("sel_10", 1)) == "sel_10=1"
    assert label(Eq("color", "red")) == "color=red"
    assert label(Range("rank", lt=1000)) == "rank<1000"
    assert label(Range("rank", gte=5, lt=10)) == "rank>=5 & rank<10"
    assert label(Range("rank", lt=10, gte=5)) == "rank>=5 & rank<10"  # bounds in one order whatever the call
    assert label(Range("x", gt=0.5, lte=2)) == "x>0.5 & x<=2"
    assert label(And((Eq("a", 1), Or((Eq("b", 2), Range("c", lt=3)))))) == "a=1 & (b=2 | c<3)"
    assert label(Or((And((Eq("a", 1), Eq("b", 2))), Range("r", gte=1, lt=4)))) == "(a=1 & b=2) | (r>=1 & r<4)"
    assert label(And((Eq("a", 1),))) == "a=1"
    assert label(Or((And((Eq("a", 1),)), Eq("b", 2)))) == "a=1 | b=2"


def test_nodes_are_hashable_comparable_and_picklable():
    tree = And((Eq("a", np.int64(1)), Or((Range("r", gte=np.float32(0.5), lt=10), Eq("b", "x")))))
    again = pickle.loads(pickle.dumps(tree))
    assert again == tree and hash(again) == hash(tree)
    assert type(tree.items[0].value) is int  # numpy scalars become plain Python values
    assert {tree: 1}[again] == 1
    assert And([Eq("a", 1)]).items == (Eq("a", 1),)  # a list of items becomes a tuple
    assert isinstance(tree, Filter) and not isinstance({"a": 1}, Filter)
    with pytest.raises(AttributeError):
        tree.items = ()  # frozen


@pytest.mark.parametrize("make", [
    lambda: Range("rank"),  # no bound
    lambda: Range("rank", lt="10"),
    lambda: Range("rank", lt=True),
    lambda: Range("rank", gt=float("nan")),
    lambda: Range("rank", lte=float("inf")),
    lambda: Range("", lt=1),
    lambda: Eq("a", 0.5),
    lambda: Eq("a", True),
    lambda: Eq("a", None),
    lambda: Eq(3, 1),
    lambda: And(()),
    lambda: Or(()),
])
def test_invalid_nodes_are_refused(make):
    with pytest.raises(ValueError):
        make()


def test_and_or_take_only_filter_nodes():
    with pytest.raises(TypeError):
        And(({"a": 1},))
    with pytest.raises(TypeError):
        Or((Eq("a", 1), "b=2"))


def _columns(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"a": rng.integers(0, 4, n), "r": rng.permutation(n), "x": rng.uniform(0, 1, n),
            "tag": rng.choice(np.array(["red", "blue", "green"]), n)}


def _holds(node: Filter, row: dict) -> bool:
    """The brute-force answer for one row."""
    if isinstance(node, Eq):
        return row[node.field] == node.value
    if isinstance(node, Range):
        v = row[node.field]
        return ((node.gt is None or v > node.gt) and (node.gte is None or v >= node.gte)
                and (node.lt is None or v < node.lt) and (node.lte is None or v <= node.lte))
    if isinstance(node, And):
        return all(_holds(i, row) for i in node.items)
    return any(_holds(i, row) for i in node.items)


TREES = [
    Eq("a", 2),
    Eq("tag", "blue"),
    Range("r", lt=37),
    Range("r", gte=10, lte=20),
    Range("x", gt=0.25, lt=0.75),
    And((Eq("a", 1), Range("r", lt=100))),
    Or((Eq("a", 0), Eq("tag", "green"))),
    Or((And((Eq("a", 3), Range("x", gte=0.5))), Range("r", gt=180), Eq("tag", "red"))),
    And((Or((Eq("a", 1), Eq("a", 2))), Or((Range("r", lt=50), Range("r", gte=150))))),
    And((Eq("a", 9),)),  # keeps nothing
]


@pytest.mark.parametrize("tree", TREES, ids=[label(t) for t in TREES])
def test_evaluate_matches_a_brute_force_loop(tree):
    cols = _columns(200, seed=5)
    rows = [{f: c[i].item() for f, c in cols.items()} for i in range(200)]
    got = evaluate(tree, cols)
    assert got.dtype == bool and got.shape == (200,)
    assert got.tolist() == [_holds(tree, r) for r in rows]


def test_evaluate_names_a_missing_column():
    with pytest.raises(KeyError, match="'nope'"):
        evaluate(Eq("nope", 1), _columns(10, 0))


def test_payload_fields_of():
    assert payload_fields_of(TREES[7]) == {"a", "x", "r", "tag"}
    assert payload_fields_of(Range("r", lt=1)) == {"r"}


def test_a_condition_parser_walks_the_tree_once_bottom_up():
    class Recorder(ConditionParser[tuple]):
        def __init__(self):
            self.calls = []

        def build_eq(self, field, value):
            self.calls.append("eq")
            return ("eq", field, value)

        def build_range(self, field, **bounds):
            self.calls.append("range")
            return ("range", field, bounds)

        def build_and(self, items):
            self.calls.append("and")
            return ("and", items)

        def build_or(self, items):
            self.calls.append("or")
            return ("or", items)

    p = Recorder()
    out = p.parse(And((Eq("a", 1), Or((Range("r", gte=1, lt=5), Eq("b", "x"))))))
    assert out == ("and", [("eq", "a", 1), ("or", [("range", "r", {"gte": 1, "lt": 5}), ("eq", "b", "x")])])
    assert p.calls == ["eq", "range", "eq", "or", "and"]  # each node once, children first
    with pytest.raises(TypeError):
        p.parse({"a": 1})


def test_every_combination_of_bounds_is_a_valid_range():
    for k in range(1, 5):
        for names in itertools.combinations(("gt", "gte", "lt", "lte"), k):
            r = Range("r", **{n: 3 for n in names})
            assert list(r.bounds()) == list(names)


# -- each engine's translator ---------------------------------------------------------------------------------

EQ, RANGE = Eq("group", 1), Range("rank", gte=5, lt=10)
AND = And((EQ, Range("rank", lt=300)))
OR = Or((EQ, RANGE, Eq("tag", "x")))
NESTED = And((EQ, Or((RANGE, Eq("tag", "x")))))


def test_qdrant_server_translator():
    pytest.importorskip("qdrant_client")
    from qdrant_client import models as m

    from bench.backends.qdrant import query_filter

    def dump(node):
        return json.loads(query_filter(node).model_dump_json(exclude_none=True))

    eq = {"key": "group", "match": {"value": 1}}
    rng = {"key": "rank", "range": {"gte": 5.0, "lt": 10.0}}
    assert query_filter(EQ) == m.Filter(must=[m.FieldCondition(key="group", match=m.MatchValue(value=1))])
    assert dump(EQ) == {"must": [eq]}
    assert dump(RANGE) == {"must": [rng]}
    assert dump(AND) == {"must": [eq, {"key": "rank", "range": {"lt": 300.0}}]}
    assert dump(OR) == {"should": [eq, rng, {"key": "tag", "match": {"value": "x"}}]}
    assert dump(NESTED) == {"must": [eq, {"should": [rng, {"key": "tag", "match": {"value": "x"}}]}]}
    assert query_filter(None) is None


def test_qdrant_edge_translator_builds_the_same_tree():
    pytest.importorskip("qdrant_edge")
    import qdrant_edge as q

    from bench.backends._qdrant_common import edge_api, query_filter

    api = edge_api()
    f = query_filter(EQ, api)
    assert isinstance(f, q.Filter) and f.should is None
    (cond,) = f.must
    assert (cond.key, cond.match.value, cond.range) == ("group", 1, None)
    (cond,) = query_filter(RANGE, api).must
    assert cond.key == "rank" and (cond.range.gte, cond.range.gt, cond.range.lt, cond.range.lte) == (5, None, 10, None)
    f = query_filter(NESTED, api)
    eq, inner = f.must
    assert eq.key == "group" and isinstance(inner, q.Filter) and inner.must is None
    assert [c.key for c in inner.should] == ["rank", "tag"] and inner.should[1].match.value == "x"
    assert query_filter(OR, api).must is None and len(query_filter(OR, api).should) == 3


def test_qdrant_adapters_share_the_quantization_builders():
    pytest.importorskip("qdrant_client")
    pytest.importorskip("qdrant_edge")
    from bench.backends import _qdrant_common as common
    from bench.backends.qdrant_edge import QdrantEdgeBackend

    for api in (common.client_api(), common.edge_api()):
        assert common.quantization_config(None, api) is None and common.quantization_config("fp16", api) is None
        assert common.quantization_search_params("fp16", True, api) is None
        on = common.quantization_search_params("int8", True, api)
        assert on.rescore is True and on.oversampling == common.RESCORE_OVERSAMPLING
        assert common.quantization_search_params("pq", False, api).oversampling is None
        with pytest.raises(UserError, match="no quantization 'lvq'"):
            common.quantization_config("lvq", api)
    edge = common.quantization_config("int8", common.edge_api())
    assert edge.quantile == pytest.approx(common.SCALAR_QUANTILE) and edge.always_ram is True
    assert not hasattr(QdrantEdgeBackend, "_quantization_config")  # one builder, not two


def test_pgvector_translator_is_a_parameterized_where_clause():
    pytest.importorskip("psycopg")
    from psycopg.types.json import Jsonb

    from bench.backends.pgvector import PgConditionParser

    p = PgConditionParser({"group": "int", "rank": "int"}, Jsonb)

    def sql(node):
        cond, args = p.parse(node)
        return cond.as_string(None), args

    assert sql(EQ) == ('"p_group" = %s', [1])
    assert sql(RANGE) == ('("p_rank" >= %s AND "p_rank" < %s)', [5, 10])
    assert sql(AND) == ('("p_group" = %s AND "p_rank" < %s)', [1, 300])
    text, args = sql(OR)
    assert text == '("p_group" = %s OR ("p_rank" >= %s AND "p_rank" < %s) OR payload @> %s)'
    assert args[:3] == [1, 5, 10] and args[3].obj == {"tag": "x"}  # undeclared field: jsonb containment
    assert sql(NESTED)[0] == '("p_group" = %s AND (("p_rank" >= %s AND "p_rank" < %s) OR payload @> %s))'
    assert sql(Range("score", gt=0.5)) == ("(payload ->> 'score')::numeric > %s", [0.5])
    evil = "x'); DROP TABLE t; --"
    text, args = sql(Eq("group", evil))
    assert evil not in text and args == [evil]  # values never enter the SQL text


def test_milvus_translator_is_a_boolean_expression():
    pytest.importorskip("pymilvus")
    from bench.backends.milvus import filter_expr

    assert filter_expr(EQ) == "group == 1"
    assert filter_expr(RANGE) == "(rank >= 5 and rank < 10)"
    assert filter_expr(Range("rank", lt=300)) == "rank < 300"
    assert filter_expr(AND) == "(group == 1 and rank < 300)"
    assert filter_expr(OR) == '(group == 1 or (rank >= 5 and rank < 10) or tag == "x")'
    assert filter_expr(NESTED) == '(group == 1 and ((rank >= 5 and rank < 10) or tag == "x"))'
    assert filter_expr(Range("x", gt=0.5)) == "x > 0.5"
    assert filter_expr(None) == ""


def test_chroma_translator_is_a_where_document_chroma_accepts():
    chromadb = pytest.importorskip("chromadb")
    from bench.backends.chroma import where

    validate = chromadb.api.types.validate_where
    assert where(None) is None
    cases = {
        EQ: {"group": {"$eq": 1}},
        RANGE: {"$and": [{"rank": {"$gte": 5}}, {"rank": {"$lt": 10}}]},
        Range("rank", lt=300): {"rank": {"$lt": 300}},
        AND: {"$and": [{"group": {"$eq": 1}}, {"rank": {"$lt": 300}}]},
        OR: {"$or": [{"group": {"$eq": 1}}, {"$and": [{"rank": {"$gte": 5}}, {"rank": {"$lt": 10}}]},
                     {"tag": {"$eq": "x"}}]},
        NESTED: {"$and": [{"group": {"$eq": 1}}, {"$or": [{"$and": [{"rank": {"$gte": 5}}, {"rank": {"$lt": 10}}]},
                                                          {"tag": {"$eq": "x"}}]}]},
        And((EQ,)): {"group": {"$eq": 1}},  # Chroma wants two or more items in $and / $or
    }
    for node, want in cases.items():
        assert where(node) == want, label(node)
        validate(want)


def test_weaviate_translator_is_a_v4_filter():
    pytest.importorskip("weaviate")
    from weaviate.collections.filters import _FilterToREST

    from bench.backends.weaviate import query_filter, search_request

    def rest(node):
        return _FilterToREST.convert(query_filter(node))

    eq = {"operator": "Equal", "path": ["group"], "valueInt": 1}
    rng = {"operator": "And", "operands": [{"operator": "GreaterThanEqual", "path": ["rank"], "valueInt": 5},
                                           {"operator": "LessThan", "path": ["rank"], "valueInt": 10}]}
    tag = {"operator": "Equal", "path": ["tag"], "valueText": "x"}
    assert rest(EQ) == eq
    assert rest(RANGE) == rng
    assert rest(Range("rank", lte=3)) == {"operator": "LessThanEqual", "path": ["rank"], "valueInt": 3}
    assert rest(Range("score", gt=0.5)) == {"operator": "GreaterThan", "path": ["score"], "valueNumber": 0.5}
    assert rest(AND) == {"operator": "And", "operands": [eq, {"operator": "LessThan", "path": ["rank"],
                                                              "valueInt": 300}]}
    assert rest(OR) == {"operator": "Or", "operands": [eq, rng, tag]}
    assert rest(NESTED) == {"operator": "And", "operands": [eq, {"operator": "Or", "operands": [rng, tag]}]}
    assert query_filter(None) is None
    assert search_request(np.zeros(3, dtype=np.float32), 5, RANGE)["filters"] is not None


# -- what each adapter supports -------------------------------------------------------------------------------

RANGE_FILTERS = {"qdrant-edge", "qdrant", "qdrant-local", "pgvector", "milvus", "milvus-lite", "chroma",
                 "chroma-server", "weaviate", "null"}


def _cls(name: str):
    from bench.backends import registry
    from bench.errors import BackendUnavailable

    try:
        return registry.get(name)
    except BackendUnavailable as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("name", ["qdrant-edge", "qdrant", "qdrant-local", "pgvector", "milvus", "milvus-lite",
                                  "chroma", "chroma-server", "weaviate", "faiss", "null", "fake-slow"])
def test_supports_answers_range_filters_per_engine(name, monkeypatch):
    cls = _cls(name)
    # answering filters never asks a server anything
    monkeypatch.setattr(cls, "_older_than", lambda *a: pytest.fail("asked the server"), raising=False)
    options = cls.Options()
    for feature in ("filters", "range_filters"):
        reason = cls.supports(feature, options)
        if name in RANGE_FILTERS:
            assert reason is None, (name, feature, reason)
        else:
            assert reason and name in reason and "filters" in reason and len(reason.splitlines()) == 1


def test_the_feature_hooks_are_gone():
    from bench.backends.base import Backend

    for name in ("hybrid_unsupported", "multi_vector_unsupported"):
        assert not hasattr(Backend, name)
    for name in ("qdrant-edge", "milvus", "milvus-lite", "pgvector", "chroma", "faiss"):
        cls = _cls(name)
        assert not hasattr(cls, "hybrid_unsupported") and not hasattr(cls, "multi_vector_unsupported"), name


def test_supports_hybrid_and_multi_vector_from_capabilities():
    edge, chroma, lite = _cls("qdrant-edge"), _cls("chroma"), _cls("milvus-lite")
    assert edge.supports("hybrid", edge.Options()) is None
    assert "alpha-weighted" in edge.supports("hybrid", edge.Options(), fusion="weighted")
    assert lite.supports("hybrid", lite.Options(), fusion="weighted") is None
    assert "hybrid" in chroma.supports("hybrid", chroma.Options())
    assert "named vectors" in chroma.supports("multi_vector", chroma.Options())
    assert edge.supports("multi_vector", edge.Options()) is None
    assert "'pq'" in chroma.supports("quantization", chroma.Options(), kind="pq")
    with pytest.raises(ValueError, match="unknown feature"):
        edge.supports("teleport", edge.Options())


def test_milvus_server_version_decides_hybrid_and_multi_vector(monkeypatch):
    cls = _cls("milvus")
    asked = []

    def older(options, minimum):
        asked.append(minimum)
        return "uri", ("the Milvus server at uri is v2.3.5" if minimum > (2, 3) else None)

    monkeypatch.setattr(cls, "_older_than", staticmethod(older))
    o = cls.Options(uri="http://127.0.0.1:1")
    assert cls.supports("hybrid", o) == ("the Milvus server at uri is v2.3.5, and the BM25 function with "
                                         "hybrid_search needs Milvus 2.5 or later")
    assert ">= 2.4" in cls.supports("multi_vector", o) and "v2.3.5" in cls.supports("multi_vector", o)
    assert asked == [(2, 5), (2, 4), (2, 4)]
    monkeypatch.setattr(cls, "_older_than", staticmethod(lambda options, minimum: ("uri", None)))
    assert cls.supports("hybrid", o) is None and cls.supports("multi_vector", o) is None
    assert cls.supports("hybrid", o, fusion="weighted") is None  # WeightedRanker


def test_milvus_server_here_is_asked_its_version():
    cls = _cls("milvus")

    opts = server_options("milvus")
    from pymilvus import MilvusClient

    from bench.backends.milvus import MULTI_VECTOR_MIN_SERVER, server_version_tuple

    version = MilvusClient(uri=opts["uri"]).get_server_version()
    reason = cls.supports("multi_vector", cls.Options(**opts))
    if server_version_tuple(version)[:2] >= MULTI_VECTOR_MIN_SERVER:
        assert reason is None
    else:
        assert version in reason and ">= 2.4" in reason


# -- live: range filters pushed into the engines, against exact filtered ground truth -------------------------

LIVE = ["qdrant-edge", "qdrant-local", "pgvector", "milvus", "milvus-lite", "chroma", "chroma-server"]
N_LIVE, DIM_LIVE, NQ_LIVE, K_LIVE, SEED_LIVE = 2000, 24, 25, 10, 13
EF_LIVE = 256  # filtered graph searches at 5% selectivity need more than plain ones (milvus-lite: 0.87 at 128)


@pytest.fixture(scope="module")
def live_ds(tmp_path_factory):
    """A small clustered synthetic set in the shape `filtered.ground_truth` reads (cache under a temp folder)."""
    from types import SimpleNamespace

    rng = np.random.default_rng(SEED_LIVE)
    centers = rng.standard_normal((12, DIM_LIVE)) * 2
    base = (centers[rng.integers(0, 12, N_LIVE)] + rng.standard_normal((N_LIVE, DIM_LIVE))).astype(np.float32)
    queries = (centers[rng.integers(0, 12, NQ_LIVE)] + rng.standard_normal((NQ_LIVE, DIM_LIVE))).astype(np.float32)
    return SimpleNamespace(cache_dir=tmp_path_factory.mktemp("query-cache"), content_hash="live", metric="l2",
                           n=N_LIVE, base_rows=base, queries=queries)


def _live_backend(name: str, workdir: str):

    opts = server_options(name)
    if "ef_search" in opts:  # chroma-server applies ef_search when it loads the index: the one value searched
        opts = {**opts, "ef_search": EF_LIVE}
    cls = _cls(name)
    options = cls.Options.model_validate(opts)
    reason = cls.check_available(options)
    if reason:
        no_server(name, reason)
    b = cls(options, workdir)
    b.connect()
    return b


def _check_filtered(b, ds, node: Filter, truth: np.ndarray, keep: np.ndarray, what: str) -> None:
    from bench.metrics.recall import recall_at_k

    found = np.full((len(ds.queries), K_LIVE), -1, dtype=np.int64)
    for qi, q in enumerate(ds.queries):
        got = list(b.search(q, K_LIVE, SearchParams(ef_search=EF_LIVE, filter=node)))
        assert all(keep[i] for i in got), f"{what}: ids outside {label(node)}: {[i for i in got if not keep[i]]}"
        found[qi, :len(got)] = got
    recall = recall_at_k(found, truth, K_LIVE)
    assert recall >= 0.9, f"{what}: filtered recall@{K_LIVE} under {label(node)} = {recall:.3f}"


@pytest.mark.parametrize("name", LIVE)
def test_live_range_filters_against_exact_filtered_ground_truth(name, live_ds, tmp_path):
    import uuid

    from bench.backends.base import CollectionSpec, IndexSpec
    from bench.datasets import filtered
    from bench.datasets.exact import exact_topk

    ds = live_ds
    rcases = filtered.cases([0.3, 0.05], kind="range", n=ds.n)
    cols = {**filtered.columns(ds.n, rcases, SEED_LIVE), "group": np.arange(ds.n) % 3}
    b = _live_backend(name, str(tmp_path))
    spec = CollectionSpec(f"bench_query_{uuid.uuid4().hex[:10]}", DIM_LIVE, "l2", IndexSpec(m=16, ef_construction=100),
                          payload_fields={**filtered.payload_fields(rcases), "group": "int"}, ef_search=EF_LIVE)
    try:
        b.create(spec)
        ids = np.arange(ds.n, dtype=np.int64)
        for s in range(0, ds.n, 500):
            b.insert(ids[s:s + 500], ds.base_rows[s:s + 500], filtered.payloads(ids[s:s + 500], cols))
        b.wait_indexed(180)
        for c in rcases:
            keep = filtered.masks(ds.n, [c], SEED_LIVE)[c.key]
            _check_filtered(b, ds, c.query, filtered.ground_truth(ds, K_LIVE, c, None, SEED_LIVE), keep, name)
        both = And((Range("rank", gte=ds.n // 10, lt=ds.n // 2), Or((Eq("group", 0), Eq("group", 2)))))
        keep = evaluate(both, cols)
        _check_filtered(b, ds, both, exact_topk(ds.base_rows, ds.queries, K_LIVE, "l2", mask=keep), keep, name)
    finally:
        b.drop()
        b.close()
