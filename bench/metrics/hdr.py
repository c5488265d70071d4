"""HDR histogram helpers: one histogram per operation kind per worker, 1 us .. 60 s, 3 significant digits.

Values are recorded in microseconds. A value outside the trackable range is clamped to the range and
counted in `Recorder.out_of_range`, never silently dropped.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 60 * 60 * 1_000_000  # one hour: comfortably above the 60 s the design asks for
SIG_FIGS = 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIG_FIGS)


def clear(h: HdrHistogram) -> None:
    """Empty h in place, as `h.reset()` does, without its Python loop over every counter (~2 ms for our range,
    once per interval and kind on the hot path): hdrh keeps the counters in one ctypes array, zeroed here with
    one memset. (A new histogram per interval instead would leave cyclic garbage the collector frees late.)"""
    counts = h.counts
    if not isinstance(counts, ctypes.Array):
        h.reset()
        return
    ctypes.memset(ctypes.addressof(counts), 0, ctypes.sizeof(counts))
    h.total_count = 0
    h.min_value = sys.maxsize
    h.max_value = 0
    h.start_time_stamp_msec = sys.maxsize
    h.end_time_stamp_msec = 0


def encode(h: HdrHistogram) -> str:
    """Compressed, base64 HdrHistogram V2 encoding, as standard HdrHistogram tools read it."""
    data = h.encode()
    return data.decode("ascii") if isinstance(data, bytes) else str(data)


def decode(s: str | bytes) -> HdrHistogram:
    return HdrHistogram.decode(s)


def merge(encoded: Iterable[str | bytes | None]) -> HdrHistogram:
    total = new_histogram()
    for e in encoded:
        if e:
            total.decode_and_add(e)
    return total


# A percentile p is reported only when the samples above it, n * (1 - p), are at least this many: with fewer,
# the "P99.9" of 200 samples is just their maximum. P50 needs 20 samples, P90 100, P99 1,000, P99.9 10,000.
TAIL_SAMPLES = 10
PERCENTILE_FIELDS = {"p50_us": 50.0, "p90_us": 90.0, "p99_us": 99.0, "p999_us": 99.9}


def min_samples(percentile: float) -> int:
    """The fewest samples at which `percentile` (e.g. 99.9) is reported."""
    return int(round(TAIL_SAMPLES / (1 - percentile / 100)))


def withhold(st: dict, prefix: str = "") -> list[str]:
    """Set the percentiles the sample count cannot support to None; returns the fields withheld."""
    n = st.get("count") or 0
    out = []
    for name, p in PERCENTILE_FIELDS.items():
        field = prefix + name
        if n < min_samples(p) and st.get(field) is not None:
            st[field] = None
            out.append(field)
    return out


def mean(h: HdrHistogram) -> float:
    """The histogram's mean, as `get_mean_value` gives it (each bucket at its median equivalent value), over the
    recorded buckets only: hdrh's own walks every bucket up to the largest value in Python, a second per call."""
    n = h.get_total_count()
    if not n:
        return 0.0
    counts = np.ctypeslib.as_array(h.counts)[: h.counts_len]
    total = 0
    for i in np.flatnonzero(counts):
        total += int(counts[i]) * h._hdr_median_equiv_value(h.get_value_from_index(int(i)))
    return float(total) / n


def stats(h: HdrHistogram) -> dict[str, float | int | None]:
    """count, mean, p50, p90, p99, p999, max and min in microseconds."""
    n = h.get_total_count()
    if n == 0:
        return {"count": 0, "mean_us": None, "p50_us": None, "p90_us": None, "p99_us": None,
                "p999_us": None, "max_us": None, "min_us": None}
    pct = h.get_percentile_to_value_dict(list(PERCENTILES))
    return {
        "count": n,
        "mean_us": mean(h),
        "p50_us": float(pct[50.0]),
        "p90_us": float(pct[90.0]),
        "p99_us": float(pct[99.0]),
        "p999_us": float(pct[99.9]),
        "max_us": float(h.get_max_value()),
        "min_us": float(h.get_min_value()),
    }


@dataclass
class Recorder:
    """Histograms of one worker, one per operation label, plus failures and out-of-range counts."""

    ok: dict[str, HdrHistogram] = field(default_factory=dict)
    failed: dict[str, HdrHistogram] = field(default_factory=dict)
    out_of_range: int = 0

    def histogram(self, label: str, failed: bool = False) -> HdrHistogram:
        table = self.failed if failed else self.ok
        h = table.get(label)
        if h is None:
            h = table[label] = new_histogram()
        return h

    def record(self, h: HdrHistogram, value_us: int) -> None:
        if value_us < LOWEST_US:
            value_us = LOWEST_US
        elif value_us > HIGHEST_US:
            self.out_of_range += 1
            value_us = HIGHEST_US
        if not h.record_value(value_us):  # hdrh returns False when it refuses a value
            self.out_of_range += 1

    def encoded(self) -> dict[str, dict[str, str]]:
        return {
            "ok": {k: encode(v) for k, v in self.ok.items()},
            "failed": {k: encode(v) for k, v in self.failed.items()},
        }


