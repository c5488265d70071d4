"""Cost figures of runs that have a price (`backend.price_per_hour`, `currency`; `bench run --price-per-hour`).

queries per currency unit = QPS x 3,600 / price per hour; cost of a million queries = price per hour / (QPS x
3,600) x 1,000,000. Both assume the machine the price is for serves at the measured QPS for the whole hour, so they
are as good as the QPS they come from (its concurrency, its open-loop rate). Rows priced in different currencies
never share a column heading: where a table holds more than one currency, each cell names its own and a note says
the figures are not comparable across currencies (bench converts no currency).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def figures(row: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """(queries per currency unit, cost of a million queries) of a row, or (None, None) without price or QPS."""
    price, qps = _num(row.get("price_per_hour")), _num(row.get("qps"))
    if not price or not qps or price <= 0 or qps <= 0:
        return None, None
    per_hour = qps * 3600.0
    return per_hour / price, price / per_hour * 1e6


def currencies(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The currencies of the priced rows, sorted."""
    return sorted({str(r.get("currency") or "USD") for r in rows if _num(r.get("price_per_hour"))})


def headings(cur: list[str]) -> list[str]:
    """The two column headings: the currency in the heading when the table has one, else in each cell."""
    if len(cur) == 1:
        return [f"queries/{cur[0]}", f"{cur[0]}/M queries"]
    return ["queries/unit", "cost/M queries"]


def cells(row: Mapping[str, Any], cur: list[str]) -> list[str]:
    per_unit, per_million = figures(row)
    if per_unit is None or per_million is None:
        return ["-", "-"]
    tag = "" if len(cur) == 1 else f" {row.get('currency') or 'USD'}"
    return [f"{per_unit:,.0f}{tag}" if tag else f"{per_unit:,.0f}", f"{per_million:,.4g}{tag}"]


def note(cur: list[str]) -> list[str]:
    """The sentence under a table whose priced rows use more than one currency."""
    if len(cur) < 2:
        return []
    return [f"cost: rows are priced in {', '.join(cur)}; each cost cell names its currency, and figures in different "
            "currencies are not comparable (bench converts none)"]
