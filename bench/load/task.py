"""What a worker is asked to run in one phase, and what it sends back. Both are picklable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from bench.ops.spec import YcsbSpec


@dataclass(frozen=True)
class IngestPlan:
    """mode "ingest": the first `writers` workers insert base rows [lo, hi) (ids = row numbers) in batches of
    `batch`, dealt round-robin, open loop at `rate` vectors per second in all; the other workers search."""

    lo: int
    hi: int
    batch: int
    writers: int
    rate: float

    def batches(self, writer: int) -> list[tuple[int, int]]:
        """The (lo, hi) row ranges writer `writer` inserts, in order."""
        starts = range(self.lo, self.hi, self.batch)
        return [(a, min(a + self.batch, self.hi)) for j, a in enumerate(starts) if j % self.writers == writer]


@dataclass(frozen=True)
class PhaseTask:
    mode: Literal["search", "ycsb", "ingest"]
    trial: int  # -1 for warm-up
    seed: int
    k: int
    ef_search: int | None
    duration_s: float | None  # per worker; None -> run `operations`
    operations: int | None  # per worker
    target_rate: float | None = None  # per worker, open loop
    arrival: Literal["constant", "poisson"] = "constant"
    ycsb: YcsbSpec | None = None
    record_count: int = 0
    interval_s: float = 1.0
    recall_sample_every: int = 0  # search-under-writes: keep every Nth search result for recall (0 = none)
    visibility_every: int = 0  # search-under-writes: probe every Nth update for read-your-write lag (0 = none)
    late_threshold_us: int = 1000  # open loop: a send later than this behind its intended start is late
    # keyword arguments of SearchParams for every search, besides ef_search (e.g. filter, vector_name, fusion,
    # alpha, candidates); ycsb: "filter" applies to the filtered searches only, never to plain searches or scans
    params: dict[str, Any] = field(default_factory=dict)
    # per-query SearchParams keyword arguments merged over `params`, row for row with the queries (hybrid: text)
    per_query: tuple[dict[str, Any], ...] | None = None
    queries: np.ndarray | None = None  # the query vectors of this phase; None: WorkerData.queries
    payload_cases: tuple[Any, ...] = ()  # ycsb: the FilterCases whose fields every upsert and insert carries
    # ycsb: keep (ack ns, key, holdout row) of every write, which scoring searches under writes needs; off, the
    # worker keeps nothing per write
    track_writes: bool = False
    inserts: IngestPlan | None = None  # mode "ingest": what the writers insert


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
