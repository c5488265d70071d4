"""The figures a scenario adds to a result row, declared in the scenario's own file.

A key (bench.results.keys) says what a row measured; a figure is what it measured. The core figures (QPS,
latency, recall, quality, resources) are in bench.results.schema; a scenario that measures something of its own
(streaming's achieved ingest rate, capacity's vectors held, hybrid's overlap with each side) declares a `Figure`
in its `figures`, and registering the scenario registers it here. From that one declaration follow the parquet
schema (trials and summary, with its description), the aggregation (trimmed median with the spread of the ok
trials, or the distinct texts), and the column compare and the report show where some row has the figure.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class Figure:
    name: str
    description: str
    heading: str | None = None  # its column in compare and the report; None: in the files only
    fmt: str = ",.2f"  # the column's number format ("s": text)
    scale: float = 1.0  # the column shows value / scale (bytes in MiB: 1024 * 1024)
    text: bool = False  # a text figure: the summary joins the ok trials' distinct values; else trimmed median
    legend: str | None = None  # the column's line in a table's legend

    @property
    def type(self) -> pa.DataType:
        return pa.string() if self.text else pa.float64()


_FIGURES: dict[str, Figure] = {}


def register(fig: Figure) -> Figure:
    """Add a scenario's figure. The same figure twice is harmless; another one under a taken name is a bug."""
    old = _FIGURES.get(fig.name)
    if old is not None and old != fig:
        raise ValueError(f"figure {fig.name!r} is already registered differently")
    _FIGURES[fig.name] = fig
    return fig


def all_figures() -> list[Figure]:
    return list(_FIGURES.values())


def numeric() -> list[str]:
    return [f.name for f in _FIGURES.values() if not f.text]


def texts() -> list[str]:
    return [f.name for f in _FIGURES.values() if f.text]


def columns() -> list[Figure]:
    """The registered figures that are shown as a column, in registration order."""
    return [f for f in _FIGURES.values() if f.heading]


def get(name: str) -> Figure | None:
    return _FIGURES.get(name)
