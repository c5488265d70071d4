"""kind = "streaming": search while vectors stream in.

First the idle baseline: searches on the fully loaded collection with nothing inserted (`ingest_rate` 0).
Then, for each ingest rate of `[streaming] rates` and each trial, a fresh collection holding the first
`initial_fraction` of the dataset; the remaining rows are inserted open loop (coordinated omission corrected:
an insert's latency counts from its intended start) at that rate by `writers` workers, in batches of
`insert_batch`, while `run.concurrency` workers search (closed loop, or open loop at `run.target_rate`).

Rows: per trial, `search` and `insert` over the whole stream, and the same per stage of ingest progress
(`ingest_stage` = 10, 20, ... 100: the stage ending when that percent of the streamed rows was acknowledged;
its searches are those of the 1-s (or finer) intervals whose middle falls in it). Recall of each sampled search
is against the exact top-k of the rows acknowledged when it started. The knee is the highest ingest rate the
engine kept up with (achieved >= 95% of offered) whose search P99 stayed within `p99_factor` x the idle P99.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Any

import numpy as np
import pyarrow as pa
from pydantic import Field

from bench.errors import UserError
from bench.load.task import IngestPlan, PhaseTask
from bench.metrics import hdr
from bench.metrics.recall import _score_matrix, per_search_recall
from bench.metrics.scoring import Kept
from bench.results.figures import Figure
from bench.results.keys import Key
from bench.results.worker import WorkerResult
from bench.scenarios import register
from bench.scenarios._cases import fresh_collection, pool_for, rows
from bench.scenarios.base import Chart, KindScenario, RunFlags
from bench.scenarios.context import RunContext, connected
from bench.spec import Strict

NEVER = np.iinfo(np.int64).max
KEPT_UP = 0.95  # a rate is sustained when this share of it was achieved


class StreamingOptions(Strict):
    rates: list[Annotated[float, Field(gt=0)]] = Field(min_length=1, description="ingest rates to sweep, vectors per second")
    initial_fraction: float = Field(0.1, gt=0, lt=1, description="share of the dataset loaded before streaming")
    stages: int = Field(10, ge=1, le=100, description="stages of ingest progress reported (10: every 10%)")
    insert_batch: int = Field(10, ge=1, le=100_000, description="vectors per insert call while streaming")
    writers: int = Field(1, ge=1, le=64, description="workers inserting (besides run.concurrency searching)")
    idle_s: float = Field(5.0, gt=0, le=3600, description="length of each idle (no ingest) search trial")
    p99_factor: float = Field(2.0, ge=1, description="the knee: search P99 within this factor of the idle P99")


@register
class StreamingScenario(KindScenario):
    core_charts = ("latency",)  # no ef_search sweep, no concurrency sweep
    charts = (Chart(
        "streaming", "Search P99 and recall against ingest progress",
        "Search latency and recall per stage of ingest progress, one line per backend and ingest rate (trimmed "
        "medians of the trials' stage rows; P99 only where a stage has the samples for it, P50 dotted); the dashed "
        "line is the idle P99 (no ingest). Recall is against the exact top-k of the vectors acknowledged when each "
        "sampled search started.", png="bench.analysis.cases:streaming_progress"),)
    keys = (
        Key("ingest_rate", pa.float64(), "ingest", "variant", "streaming: vectors inserted per second, offered (0 = the "
            "idle baseline)", show=lambda v: f"ingest={float(v):,.0f}/s"),
        Key("ingest_stage", pa.int64(), "stage", "variant", "streaming: stage of ingest progress, the percent of the "
            "streamed rows acknowledged at its end; null = the whole stream", show=lambda v: f"at {int(v)}%"),
    )
    figures = (
        Figure("ingest_achieved", "streaming: vectors per second acknowledged (the offered rate, if the engine kept "
               "up)", "ingest/s", ",.0f", legend="ingest/s = vectors per second acknowledged while searching"),
        Figure("idle_p99_us", "streaming: the search P99 with no ingest (the knee's baseline), microseconds"),
        Figure("p99_factor", "streaming: the knee is the highest sustained ingest rate with search P99 within this "
               "x idle"),
    )
    kind = "streaming"
    mode = "ingest"
    Options = StreamingOptions

    @classmethod
    def table_notes(cls, rows: Any) -> list[str]:
        """One sentence per streaming run in a compare table: its knee, or that no rate kept search P99 within the
        factor."""
        if "ingest_rate" not in rows or not rows["ingest_rate"].notna().any():
            return []
        out = []
        for (backend, run), g in rows[rows["ingest_rate"].notna()].groupby(["backend", "run_id"], sort=True):
            recs = g.to_dict("records")
            factors = [float(r["p99_factor"]) for r in recs if r.get("p99_factor") is not None
                       and not math.isnan(float(r["p99_factor"]))]
            factor = factors[0] if factors else 2.0
            knee = knee_of(recs, factor)
            if knee is not None:
                out.append(f"knee, {backend} {run}: {knee['ingest_rate']:,.0f} vectors/s is the highest ingest rate "
                           f"kept up with whose search P99 ({knee['p99_us']:,.0f} us) stayed within {factor:g}x the "
                           f"idle P99 ({knee['idle_p99_us']:,.0f} us)")
            else:
                out.append(f"knee, {backend} {run}: none (no ingest rate was kept up with at a search P99 within "
                           f"{factor:g}x the idle P99, or a P99 was withheld for too few samples)")
        return out

    @classmethod
    def validate_spec(cls, options: Any, spec: Any) -> None:
        if spec.features:
            raise ValueError(f"kind = 'streaming' streams plain vectors; remove the [{next(iter(spec.features))}] "
                             "table")
        if options is None:
            raise ValueError("kind = 'streaming' needs a [streaming] table with the ingest rates, e.g. "
                             "[streaming] rates = [100, 500]")
        n0 = int(spec.dataset.n * options.initial_fraction)
        if n0 < spec.search.k or n0 >= spec.dataset.n:
            raise ValueError(f"streaming.initial_fraction {options.initial_fraction:g} of dataset.n "
                             f"{spec.dataset.n} loads {n0} rows: it must load at least search.k and leave rows "
                             "to stream")

    def check(self, backend: Any, options: Any, flags: RunFlags) -> list[str]:
        if flags.rate_sweep:
            raise UserError("kind = 'streaming' sweeps its own ingest rates ([streaming] rates), so --rate-sweep "
                            "does not apply", "drop --rate-sweep")
        return []

    def ef_values(self) -> list[int | None]:
        return [self.spec.search.ef_search[0]]

    def measure(self, ctx: RunContext) -> bool:
        o, r = self.options, self.spec.run
        idle_p99 = _Idle(ctx).run()
        for rate in o.rates:
            for trial in range(r.trials):
                _Stream(ctx, o, rate, trial, idle_p99).run()
        knee = knee_of(ctx.summary_rows, o.p99_factor)
        ctx.extra_json["streaming_knee"] = knee
        if knee is not None:
            ctx.rep.say(f"knee: {knee['ingest_rate']:,.0f} vectors/s (search P99 {knee['p99_us']:,.0f} us, idle "
                        f"{knee['idle_p99_us']:,.0f} us)")
        else:
            ctx.rep.warn(f"no ingest rate kept search P99 within {o.p99_factor:g}x the idle P99")
        return True


def knee_of(summary_rows: list[dict], factor: float) -> dict | None:
    """The highest sustained ingest rate whose whole-stream search P99 is within `factor` x the idle P99 (rows as
    dicts; a null may be None or NaN, as a pandas frame has it)."""
    def val(r: dict, k: str) -> float | None:
        v = r.get(k)
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    whole = [s for s in summary_rows if s.get("op") == "search" and val(s, "ingest_stage") is None
             and val(s, "ingest_rate") is not None and val(s, "p99_us") is not None]
    idle = [float(s["p99_us"]) for s in whole if val(s, "ingest_rate") == 0]
    if not idle:
        return None
    best = None
    for s in sorted(whole, key=lambda s: float(s["ingest_rate"])):
        rate, p99 = float(s["ingest_rate"]), float(s["p99_us"])
        kept_up = (val(s, "ingest_achieved") or 0) >= KEPT_UP * rate
        if rate > 0 and kept_up and p99 <= factor * idle[0]:
            best = {"ingest_rate": rate, "p99_us": p99, "idle_p99_us": idle[0], "p99_factor": factor}
    return best


class _Idle:
    """The baseline: searches on the loaded collection with no ingest."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx

    def run(self) -> float | None:
        ctx, r = self.ctx, self.ctx.spec.run
        pool = pool_for(ctx, *connected(ctx), ctx.workdir, r.concurrency)
        try:
            truth = ctx.ds.ground_truth(ctx.spec.search.k, progress=False)
            for trial in range(-1 if r.warmup_s > 0 else 0, r.trials):
                duration = r.warmup_s if trial < 0 else ctx.plan.kind.options.idle_s
                results, cpu = pool.run(_search_task(ctx, trial, duration))
                if trial < 0:
                    continue
                kept = Kept.of(results, ctx.spec.search.k)
                rec = per_search_recall(kept.search_ids, truth[kept.search_queries], ctx.spec.search.k)
                scored = {"search": {"recall": float(rec.mean())}} if len(rec) else {}
                base = {"ingest_rate": 0.0, "ingest_stage": None, "trial": trial,
                        "target_rate": r.target_rate, "arrival": r.arrival if r.target_rate else None}
                ctx.add_rows(rows(ctx, results, [("search", ["search"])], scored, base, pool_kind=pool.kind,
                                  cpu_s=cpu, scheduled_s=duration if r.target_rate else None))
        finally:
            pool.close()
        idle = [s for s in ctx.summary_rows if s.get("ingest_rate") == 0 and s.get("op") == "search"]
        p99 = idle[0].get("p99_us") if idle else None
        if p99 is None:
            ctx.warnings.append(f"the idle P99 is withheld ({idle[0]['count'] if idle else 0} searches, fewer than a "
                                "P99 needs), so no knee can be found: raise streaming.idle_s or run.trials")
        return p99


def _search_task(ctx: RunContext, trial: int, duration: float, **more: Any) -> PhaseTask:
    r, W = ctx.spec.run, ctx.spec.run.concurrency
    return PhaseTask(mode="search", trial=trial, seed=ctx.spec.dataset.seed, k=ctx.spec.search.k,
                     ef_search=ctx.plan.kind.ef_values()[0], duration_s=duration, operations=None,
                     target_rate=(r.target_rate / W) if r.target_rate else None, arrival=r.arrival,
                     record_count=ctx.ds.n, recall_sample_every=r.recall_sample_every if trial >= 0 else 0, **more)


class _Stream:
    """One trial at one ingest rate, on a fresh collection."""

    def __init__(self, ctx: RunContext, o: StreamingOptions, rate: float, trial: int, idle_p99: float | None):
        self.ctx, self.o, self.rate, self.trial, self.idle_p99 = ctx, o, rate, trial, idle_p99
        self.n, self.n0 = ctx.ds.n, int(ctx.ds.n * o.initial_fraction)

    def run(self) -> None:
        ctx, o = self.ctx, self.o
        W = ctx.spec.run.concurrency + o.writers
        ctx.rep.say(f"streaming {self.n - self.n0:,} vectors at {self.rate:,.0f}/s (trial {self.trial})")
        with fresh_collection(ctx, f"s{self.trial}_{int(self.rate)}", self.n0) as fresh:
            pool = pool_for(ctx, fresh.backend, fresh.collection, fresh.workdir, W)
            try:
                if ctx.spec.run.warmup_s > 0:
                    pool.run(self.task(-1, ctx.spec.run.warmup_s, inserts=None))
                span = (self.n - self.n0) / self.rate
                results, cpu = pool.run(self.task(self.trial, span, IngestPlan(
                    self.n0, self.n, o.insert_batch, o.writers, self.rate)))
            finally:
                pool.close()
        self.report(results, cpu, span, pool.kind)

    def task(self, trial: int, duration: float, inserts: IngestPlan | None) -> PhaseTask:
        """Every worker gets the task: searchers search (at the search rate per searcher), writers insert."""
        interval = min(1.0, max(0.05, duration / (self.o.stages * 5)))
        t = _search_task(self.ctx, trial, duration, interval_s=interval, inserts=inserts)
        return dataclasses.replace(t, mode="ingest" if inserts else "search")

    def report(self, results: list[WorkerResult], cpu: float | None, span: float, pool_kind: str) -> None:
        ctx, k = self.ctx, self.ctx.spec.search.k
        writers = [res for res in results if "acks" in res.extra]
        searchers = [res for res in results if "acks" not in res.extra]
        acked = self.acked(writers)
        kept = Kept.of(searchers, k)
        per = recall_growing(kept, acked, ctx.ds, k)
        t0 = min(res.started_wall for res in results)
        ack_times = np.sort(acked[self.n0:][acked[self.n0:] < NEVER])
        achieved = len(ack_times) / max((ack_times[-1] / 1e9 - t0) if len(ack_times) else span, 1e-9)
        extra = {"ingest_rate": self.rate, "trial": self.trial, "ingest_achieved": achieved,
                 "idle_p99_us": self.idle_p99, "p99_factor": self.o.p99_factor}
        scored = {"search": {"recall": float(per.mean())}} if len(per) else {}
        # searches and inserts each over their own workers' window (searchers stop at the scheduled end of the
        # stream; writers go on until every batch is acknowledged when the engine falls behind)
        out = rows(ctx, searchers, [("search", ["search"])], scored, {**extra, "ingest_stage": None},
                   pool_kind=pool_kind, scheduled_s=span if ctx.spec.run.target_rate else None)
        out += rows(ctx, writers, [("insert", ["insert"])], {}, {**extra, "ingest_stage": None},
                    pool_kind=pool_kind, scheduled_s=span)
        ends = stage_ends(ack_times, self.n - self.n0, self.o.stages)
        searched_until = max(res.ended_wall for res in searchers) * 1e9
        for s, (a, b) in enumerate(zip([t0 * 1e9, *ends[:-1]], ends, strict=True)):
            stage = round(100 * (s + 1) / self.o.stages)
            if not math.isfinite(b):
                ctx.warnings.append(f"ingest at {self.rate:,.0f}/s (trial {self.trial}): stage {stage}% was never "
                                    "reached (inserts failed), so it has no row")
                break
            in_stage = (kept.search_started >= a) & (kept.search_started < b)
            sc = {"search": {"recall": float(per[in_stage].mean())}} if in_stage.any() else {}
            groups = [("insert", ["insert"])]
            if b <= searched_until:
                groups.insert(0, ("search", ["search"]))
            elif a < searched_until:
                ctx.warnings.append(f"ingest at {self.rate:,.0f}/s (trial {self.trial}): the engine fell behind, "
                                    f"so the searches (run for the scheduled {span:.1f} s) ended in the stage ending "
                                    f"at {stage}%; later stages have insert rows only")
            sliced = [_slice(res, a / 1e9, b / 1e9) for res in results]
            out += rows(ctx, sliced, groups, sc, {**extra, "ingest_stage": stage}, pool_kind=pool_kind)
        for row in out:  # the phase mixes paced inserts and searches: its ingest rate is ingest_achieved
            row["achieved_rate"] = None
        ctx.add_rows(out)

    def acked(self, writers: list[WorkerResult]) -> np.ndarray:
        """Wall ns at which each row was acknowledged: 0 for the initial rows, NEVER for rows never acked."""
        acked = np.full(self.n, NEVER, dtype=np.int64)
        acked[:self.n0] = 0
        for res in writers:
            for t, lo, cnt in res.extra["acks"].tolist():
                acked[lo:lo + cnt] = t
        return acked


def stage_ends(ack_times: np.ndarray, total: int, stages: int) -> list[float]:
    """Wall ns at which each stage's share of `total` streamed rows had been acknowledged (inf: never)."""
    out = []
    for s in range(1, stages + 1):
        need = math.ceil(total * s / stages)
        out.append(float(ack_times[need - 1]) if need <= len(ack_times) else math.inf)
    return out


def _slice(res: WorkerResult, a: float, b: float) -> WorkerResult:
    """A worker's result cut to the intervals whose middle lies in [a, b) (wall seconds)."""
    hists: dict[str, list[str]] = {}
    for s, e, label, h in res.intervals:
        if a <= (s + e) / 2 < b:
            hists.setdefault(label, []).append(h)
    return WorkerResult(worker=res.worker, started_wall=a, ended_wall=b,
                        hist={lbl: hdr.encode(hdr.merge(hs)) for lbl, hs in hists.items()})


def recall_growing(kept: Kept, acked: np.ndarray, ds: Any, k: int) -> np.ndarray:
    """Recall@k of each kept search against the exact top-k of the rows acknowledged when it started (rows
    ranked once per query, then filtered by acknowledgement time per search)."""
    out = np.zeros(len(kept), dtype=np.float64)
    base = ds.base
    for qi in np.unique(kept.search_queries).tolist():
        scores = _score_matrix(base, ds.queries[qi:qi + 1], ds.metric)[0]
        order = np.argsort(-scores, kind="stable")
        when = acked[order]
        for j in np.flatnonzero(kept.search_queries == qi).tolist():
            truth = order[when <= kept.search_started[j]][:k]
            padded = np.full((1, k), -1, dtype=np.int64)
            padded[0, :len(truth)] = truth
            out[j] = per_search_recall(kept.search_ids[j:j + 1], padded, k)[0]
    return out
