"""Imported rows beside bench's own: which table each row belongs to.

bench's own rows are tabled by workload and dataset (name, size, dimension, content hash), as always. A row another
tool measured (`source_tool` set, from `bench import`) joins the table of a bench run that measured the same
dataset (name, size, dimension, metric; the content hash too when both rows have one), the same k and the same
index (kind, M, ef_construction, quantization); the `tool` column then tells the rows apart, and they never share a
line (source_tool is a result key). Imported rows that match no bench run keep a table of their own, and one
sentence says why they are not beside bench's rows.
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import pandas as pd

from bench.results import keys

OWN_TABLE = ["workload", *keys.names("data")]
# what must agree for an imported row to stand beside bench's rows (besides the content hash where both have one)
MATCH = ["dataset_name", "dataset_n", "dataset_dim", "dataset_metric", "k", "index_kind", "index_m",
         "index_ef_construction", "quantization"]
LABELS = {"dataset_name": "dataset", "dataset_n": "size", "dataset_dim": "dimension", "dataset_metric": "metric",
          "k": "k", "index_kind": "index kind", "index_m": "M", "index_ef_construction": "ef_construction",
          "quantization": "quantization"}


def _v(x: Any) -> Any:
    return None if x is None or (isinstance(x, float) and pd.isna(x)) or x is pd.NA else x


def tool_of(value: Any) -> str:
    """The tool that measured a row: its source_tool, or bench for bench's own rows (null)."""
    return str(_v(value) or "bench")


def imported(df: pd.DataFrame) -> pd.Series:
    """Rows another tool measured."""
    col = df["source_tool"] if "source_tool" in df else pd.Series([None] * len(df), index=df.index)
    return col.map(lambda t: _v(t) is not None and t != "bench")


def place(df: pd.DataFrame) -> tuple[pd.Series, list[str]]:
    """A table key for every row (a tuple), and the sentences of imported rows kept apart."""
    for c in {*OWN_TABLE, *MATCH, "run_id", "source_tool"} - set(df):
        df = df.assign(**{c: None})
    table = pd.Series([tuple(_v(r[c]) for c in OWN_TABLE) for _, r in df.iterrows()], index=df.index, dtype=object)
    other = imported(df)
    own = [r for _, r in df[~other].iterrows()]
    notes: list[str] = []
    if not other.any():
        return table, notes
    groups = df[other].groupby(["run_id", "workload", *MATCH], dropna=False, sort=True)
    for _, g in groups:
        first = g.iloc[0]
        hit = next((r for r in own if not _differences(first, r)), None)
        if hit is not None:
            table.loc[g.index] = [tuple(_v(hit[c]) for c in OWN_TABLE)] * len(g)
        elif own:
            notes.append(_apart(first, own))
    return table, list(dict.fromkeys(notes))


def _differences(row: pd.Series, own: pd.Series) -> list[str]:
    out = [c for c in MATCH if _v(row[c]) != _v(own[c])]
    h1, h2 = _v(row.get("dataset_hash")), _v(own.get("dataset_hash"))
    if h1 is not None and h2 is not None and h1 != h2:
        out.append("dataset_hash")
    return out


def _apart(row: pd.Series, own: list[pd.Series]) -> str:
    """One sentence: which imported rows stand apart, and how they differ from the closest bench run."""
    closest = min(own, key=lambda r: len(_differences(row, r)))
    diffs = _differences(row, closest)
    parts = [f"{LABELS.get(c, 'data hash')} {_show(row.get(c))} against {_show(closest.get(c))}" for c in diffs]
    return (f"The {row['source_tool']} rows of {row['run_id']} ({row['workload']}, {row['backend']}) are not shown "
            f"beside bench's rows because no bench run here measured the same dataset, k, metric and index "
            f"(closest: {closest['workload']}, whose {'; '.join(parts)})")


def _show(v: Any) -> str:
    v = _v(v)
    if v is None:
        return "none"
    if isinstance(v, Real) and not isinstance(v, bool) and float(v).is_integer():
        return f"{int(v):,}"
    return str(v)
