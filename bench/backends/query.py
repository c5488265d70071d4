"""The typed query model: a small engine-neutral filter tree, and the one walk every engine's translator shares.

A filter is a tree of four frozen (hashable, picklable) node types:

- `Eq(field, value)`: the payload field equals an int or a string;
- `Range(field, gt=, gte=, lt=, lte=)`: the payload field is a number within the given bounds (at least one);
- `And(items)`, `Or(items)`: every / at least one of the sub-filters holds.

`Filter` is their union; `SearchParams.filter` holds one (or None). Each engine translates a tree with one
`ConditionParser` subclass, in the style of qdrant/vector-db-benchmark's `BaseConditionParser`: `parse` walks the
tree once, and the engine writes only the four builders (`build_eq`, `build_range`, `build_and`, `build_or`).

`evaluate` is the exact answer over payload columns (numpy), from which the harness computes exact filtered ground
truth; `label` is the stable text of the `filter` result column (`sel_10=1`, `rank<1000`, `rank>=5 & rank<10`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from functools import reduce
from numbers import Real
from typing import Any, Generic, TypeVar

import numpy as np

T = TypeVar("T")
BOUNDS = ("gt", "gte", "lt", "lte")
_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _field(name: Any, node: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{node}: the field must be a non-empty string, not {name!r}")
    return name


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python scalar it holds (so nodes hash, compare and print as plain values)."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class Eq:
    """`field` equals `value` (an int or a string; not a float, not a bool)."""

    field: str
    value: int | str

    def __post_init__(self) -> None:
        _field(self.field, "Eq")
        value = _plain(self.value)
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"Eq({self.field!r}): the value must be an int or a string, not {value!r}")
        object.__setattr__(self, "value", value)


@dataclass(frozen=True)
class Range:
    """`field` is a number with `gt < field`, `gte <= field`, `field < lt`, `field <= lte` for each bound given."""

    field: str
    gt: int | float | None = None
    gte: int | float | None = None
    lt: int | float | None = None
    lte: int | float | None = None

    def __post_init__(self) -> None:
        _field(self.field, "Range")
        for name in BOUNDS:
            value = _plain(getattr(self, name))
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
                raise ValueError(f"Range({self.field!r}): bound {name} must be a finite number, not {value!r}")
            object.__setattr__(self, name, value)
        if not self.bounds():
            raise ValueError(f"Range({self.field!r}) needs at least one bound (gt, gte, lt or lte)")

    def bounds(self) -> dict[str, int | float]:
        """The bounds given, in the order gt, gte, lt, lte."""
        return {name: getattr(self, name) for name in BOUNDS if getattr(self, name) is not None}


def _items(items: Any, node: str) -> tuple[Filter, ...]:
    items = tuple(items)
    if not items:
        raise ValueError(f"{node} needs at least one sub-filter")
    for item in items:
        if not isinstance(item, Eq | Range | And | Or):
            raise TypeError(f"{node}: {item!r} is not a filter node (Eq, Range, And or Or)")
    return items


@dataclass(frozen=True)
class And:
    """Every item holds."""

    items: tuple[Filter, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", _items(self.items, "And"))


@dataclass(frozen=True)
class Or:
    """At least one item holds."""

    items: tuple[Filter, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", _items(self.items, "Or"))


Filter = Eq | Range | And | Or


class ConditionParser(ABC, Generic[T]):
    """Translates a filter tree into one engine's filter: `parse` walks the tree once, bottom up; a subclass
    writes only the leaf builders and the two combinators."""

    def parse(self, node: Filter) -> T:
        if isinstance(node, Eq):
            return self.build_eq(node.field, node.value)
        if isinstance(node, Range):
            return self.build_range(node.field, **node.bounds())
        if isinstance(node, And):
            return self.build_and([self.parse(item) for item in node.items])
        if isinstance(node, Or):
            return self.build_or([self.parse(item) for item in node.items])
        raise TypeError(f"{type(self).__name__}: {node!r} is not a filter node (Eq, Range, And or Or)")

    @abstractmethod
    def build_eq(self, field: str, value: int | str) -> T: ...

    @abstractmethod
    def build_range(self, field: str, *, gt: float | None = None, gte: float | None = None,
                    lt: float | None = None, lte: float | None = None) -> T:
        """Only the bounds the node gives are passed (at least one)."""

    @abstractmethod
    def build_and(self, items: list[T]) -> T: ...

    @abstractmethod
    def build_or(self, items: list[T]) -> T: ...


class _NumpyEvaluator(ConditionParser[np.ndarray]):
    def __init__(self, columns: Mapping[str, np.ndarray]):
        self.columns = columns

    def _column(self, field: str) -> np.ndarray:
        if field not in self.columns:
            raise KeyError(f"the filter reads payload field '{field}', which is not among the columns "
                           f"{sorted(self.columns)}")
        return np.asarray(self.columns[field])

    def build_eq(self, field: str, value: int | str) -> np.ndarray:
        return np.asarray(self._column(field) == value, dtype=bool)

    def build_range(self, field: str, **bounds: float) -> np.ndarray:
        col = self._column(field)
        tests = {"gt": np.greater, "gte": np.greater_equal, "lt": np.less, "lte": np.less_equal}
        return reduce(np.logical_and, (tests[name](col, v) for name, v in bounds.items()))

    def build_and(self, items: list[np.ndarray]) -> np.ndarray:
        return reduce(np.logical_and, items)

    def build_or(self, items: list[np.ndarray]) -> np.ndarray:
        return reduce(np.logical_or, items)


def evaluate(node: Filter, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Boolean array: which rows of the payload `columns` (field -> one value per row, all the same length)
    the filter keeps. The exact answer, for exact filtered ground truth."""
    return np.asarray(_NumpyEvaluator(columns).parse(node), dtype=bool)


def payload_fields_of(node: Filter) -> frozenset[str]:
    """The payload fields a filter reads."""
    if isinstance(node, Eq | Range):
        return frozenset((node.field,))
    return frozenset().union(*(payload_fields_of(item) for item in node.items))


def _number(value: int | float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def label(node: Filter) -> str:
    """The stable human label of a filter, the `filter` result column: `sel_10=1`, `rank<1000`,
    `rank>=5 & rank<10`, `a=1 & (b=2 | c<3)`. Equality is exactly `field=value`."""
    if isinstance(node, Eq):
        return f"{node.field}={node.value}"
    if isinstance(node, Range):
        return " & ".join(f"{node.field}{_OPS[name]}{_number(v)}" for name, v in node.bounds().items())
    if isinstance(node, And | Or):
        if len(node.items) == 1:
            return label(node.items[0])
        joiner = " & " if isinstance(node, And) else " | "
        return joiner.join(_grouped(item, inside=type(node)) for item in node.items)
    raise TypeError(f"{node!r} is not a filter node (Eq, Range, And or Or)")


def _grouped(node: Filter, inside: type) -> str:
    """An item's label, in parentheses where it would read ambiguously: an Or inside an And, an And (or a
    two-bound Range) inside an Or."""
    if isinstance(node, And | Or) and len(node.items) == 1:
        return _grouped(node.items[0], inside)
    compound = (isinstance(node, Or) and inside is And) or (inside is Or and (
        isinstance(node, And) or (isinstance(node, Range) and len(node.bounds()) > 1)))
    return f"({label(node)})" if compound else label(node)


def with_tenant(node: Filter | None, field: str | None, tenant: str | None) -> Filter | None:
    """The filter of a search confined to `tenant` (the equality on the collection's tenant field, and-ed with the
    search's own filter), for engines whose native multi-tenancy is a filter on a tenant key; `node` unchanged
    when the search names no tenant."""
    if tenant is None:
        return node
    if field is None:
        raise ValueError(f"a search names tenant {tenant!r} but the collection has no tenant field")
    own = Eq(field, tenant)
    return own if node is None else And((own, node))


__all__ = ["And", "ConditionParser", "Eq", "Filter", "Or", "Range", "evaluate", "label", "payload_fields_of",
           "with_tenant"]
