"""`bench run`: the run context (spec -> dataset -> create, load, wait until indexed), then every configuration:
ef_search x the scenarios' variants x offered rates, each a warm-up (excluded from every figure) and
`run.trials` timed trials. The runner knows no workload feature: labels, file stems and row keys come from the
variant's axes (bench.results.keys), quality figures from the kind scenario and bench.metrics.scoring.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import psutil

from bench.load.pool import ProcessPool, ProcessSetup, ThreadPool, WorkerLost
from bench.load.task import PhaseTask
from bench.load.worker import WorkerData
from bench.metrics.host import BUSY_CORES, HostSampler
from bench.metrics.identity import ServerIdentity, identify
from bench.metrics.resources import sampler_for
from bench.metrics.scoring import Kept
from bench.metrics.timers import on_timer
from bench.processes import pid_on_port
from bench.results import keys
from bench.results import trial as trial_rows
from bench.results.aggregate import summarize
from bench.results.intervals import write_interval_logs
from bench.results.worker import WorkerResult
from bench.run_context import RATE_SWEEP, RunContext, RunOutcome, RunRequest, Stop, check
from bench.scenarios import Variant

__all__ = ["RunOutcome", "RunRequest", "check", "find_knee", "print_summary", "run", "stepwise"]


@dataclass(frozen=True)
class Config:
    """One configuration: a variant at one ef_search, one offered rate (None: closed loop), `workers` workers."""

    variant: Variant
    ef: int | None
    rate: float | None
    workers: int = 1

    def axes(self) -> dict[str, Any]:
        return {**self.variant.axes, "ef_search": self.ef, "target_rate": self.rate}


def run(req: RunRequest) -> RunOutcome:
    with RunContext.open(req) as ctx:
        if not ctx.plan.kind.measure(ctx):  # a kind that measures in its own way does it there
            runner = _Runner(ctx)
            ctx.on_close(lambda: runner.pool.close())  # the pool of the last concurrency level
            runner.all()
    return ctx.outcome()


@contextlib.contextmanager
def stepwise(req: RunRequest) -> Iterator[tuple[RunContext, Iterator[str]]]:
    """A run whose trials an orchestrator drives one at a time (`bench ab` interleaves two runs trial by trial):
    the run context is open (loaded, indexed) inside the block, and each `next()` of the iterator measures one
    timed trial (a configuration's warm-up comes with its first trial) and gives its label. Offered-rate sweeps
    are not stepped."""
    with RunContext.open(req) as ctx:
        runner = _Runner(ctx)
        ctx.on_close(lambda: runner.pool.close())  # the pool of the last concurrency level
        yield ctx, runner.steps()


class _Runner:
    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.spec, self.kind = ctx.spec, ctx.plan.kind
        self.levels = ctx.req.concurrency_levels or [self.spec.run.concurrency]
        self.pool = _pool(ctx, self.levels[0])
        self.state = self.kind.new_state()
        self.knees: list[dict] = []
        info = ctx.info
        assert info is not None
        self.server_port = info.server_address[1] if info.server_address else None
        self.server_pid = info.server_pid or (pid_on_port(self.server_port) if self.server_port else None)
        # an engine of several servers here (read replicas): their CPU and memory count as the engine's too
        more = [pid_on_port(port) for host, port in (info.node_addresses or [])[1:]
                if host in ("127.0.0.1", "localhost", "::1")]
        self.more_pids = tuple(p for p in more if p is not None and p != self.server_pid)
        self.server: ServerIdentity | None = self._identify()  # the server the last trial ended on

    def _identify(self) -> ServerIdentity | None:
        if self.ctx.cls.capabilities.in_process or (self.server_pid is None and self.server_port is None):
            return None
        found = identify(self.server_pid, self.server_port)
        if found is not None:
            self.server_pid = found.pid  # a restarted server is sampled, not its dead predecessor
        return found

    def all(self) -> None:
        for _ in self.steps(RATE_SWEEP if self.ctx.req.rate_sweep else ()):
            pass

    def steps(self, sweep: tuple[float, ...] = ()) -> Iterator[str]:
        """Every configuration's warm-up and timed trials, yielding after each timed trial."""
        efs = self.kind.ef_values()
        total = len(self.levels) * len(efs) * len(self.ctx.variants) * self.spec.run.trials * (1 + len(sweep))
        with self.ctx.rep.progress() as prog:
            self.prog, self.bar = prog, prog.add_task("trials", total=total)
            for W in self.levels:  # a concurrency sweep: one pool per level
                if W != self.pool.n:
                    self.pool.close()
                    self.pool = _pool(self.ctx, W)
                for ef in efs:
                    for v in self.ctx.variants:
                        yield from self.measure(Config(v, ef, self.spec.run.target_rate, W))
                        if sweep:
                            self.sweep(v, ef, sweep, W)
        self.ctx.extra_json["knees"] = self.knees

    def sweep(self, v: Variant, ef: int | None, fractions: tuple[float, ...], W: int) -> None:
        """Offer fractions of the closed-loop QPS open loop, and find the knee."""
        same = {**v.axes, "ef_search": ef, "concurrency": W}
        mine = [r for r in self.ctx.trial_rows if all(r.get(a) == b for a, b in same.items())]
        qmax = _closed_loop_qps(mine, ef)
        for frac in fractions:
            for _ in self.measure(Config(v, ef, max(1.0, frac * qmax), W)):
                pass
        mine = [r for r in self.ctx.trial_rows if all(r.get(a) == b for a, b in same.items())]
        knee = find_knee(summarize(mine))
        if knee:
            self.ctx.rep.say(f"knee at {keys.label(same)}: {knee['target_rate']:,.0f} ops/s offered "
                             f"({knee['qps']:,.0f} achieved, P99 {knee['p99_us']:,.0f} us)")
            self.knees.append({**same, **knee})

    def measure(self, c: Config) -> Iterator[str]:
        label = f"{self.ctx.req.backend} {self.spec.name} {keys.label(c.axes())}"
        self.prog.update(self.bar, description=label)
        try:
            self.phase(c, trial=-1)  # warm-up: excluded from every figure
        except WorkerLost as e:
            self.ctx.rep.warn(f"warm-up at {keys.label(c.axes())}: {e}; the workers were started again")
        for trial in range(self.spec.run.trials):
            self.trial(c, trial)
            self.prog.advance(self.bar)
            yield f"{label} trial {trial}"

    def phase(self, c: Config, trial: int) -> tuple[list[WorkerResult], float | None]:
        task = _task(self.ctx, c, trial)
        if task is None:
            return [], None
        results, cpu_s = self.pool.run(task)
        if self.state is not None:
            self.state.apply(results)
        return results, cpu_s

    def trial(self, c: Config, trial: int) -> None:
        ctx = self.ctx
        before = self._identify()
        changed = before is not None and self.server is not None and before != self.server
        sampler = sampler_for(self.server_pid, self.server_port, self.more_pids).start()
        host = HostSampler(self.server_pid, self.more_pids).start()
        cpu0 = psutil.Process().cpu_times() if self.pool.kind == "thread" else None
        try:
            results, cpu_s, lost = *self.phase(c, trial), None
        except WorkerLost as e:  # workers lost mid-trial (a Ray node or actor): this trial fails, the run goes on
            results, cpu_s, lost = e.results, e.cpu_s, str(e)
        resources, host_figures = sampler.stop(), host.stop()
        if cpu0 is not None:
            cpu1 = psutil.Process().cpu_times()
            cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        v, k = c.variant, self.spec.search.k
        kept = Kept.of(results, k)
        level = f".c{c.workers}" if len(self.levels) > 1 else ""
        stem = f"{ctx.prefix}{ctx.req.backend}.{self.spec.name}.{keys.stem(c.axes())}{level}.t{trial}"
        ids_file = None
        if len(kept):
            ids_file = f"ids/{stem}.npz"
            kept.save(ctx.run_dir / ids_file)
        base = {**ctx.base_row, **getattr(self.pool, "row", dict)(), **v.axes, **v.row, "ef_search": c.ef,
                "target_rate": c.rate, "arrival": self.spec.run.arrival if c.rate else None,
                "concurrency": c.workers, "trial": trial, "ids_file": ids_file}
        labels = sorted({lbl for r in results for lbl in (*r.hist, *r.failed)})
        rows = trial_rows.rows(trial_rows.TrialInput(
            results, self.kind.op_groups(labels),
            self.kind.score(v, kept, ctx.plan.reference(v, k, ctx.cache_dir), self.state), base, cpu_s,
            self.pool.kind, resources, self.spec.run.error_threshold, c.rate is not None,
            _scheduled_s(self.spec.run, c), host_figures, self.spec.run.duration_s,
            self.spec.run.phase_margin_s)) if results else []
        if lost is not None:
            rows = [{**r, "status": "failed", "status_reason": lost} for r in rows] or [
                {**base, "op": "total" if self.kind.mode != "search" else "search", "status": "failed",
                 "status_reason": lost, "count": 0, "errors": 0, "error_samples": None}]
        rows = self._server_rows(rows, before, changed)
        write_interval_logs(ctx.run_dir / "intervals", stem, results)
        ctx.add_rows(rows)
        self.report(rows, c, trial)

    def _server_rows(self, rows: list[dict], before: ServerIdentity | None, changed: bool) -> list[dict]:
        """Each row names the server it measured; one that restarted during the trial fails it, one that
        restarted since the last trial flags it (`server_changed`), as a busy host does."""
        after = self._identify()
        prev, self.server = self.server, after or self.server
        out = []
        for r in rows:
            r = {**r, "server_identity": before.text() if before else None, "server_changed": changed}
            if before is not None and after is not None and after != before:
                why = (f"the server restarted during the trial ({before.text()}, then {after.text()}): its figures "
                       "mix two servers")
                r.update(status="failed", status_reason=f"{r['status_reason']}; {why}"
                         if r.get("status") == "failed" and r.get("status_reason") else why)
            elif changed and prev is not None and before is not None:
                r["server_changed_from"] = prev.text()
            out.append(r)
        return out

    def report(self, rows: list[dict], c: Config, trial: int) -> None:
        ctx = self.ctx
        bad = next((r for r in rows if r["status"] != "ok"), None)
        if bad is not None:  # once per trial, naming the first operation kind that was not ok
            first = json.loads(bad["error_samples"] or "[]")[:1]
            ctx.rep.warn(f"trial {trial} at {keys.label(c.axes())} is {bad['status']} ({bad['op']}): "
                         f"{bad['status_reason']}" + (f"; first error: {first[0]}" if first else ""))
        if rows and rows[0].get("server_changed"):
            msg = (f"the {ctx.req.backend} server restarted before trial {trial} at {keys.label(c.axes())} "
                   f"({rows[0].get('server_changed_from')}, now {rows[0].get('server_identity')}): that trial "
                   "measured a fresh server (cold caches), not the one the trials before it measured")
            ctx.rep.warn(msg)
            ctx.warnings.append(msg)
        if rows and rows[0].get("host_busy"):
            msg = (f"the machine was busy during trial {trial} at {keys.label(c.axes())}: other processes used "
                   f"{rows[0]['host_other_cores']:.1f} cores (flagged at {BUSY_CORES}); its figures may be the "
                   "machine's, not the engine's")
            ctx.rep.detail(f"busy host: {msg}")  # -v only; the summary says how many trials were busy
        timers = ctx.info.latency_timers if ctx.info is not None else {}
        for msg in on_timer(rows, timers, keys.label(c.axes())):
            if msg not in ctx.warnings:
                ctx.warnings.append(msg)
        for r in rows:
            if r.get("client_limited"):
                msg = (f"the client, not the engine, was the limit (a worker used >= {trial_rows.CLIENT_LIMIT:.0%} "
                       "of a core, or a cluster node's workers that share of its cores); add --concurrency, client "
                       "cores or --cluster nodes")
                if msg not in ctx.warnings:
                    ctx.warnings.append(msg)
        if any(r["status"] == "failed" for r in rows) and self.spec.run.on_trial_failure == "stop":
            raise Stop("a trial failed and run.on_trial_failure = \"stop\"")


def _pool(ctx: RunContext, W: int) -> Any:
    r, ds = ctx.spec.run, ctx.ds
    stall_s = r.op_timeout_s + r.phase_margin_s
    if ctx.req.cluster:
        from bench import __version__
        from bench.load.ray_pool import RayPool, RaySetup

        setup = RaySetup(ctx.req.backend, ctx.options.model_dump(), ctx.collection, __version__, r.op_timeout_s)
        return RayPool(ctx.req.cluster, setup, WorkerData(ds.queries, ds.base, ds.holdout), W, stall_s=stall_s)
    if ctx.cls.capabilities.in_process:
        ctx.backend.set_op_timeout(r.op_timeout_s)
        return ThreadPool(ctx.backend, WorkerData(ds.queries, ds.base, ds.holdout), W, stall_s=stall_s)
    setup = ProcessSetup(ctx.req.backend, ctx.options.model_dump(), ctx.workdir, ctx.collection, ctx.spec.dataset,
                         str(ctx.cache_dir), r.op_timeout_s)
    return ProcessPool(setup, W, stall_s=stall_s)


def _scheduled_s(r: Any, c: Config) -> float | None:
    """Open loop: the window the trial's operations were scheduled over (its duration, or operations / rate)."""
    if not c.rate:
        return None
    return r.duration_s if r.duration_s is not None else ((r.operations or 0) / c.rate or None)


def _per_worker(total: int | None, W: int) -> int | None:
    return None if total is None else max(1, math.ceil(total / W))


def _task(ctx: RunContext, c: Config, trial: int) -> PhaseTask | None:
    """What every worker runs in one phase (trial -1: the warm-up), or None for no warm-up."""
    r, v, kind = ctx.spec.run, c.variant, ctx.plan.kind
    W, warmup = c.workers, trial < 0
    if warmup:
        if r.warmup_s <= 0:
            return None
        duration, operations = r.warmup_s, None
    elif r.duration_s is not None:
        duration, operations = r.duration_s, _per_worker(r.operations, W)
    else:
        duration, operations = None, _per_worker(r.operations or kind.default_operations(v), W)
    own_queries = v.queries is not None or v.data is not ctx.ds
    return PhaseTask(
        mode=kind.mode, trial=trial, seed=ctx.spec.dataset.seed, k=ctx.spec.search.k, ef_search=c.ef,
        duration_s=duration, operations=operations, target_rate=(c.rate / W) if c.rate else None,
        arrival=r.arrival, record_count=ctx.ds.n, params=dict(v.params), per_query=v.per_query,
        queries=v.query_vectors() if own_queries else None, **dict(v.task), **kind.task_fields(warmup))


def _closed_loop_qps(rows: list[dict], ef: int | None) -> float:
    qps = [r["qps"] for r in rows if r["target_rate"] is None and r["status"] == "ok"
           and r["op"] in ("search", "total")]
    if not qps:
        raise Stop(f"no closed-loop trial at ef_search={ef} succeeded, so there is no maximum to sweep from")
    return float(np.median(qps))


def find_knee(summary_rows: list[dict], p99_factor: float = 3.0, achieved: float = 0.95) -> dict | None:
    """The latency-throughput knee: the highest offered rate the engine still kept up with (achieved at least
    95% of it) with a corrected P99 within `p99_factor` times the P99 at the lowest offered rate."""
    pts = sorted((r for r in summary_rows if r.get("target_rate") and r["op"] in ("search", "total")
                  and r.get("p99_us") is not None), key=lambda r: r["target_rate"])
    if not pts:
        return None
    floor = pts[0]["p99_us"]
    knee = None
    for r in pts:
        if r["qps"] >= achieved * r["target_rate"] and r["p99_us"] <= p99_factor * floor:
            knee = r
    if knee is None:
        return None
    return {k: knee[k] for k in ("target_rate", "qps", "p50_us", "p99_us", "p999_us")}


def summary_notes(rows: list[dict], verbose: bool = False) -> list[str]:
    """What a reader must know to read the table, one line each: withheld percentiles, few trials, trials flagged
    worse than the others, suspect trials, a busy host. `verbose` adds a line per configuration under each."""
    notes = []
    if any(r.get("percentiles_withheld") for r in rows):
        notes.append("- = too few samples for that percentile (P50 needs 20 operations, P99 1,000, P99.9 10,000); "
                     "run longer trials (run.min_operations, run.operations or run.duration_s)")
    few = sorted({int(r["n_ok"]) for r in rows if r.get("n_ok") is not None and r["n_ok"] < 5})
    if few:
        notes.append(f"only {', '.join(map(str, few))} ok trial(s) in some configurations: the median rests on "
                     "fewer than the five trials a figure should have")
    trials = sum(int(r.get("n_ok") or 0) for r in rows if r["op"] in ("search", "total") or len(rows) == 1)
    for col, head, what in (
            ("outliers", "flagged", "worse than the others beyond their noise: kept out of the medians, not out of "
                                    "sight"),
            ("suspect_trials", "suspect", "where the load generator fell behind (status_reason in trials.parquet)"),
            ("busy_trials", "busy host", "measured while other processes used the CPU: their figures may be the "
                                         "machine's, not the engine's"),
            ("server_changes", "server restarted", "measured a server other than the trial before them (it "
                                                   "restarted in between: cold caches)")):
        hit = [r for r in rows if r.get(col)]
        if not hit:
            continue
        n = sum(len(str(r[col]).split("; ")) if col == "outliers" else int(r[col]) for r in hit)
        of = f" of {trials}" if col == "busy_trials" and trials >= n else ""
        notes.append(f"[yellow]{head}:[/yellow] {n}{of} trial(s) {what}" + ("" if verbose else " (-v names them)"))
        if verbose:
            notes += [f"  {r['backend']} {r['op']} {keys.label(r)}: {r[col]}" for r in hit]
    return notes


def print_summary(rows: list[dict], warnings: list[str], out: Callable[[Any], None] | None = None,
                  wide: bool = False, verbose: bool = False) -> None:
    from rich.console import Console

    from bench.terminal import Column, fit, terminal_width

    cols = [Column("backend"), Column("workload", drop=2), Column("op"), Column("configuration"),
            Column("conc", True), Column("rate", True, drop=1), Column("QPS", True), Column("spread", True, drop=4),
            Column("P50 us", True), Column("P99 us", True), Column("P99.9 us", True, drop=3),
            Column("recall", True), Column("trials", True, drop=5)]

    def f(v, spec=",.0f"):
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)

    config = [k for k in keys.names("load", "variant") if k not in ("concurrency", "target_rate")]
    table_rows = []
    for r in rows:
        spread = f"[{f(r['qps_lo'])}-{f(r['qps_hi'])}]" if r.get("qps") is not None else "-"
        table_rows.append([r["backend"], r["workload"], r["op"], keys.label(r, config) or "-",
                           f(r.get("concurrency"), "d"), f(r.get("target_rate")), f(r.get("qps")), spread,
                           f(r.get("p50_us")), f(r.get("p99_us")), f(r.get("p999_us")), f(r.get("recall"), ".4f"),
                           f"{r['n_kept']}/{r['n_ok']}/{r['n_trials']}"])
    width = terminal_width(sys.stdout)
    t, dropped = fit("bench results: QPS and recall are trimmed medians of the ok trials \\[lowest-highest ok "
                     "trial]; P50/P99/P99.9 from the ok trials' merged histogram, in us",
                     cols, table_rows, width, wide)
    console = Console(file=sys.stdout, width=10_000 if wide else width, highlight=False)
    console.print(t)
    if dropped:
        console.print(f"left out to fit {width} columns: {', '.join(dropped)} (--wide keeps every column)")
    for line in summary_notes(rows, verbose):
        console.print(line)
    subs = sorted({s for r in rows for s in json.loads(r.get("index_substitutions") or "[]")})
    for s in subs:
        console.print(f"[yellow]built other than asked:[/yellow] {s}")
    for w in sorted(set(warnings) - {w for w in warnings if any(s in w for s in subs)}):
        console.print(f"[yellow]warning:[/yellow] {w}")
