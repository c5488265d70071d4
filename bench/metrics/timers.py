"""Latencies that sit on an engine's own timer measure the timer, not the engine.

An adapter names the timers a request may wait on, as configured (`EngineInfo.latency_timers`: what -> period in
microseconds; e.g. Milvus under Strong consistency waits for the proxy's 200 ms time tick). A row whose P50 lies
within `TOLERANCE` of the period, or of two or three periods (a request that misses a tick waits for the next;
a busy server adds one), gets a warning printed under the run's table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

TOLERANCE = 0.10  # a P50 within 10% of a timer's period (or of 2 or 3 periods) sits on it
MULTIPLES = (1, 2, 3)


def sits_on(p50_us: float, period_us: int, tolerance: float = TOLERANCE) -> int | None:
    """The multiple of the period the P50 sits on, or None."""
    for k in MULTIPLES:
        if abs(p50_us - k * period_us) <= tolerance * period_us:
            return k
    return None


def on_timer(rows: Iterable[Mapping[str, Any]], timers: Mapping[str, int], label: str,
             tolerance: float = TOLERANCE) -> list[str]:
    """One sentence per (operation, timer) whose P50 sits on the timer's period."""
    out = []
    for r in rows:
        p50 = r.get("p50_us")
        if p50 is None or p50 != p50 or r.get("status") not in (None, "ok"):  # missing, NaN, failed
            continue
        for what, period in timers.items():
            k = sits_on(p50, period, tolerance) if period > 0 else None
            if k is not None:
                times = "" if k == 1 else f"{k} x "
                out.append(f"{r.get('op')} at {label}: the P50 sits within {tolerance:.0%} of {times}an engine "
                           f"timer ({what}: {period / 1000:g} ms), so the latency measures that timer, not the "
                           "engine's work")
    return out
