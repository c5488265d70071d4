"""What a worker is asked to run in one phase, and what it sends back. Both are picklable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from bench.ops.mix import YcsbSpec


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
