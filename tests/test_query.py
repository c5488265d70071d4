"""The typed query model (`bench.backends.query`): the filter tree, its labels and exact evaluation."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest

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
