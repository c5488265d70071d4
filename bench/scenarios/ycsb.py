"""kind = "ycsb": YCSB's core mixes over vector records (read, update, insert, scan, read-modify-write, plus
searches and filtered searches). One configuration per variant at the first ef_search; a `total` row merges
every operation kind. Searches under writes are scored against the collection as it stood when each started."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.backends.base import BackendOptions, CollectionSpec
from bench.errors import UserError
from bench.metrics.recall import recall_under_updates
from bench.scenarios import register
from bench.scenarios.base import Chart, KindScenario, Reference, RunFlags, Variant


@register
class YcsbScenario(KindScenario):
    core_charts = ("latency", "concurrency")  # no recall curve: a YCSB mix's searches are not an ef sweep
    charts = (Chart(
        "ycsb-ops", "Per operation kind",
        "Throughput and latency per YCSB operation kind, one bar per series, on linear axes from zero (a bar's length "
        "is its figure, written above it), the figures of the table below: QPS with error bars from the lowest to "
        "the highest QPS of the ok trials, and the latency percentiles; no bar where too few samples support a "
        "percentile.", png="bench.analysis.plots:ycsb_operations", html="bench.analysis.charts:ycsb_bars"),)
    kind = "ycsb"
    mode = "ycsb"

    @property
    def mix(self) -> Any:
        assert self.spec.ycsb is not None
        return self.spec.ycsb

    @classmethod
    def validate_spec(cls, options: Any, spec: Any) -> None:
        if spec.ycsb is not None and spec.ycsb.filtered_search_proportion and spec.feature("filter") is None:
            raise ValueError("ycsb.filtered_search_proportion needs a [filter] table with the selectivities to "
                             "filter on, e.g. [filter] selectivities = [0.01]")

    def searching(self) -> bool:
        return (self.mix.search_proportion + self.mix.filtered_search_proportion) > 0

    def writes(self) -> float:
        y = self.mix
        return y.update_proportion + y.insert_proportion + y.read_modify_write_proportion

    def collection(self, c: CollectionSpec) -> CollectionSpec:
        # a worker reads and searches after its own writes (read-modify-write, visibility probes)
        return dataclasses.replace(c, reads_own_writes=self.writes() > 0)

    def check(self, backend, options: BackendOptions, flags: RunFlags) -> list[str]:
        y, name = self.mix, self.spec.name
        writes = self.writes()
        for feature, share, what in (("upsert", writes, "update records"),
                                     ("get", y.read_proportion + y.read_modify_write_proportion,
                                      "fetch records by id")):
            reason = backend.supports(feature, options) if share else None
            if reason:
                raise UserError(f"Backend '{backend.name}' cannot {what}, which workload '{name}' needs "
                                f"({reason.rstrip('.')})",
                                "choose a backend that can (`bench backends` lists capabilities)")
        if self.searching() and writes and self.spec.dataset.holdout == 0:
            raise UserError(f"Workload '{name}' mixes searches with updates but dataset.holdout is 0",
                            "set dataset.holdout so updates use vectors the ground truth can follow")
        return []

    def ef_values(self) -> list[int | None]:
        return [self.spec.search.ef_search[0]]

    def default_operations(self, v: Variant) -> int:
        return 10_000

    def needs_reference(self) -> bool:
        return False

    def new_state(self) -> UpdateState:
        return UpdateState()

    def task_fields(self, warmup: bool) -> dict[str, Any]:
        r = self.spec.run
        sample = self.searching() and not warmup
        return {"ycsb": self.mix, "recall_sample_every": r.recall_sample_every if sample else 0,
                "visibility_every": r.visibility_sample_every if sample else 0,
                # the write log is kept only when searches are scored under the writes (warm-up included: the
                # state the ground truth follows starts there)
                "track_writes": self.searching() and r.recall_sample_every > 0}

    def op_groups(self, labels: Sequence[str]) -> list[tuple[str, list[str]]]:
        return [*super().op_groups(labels), ("total", list(labels))]

    def score(self, v: Variant, kept: Any, ref: Reference | None, state: Any) -> dict[str, dict[str, Any]]:
        if not self.searching() or kept is None:
            return {}
        k, ds = self.spec.search.k, v.data
        out: dict[str, dict[str, Any]] = {}
        if self.mix.search_proportion > 0:
            r = recall_under_updates([kept], state, ds, k)
            out["search"] = out["total"] = {"recall": r}
        if self.mix.filtered_search_proportion > 0 and v.allowed_keys is not None:
            out["filtered-search"] = {"recall": recall_under_updates([kept], state, ds, k, allowed=v.allowed_keys)}
        return out


class UpdateState:
    """Which records hold which held-out vector now: ground truth under writes follows it across phases."""

    def __init__(self) -> None:
        self.current: dict[int, int] = {}  # key -> held-out row, after every phase so far
        self.before: dict[int, int] = {}  # the same, before the last phase
        self.trial_log = np.empty((0, 3), dtype=np.int64)  # (ack ns, key, row) of the last phase's writes, in order

    def apply(self, results: list[Any]) -> None:
        logs = [r.updates for r in results if r.updates is not None]
        new = np.concatenate(logs) if logs else np.empty((0, 3), dtype=np.int64)
        new = new[np.lexsort((new[:, 2], new[:, 1], new[:, 0]))]
        self.before = dict(self.current)
        self.trial_log = new
        self.current.update(zip(new[:, 1].tolist(), new[:, 2].tolist(), strict=True))
