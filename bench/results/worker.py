"""What one worker measured in one phase: its encoded histograms, counts, kept search results and written keys.
Load pools return it; bench/results/trial.py turns the workers' results into trial rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class WorkerResult:
    worker: int
    started_wall: float  # time.time() at the first timed operation
    ended_wall: float
    hist: dict[str, str] = field(default_factory=dict)  # label -> encoded histogram of successful ops (us)
    failed: dict[str, str] = field(default_factory=dict)  # label -> encoded histogram of failed ops
    service: dict[str, str] = field(default_factory=dict)  # open loop: label -> service-time histogram
    intervals: list[tuple[float, float, str, str]] = field(default_factory=list)  # (start, end wall), label, hist
    errors: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    out_of_range: int = 0
    search_queries: np.ndarray | None = None  # query indices of searches whose results were kept
    search_ids: np.ndarray | None = None  # (n, k) int64, -1 padded
    search_started: np.ndarray | None = None  # wall-clock ns at each kept search's start (search under writes)
    search_filtered: np.ndarray | None = None  # bool: which kept searches were filtered searches (ycsb)
    # track_writes: int64 (n, 3) rows (ack wall ns, key, holdout row), in the order acknowledged; else None
    updates: np.ndarray | None = None
    visibility_us: list[int] = field(default_factory=list)
    visibility_stale: int = 0  # visibility probes whose first search missed the id just written
    scheduled: int = 0
    late: int = 0
    generator_lag: int = 0
    cpu_s: float | None = None  # process CPU seconds of this worker (processes only)
    extra: dict[str, Any] = field(default_factory=dict)
