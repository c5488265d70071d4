"""Latencies that sit on an engine's own timer measure the timer, not the engine.

An adapter names the timers a request may wait on, as configured (`EngineInfo.latency_timers`: what -> period in
microseconds; e.g. Milvus under Strong consistency waits for the proxy's 200 ms time tick). A row whose P50 lies
within `TOLERANCE` of one of them gets a warning printed under the run's table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

TOLERANCE = 0.10  # a P50 within 10% of a timer's period sits on it


def on_timer(rows: Iterable[Mapping[str, Any]], timers: Mapping[str, int], label: str,
             tolerance: float = TOLERANCE) -> list[str]:
    """One sentence per (operation, timer) whose P50 sits on the timer's period."""
    out = []
    for r in rows:
        p50 = r.get("p50_us")
        if p50 is None or r.get("status") not in (None, "ok") or p50 != p50:  # missing, failed, NaN
            continue
        for what, period in timers.items():
            if period > 0 and abs(p50 - period) <= tolerance * period:
                out.append(f"{r.get('op')} at {label}: the P50 sits within {tolerance:.0%} of an engine timer "
                           f"({what}: {period / 1000:g} ms), so the latency measures that timer, not the engine's work")
    return out
