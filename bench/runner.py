"""`bench run`: spec -> dataset -> backend (create, load, wait until indexed) -> phases -> trials -> parquet.

Each configuration (an ef_search value, or the YCSB mix) gets a warm-up, excluded from every figure, then
`run.trials` timed trials. trials.parquet and summary.parquet are rewritten atomically after every trial, so an
interrupted or failed run keeps everything that finished.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from bench import datasets
from bench.analysis.aggregate import summarize
from bench.backends import registry
from bench.backends.base import Backend, BuiltIndex, CollectionSpec, EngineInfo, HybridSpec
from bench.backends.secrets import public_options, redact_command
from bench.datasets import filtered, multivector
from bench.datasets import hybrid as hybrid_ref
from bench.datasets import texts as hybrid_texts
from bench.errors import UserError
from bench.load.pool import ProcessPool, ProcessSetup, ThreadPool, WorkerFailed
from bench.load.task import PhaseTask, WorkerResult
from bench.load.worker import WorkerData
from bench.metrics import hdr
from bench.metrics.recall import per_query_mean, per_search_recall, recall_at_k, recall_under_updates
from bench.metrics.resources import pid_listening_on, sampler_for
from bench.results import env
from bench.results.intervals import write_interval_logs
from bench.results.schema import SUMMARY_SCHEMA, TRIALS_SCHEMA, table
from bench.results.writer import make_run_dir, new_run_id, write_json, write_parquet
from bench.spec import WorkloadSpec, load_backend_options, load_workload

RATE_SWEEP = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.2)
GENERATOR_LAG_LIMIT = 0.01  # open loop: a trial where the generator itself fell behind on >1% of sends is invalid
CLIENT_LIMIT = 0.9  # a worker process using >= 90% of a core was the limit, not the engine


@dataclass
class RunRequest:
    backend: str
    workload: str
    overrides: list[str] = field(default_factory=list)
    config: str | None = None
    results_dir: Path = Path("results")
    cache_dir: Path | None = None
    run_id: str | None = None
    trials: int | None = None
    concurrency: int | None = None
    target_rate: float | None = None
    quiet: bool = False
    command: str = ""
    suite_run_id: str | None = None  # a suite writes several (backend, workload) cells into one run id
    live: Any = None  # e.g. bench.live.LiveExporter: `trial_done(rows)` is called after every trial
    rate_sweep: bool = False  # after the closed-loop trials, offer 10%..120% of their QPS open loop


@dataclass
class RunOutcome:
    run_id: str
    run_dir: Path
    trial_rows: list[dict]
    summary_rows: list[dict]
    built: BuiltIndex | None
    warnings: list[str]
    status: str


class Reporter:
    """Progress and messages; silent with --quiet."""

    def __init__(self, quiet: bool):
        from rich.console import Console

        self.quiet = quiet
        self.console = Console(stderr=True, quiet=quiet)

    def progress(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=self.console, transient=True, disable=self.quiet)

    def say(self, msg: str) -> None:
        self.console.print(msg)

    def warn(self, msg: str) -> None:
        from rich.console import Console

        Console(stderr=True).print(f"[yellow]warning:[/yellow] {msg}")


def _overrides(req: RunRequest) -> list[str]:
    out = list(req.overrides)
    if req.trials is not None:
        out.append(f"run.trials={req.trials}")
    if req.concurrency is not None:
        out.append(f"run.concurrency={req.concurrency}")
    if req.target_rate is not None:
        out.append(f"run.target_rate={req.target_rate}")
    return out


def prepare(req: RunRequest) -> tuple[WorkloadSpec, type[Backend], Any, Path | None]:
    """Validate everything a run needs before anything is written: spec, backend name, options, availability."""
    spec = load_workload(req.workload, _overrides(req))
    cls = registry.get(req.backend)
    options, cfg_path = load_backend_options(cls.Options, req.backend, req.config, req.overrides)
    reason = cls.check_available(options)
    if reason:
        raise UserError(f"Backend '{req.backend}' is not usable here: {reason.rstrip('.')}")
    if spec.kind == "ycsb" and spec.ycsb is not None:
        writes = spec.ycsb.update_proportion + spec.ycsb.insert_proportion + spec.ycsb.read_modify_write_proportion
        caps = cls.capabilities
        if writes and not caps.upsert:
            raise UserError(f"Backend '{req.backend}' cannot update records, which workload '{spec.name}' needs",
                            "choose a backend that supports upserts (`bench backends` lists capabilities)")
        reads = spec.ycsb.read_proportion + spec.ycsb.read_modify_write_proportion
        if reads and not caps.get:
            raise UserError(f"Backend '{req.backend}' cannot fetch records by id, which workload '{spec.name}' needs",
                            "choose a backend that supports get")
        if (spec.ycsb.search_proportion or spec.ycsb.filtered_search_proportion) and writes \
                and spec.dataset.holdout == 0:
            raise UserError(f"Workload '{spec.name}' mixes searches with updates but dataset.holdout is 0",
                            "set dataset.holdout so updates use vectors the ground truth can follow")
    quant = spec.index.quantization
    if quant and quant not in cls.capabilities.quantization:
        offered = ", ".join(cls.capabilities.quantization) or "none"
        raise UserError(f"Backend '{req.backend}' does not offer quantization '{quant}' (it offers: {offered}), which "
                        f"workload '{spec.name}' asks for, so it is skipped rather than built unquantized",
                        "choose another index.quantization or backend (`bench backends` lists them)")
    if spec.filter is not None and not cls.capabilities.filters:
        raise UserError(f"Backend '{req.backend}' cannot push payload filters into its search, which workload "
                        f"'{spec.name}' needs, so it is skipped", "choose a backend with filters (`bench backends`)")
    if spec.multivector is not None:
        reason = cls.multi_vector_unsupported(options)
        if reason:
            raise UserError(f"Backend '{req.backend}' cannot store several named vectors per record, which workload "
                            f"'{spec.name}' needs, so it is skipped: {reason.rstrip('.')}",
                            "choose a backend with multi_vector (`bench backends` lists capabilities)")
    if spec.multivector is not None and req.rate_sweep:
        raise UserError(f"--rate-sweep does not sweep multi-vector workloads ('{spec.name}' has a [multivector] "
                        "table)", "run it without --rate-sweep")
    if spec.hybrid is not None:
        reason = cls.hybrid_unsupported(options)
        if reason:
            raise UserError(f"Backend '{req.backend}' cannot run hybrid (BM25 + dense) search, which workload "
                            f"'{spec.name}' needs, so it is skipped: {reason.rstrip('.')}",
                            "choose a backend with hybrid (`bench backends`)")
        if not runnable_hybrid_cases(spec, cls)[0]:
            raise UserError(f"Backend '{req.backend}' has no alpha-weighted fusion, the only fusion workload "
                            f"'{spec.name}' asks for, so it is skipped", "add \"rrf\" to hybrid.fusion")
        if req.rate_sweep:
            raise UserError(f"--rate-sweep does not sweep hybrid workloads ('{spec.name}' has a [hybrid] table)",
                            "run it without --rate-sweep")
    if spec.filter is not None and req.rate_sweep:
        raise UserError(f"--rate-sweep does not sweep filtered workloads ('{spec.name}' has a [filter] table)",
                        "run it without --rate-sweep")
    return spec, cls, options, cfg_path


def runnable_hybrid_cases(spec: WorkloadSpec, cls: type[Backend]) -> tuple[list[tuple[str, float | None]], list[str]]:
    """(the (fusion, alpha) configurations this backend can run, sentences saying which are skipped and why)."""
    if spec.hybrid is None:
        return [], []
    cases, skipped = [], []
    for fusion, alpha in spec.hybrid.cases():
        if fusion == "weighted" and cls.hybrid_weighted_norm is None:
            skipped.append(alpha)
            continue
        cases.append((fusion, alpha))
    why = ([f"{cls.name}: hybrid fusion 'weighted' (alpha {', '.join(f'{a:g}' for a in skipped)}) is skipped: the "
            "engine has no alpha-weighted score fusion"] if skipped else [])
    return cases, why


@dataclass
class _Hybrid:
    """What a hybrid run needs: the texts, the harness' BM25, and the exact fused reference per configuration."""

    docs: list[str]
    query_texts: tuple[str, ...]
    source: str
    bm25: Any
    cases: list[tuple[str, float | None]]
    refs: dict[tuple[str, float | None], Any]
    norm: str | None

    def describe(self) -> dict[str, Any]:
        return {"texts": self.source, "bm25": {"k1": self.bm25.k1, "b": self.bm25.b, "idf": hybrid_ref.IDF_FORMULA,
                                               "avgdl": self.bm25.avgdl, "terms": len(self.bm25.terms),
                                               "tokens": "lowercase [a-z0-9]+, no stemming, no stopwords"},
                "rrf_k": hybrid_ref.RRF_K, "weighted_norm": self.norm,
                "configurations": [{"fusion": f, "alpha": a} for f, a in self.cases]}


def _prepare_hybrid(spec: WorkloadSpec, cls: type[Backend], ds, rep) -> _Hybrid:
    h = spec.hybrid
    assert h is not None
    docs, qtexts, source = hybrid_texts.for_dataset(ds, h, spec.dataset.seed)
    bm25 = hybrid_ref.build_bm25(docs, h.k1, h.b)
    cases, _ = runnable_hybrid_cases(spec, cls)
    refs = {}
    base = np.asarray(ds.base)
    text_key = {"source": source, "params": h.model_dump(mode="json"), "seed": spec.dataset.seed}
    for fusion, alpha in cases:
        norm = cls.hybrid_weighted_norm if fusion == "weighted" else None
        key = {"data": ds.content_hash, "metric": ds.metric, "n": ds.n, "nq": len(ds.queries), "k": spec.search.k,
               "candidates": h.candidates, "fusion": fusion, "alpha": alpha, "norm": norm, "texts": text_key,
               "rrf_k": hybrid_ref.RRF_K}
        refs[(fusion, alpha)] = hybrid_ref.cached_reference(
            ds.cache_dir, key, lambda f=fusion, a=alpha, nm=norm: hybrid_ref.reference(
                base, ds.queries, ds.metric, bm25, qtexts, spec.search.k, h.candidates, f, a, nm))
    rep.say(f"hybrid: {source} texts, {len(bm25.terms):,} terms, avgdl {bm25.avgdl:.1f}; "
            f"exact fused reference for {len(cases)} configuration(s)")
    return _Hybrid(docs, tuple(qtexts), source, bm25, cases, refs, cls.hybrid_weighted_norm)


def run(req: RunRequest) -> RunOutcome:
    spec, cls, options, _ = prepare(req)
    rep = Reporter(req.quiet)
    cache_dir = req.cache_dir or datasets.default_cache_dir()
    ds = datasets.load(spec.dataset, cache_dir, progress=not req.quiet)
    if ds.dim != spec.dataset.dim:
        raise UserError(f"Dataset '{ds.name}' has dimension {ds.dim} but the workload says dataset.dim = {spec.dataset.dim}",
                        "fix dataset.dim or choose another dataset")
    k = spec.search.k
    gt = None
    if spec.kind == "ann" or (spec.ycsb is not None and spec.ycsb.search_proportion > 0):
        gt = ds.ground_truth(k, progress=not req.quiet)
    mv_fields = spec.multivector.fields(spec.dataset) if spec.multivector else None
    mv = multivector.load(spec.dataset, mv_fields, cache_dir, not req.quiet, first=ds) if mv_fields else None
    vgt = mv.ground_truths(k, progress=not req.quiet) if mv else {}
    fcases = filtered.cases(spec.filter.selectivities) if spec.filter else []
    fmasks = filtered.masks(ds.n, fcases, spec.dataset.seed)
    fgt = {c.field: filtered.ground_truth(ds, k, c, fmasks[c.field], spec.dataset.seed)
           for c in fcases if spec.kind == "ann"}  # YCSB: filtered recall follows the writes (recall_under_updates)
    hyb = _prepare_hybrid(spec, cls, ds, Reporter(req.quiet)) if spec.hybrid is not None else None

    run_id = req.suite_run_id or req.run_id or new_run_id(f"{req.backend}-{spec.name}")
    run_dir = req.results_dir / run_id
    if req.suite_run_id:
        run_dir.mkdir(parents=True, exist_ok=True)
        prefix = f"{req.backend}.{spec.name}."
    else:
        run_dir = make_run_dir(req.results_dir, run_id)
        prefix = ""
    started = datetime.now(UTC)
    write_json(run_dir / f"{prefix}run.json", {
        "run_id": run_id, "backend": req.backend, "workload": spec.model_dump(mode="json"),
        "backend_options": public_options(options), "command": redact_command(req.command), "started_utc": started.isoformat(),
        "dataset": ds.describe(), **({"vectors": mv.describe()} if mv else {}), "status": "running"})

    workdir = tempfile.mkdtemp(prefix=f"bench-{req.backend}-")
    backend = cls(options, workdir)
    warnings: list[str] = list(runnable_hybrid_cases(spec, cls)[1])
    for w in warnings:
        rep.warn(w)
    trial_rows: list[dict] = []
    summary_rows: list[dict] = []
    built: BuiltIndex | None = None
    knees: list[dict] = []
    status = "failed"
    pool = None
    try:
        backend.connect()
        collection = CollectionSpec(name=f"bench_{spec.name}".replace("-", "_"), dim=ds.dim, metric=ds.metric,
                                    index=spec.index.to_spec(), ef_search=_configs(spec)[0],
                                    payload_fields={**filtered.payload_fields(fcases), **({"text": "text"} if hyb else {})},
                                    hybrid=HybridSpec(text_field="text", k1=spec.hybrid.k1, b=spec.hybrid.b,
                                                      avgdl=hyb.bm25.avgdl) if hyb and spec.hybrid else None,
                                    vectors=mv.dims if mv else {}, vector_metrics=mv.metrics if mv else {})
        rss0 = _rss_before_build(ds) if cls.capabilities.in_process else None
        backend.create(collection)
        load_s = _load(backend, mv or ds, spec.run.batch_size, rep, fmasks, hyb.docs if hyb else None)
        t0 = time.perf_counter()
        built = backend.wait_indexed(spec.run.index_timeout_s)
        build_s = time.perf_counter() - t0
        rss_growth = (psutil.Process().memory_info().rss - rss0) if rss0 is not None else None
        warnings.extend(f"{req.backend}: {s}" for s in built.substitutions)  # printed under the table
        info = backend.info()
        rep.say(f"loaded {ds.n} vectors in {load_s:.1f} s; index ready after {build_s:.1f} s more "
                f"({built.kind} {json.dumps(built.params)})")
        server_port = info.server_address[1] if info.server_address else None
        server_pid = info.server_pid or (pid_listening_on(server_port) if server_port else None)
        base_row = _provenance(req, spec, ds, options, cls, info, built, load_s, build_s, started, run_id)
        if mv:
            base_row.update(dataset_name=mv.name, dataset_hash=mv.content_hash)
        base_row["client_rss_growth_bytes"] = rss_growth
        W = spec.run.concurrency
        if cls.capabilities.in_process:
            pool = ThreadPool(backend, WorkerData(ds.queries, ds.base, ds.holdout,
                                                  named_queries=mv.queries if mv else None), W)
        else:
            setup = ProcessSetup(req.backend, options.model_dump(), workdir, collection, spec.dataset, str(cache_dir),
                                 multivector=mv_fields)
            pool = ProcessPool(setup, W)
        state = _UpdateState()

        configs = _configs(spec)
        sweep = RATE_SWEEP if req.rate_sweep else ()
        with rep.progress() as prog:
            per_ef = len(hyb.cases) if hyb else (len(fcases) or (len(mv.names) if mv else 1))
            bar = prog.add_task("trials", total=len(configs) * per_ef * spec.run.trials * (1 + len(sweep)))

            def measure(ef, rate, flt=None, vec=None, hc=None):
                label = (f"{req.backend} {spec.name} ef_search={ef}" + (f" at {rate:,.0f} ops/s" if rate else "")
                         + (f" filter {flt.label}" if flt else "") + (f" vector {vec}" if vec else "")
                         + (f" {hc[0]}" + (f" alpha={hc[1]}" if hc[1] is not None else "") if hc else ""))
                prog.update(bar, description=label)
                _phase(pool, spec, ds, ef, trial=-1, warmup=True, state=state, rate=rate, flt=flt, vec=vec,
                       hyb=(hyb, hc) if hc else None)  # warm-up: excluded
                for trial in range(spec.run.trials):
                    sampler = sampler_for(server_pid, server_port).start()
                    cpu0 = psutil.Process().cpu_times() if pool.kind == "thread" else None
                    results, cpu_s = _phase(pool, spec, ds, ef, trial=trial, warmup=False, state=state, rate=rate,
                                            flt=flt, vec=vec, hyb=(hyb, hc) if hc else None)
                    res_stats = sampler.stop()
                    if cpu0 is not None:
                        cpu1 = psutil.Process().cpu_times()
                        cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
                    row0 = {**base_row, "target_rate": rate, "arrival": spec.run.arrival if rate else None}
                    if flt is not None:
                        row0.update(filter=flt.label, selectivity=flt.selectivity)
                    if vec is not None:  # the row describes the named vector it searched
                        row0.update(vector_name=vec, dataset_dim=mv.dims[vec], dataset_metric=mv.metrics[vec])
                    if hc is not None:
                        row0.update(fusion=hc[0], alpha=hc[1])
                    truth = fgt.get(flt.field, gt) if flt else vgt[vec] if vec else gt
                    rows = _trial_rows(spec, ds, truth, ef, trial, results, cpu_s, pool.kind, res_stats, state, row0,
                                       href=hyb.refs[hc] if hc else None, flt=flt)
                    stem = (f"{prefix}{req.backend}.{spec.name}.ef{ef}" + (f".rate{rate:.0f}" if rate else "")
                            + (f".{flt.field}" if flt else "") + (f".v{vec}" if vec else "")
                            + (f".{hc[0]}" + (f"{hc[1]:g}" if hc[1] is not None else "") if hc else "")
                            + f".t{trial}")
                    write_interval_logs(run_dir / "intervals", stem, results)
                    trial_rows.extend(rows)
                    if req.live is not None:
                        req.live.trial_done(rows)
                    _write_results(trial_rows, "running", run_dir, prefix)
                    prog.advance(bar)
                    for r in rows:
                        if r["status"] != "ok" and r["op"] in ("search", "filtered-search", "total"):
                            first = json.loads(r["error_samples"] or "[]")[:1]
                            rep.warn(f"trial {trial} at ef_search={ef} is {r['status']}: {r['status_reason']}"
                                     + (f"; first error: {first[0]}" if first else ""))
                        if r.get("client_limited") and r["op"] in ("search", "total"):
                            warnings.append("the client, not the engine, was the limit (a worker used "
                                            f">= {CLIENT_LIMIT:.0%} of a core); add --concurrency or client cores")
                    if any(r["status"] == "failed" for r in rows) and spec.run.on_trial_failure == "stop":
                        raise _Stop("a trial failed and run.on_trial_failure = \"stop\"")

            for ef in configs:
                if hyb is not None:
                    for hc in hyb.cases:
                        measure(ef, spec.run.target_rate, hc=hc)
                    continue
                if fcases:
                    for flt in fcases:
                        measure(ef, spec.run.target_rate, flt)
                    continue
                if mv:
                    for name in mv.names:
                        measure(ef, spec.run.target_rate, vec=name)
                    continue
                measure(ef, spec.run.target_rate)
                if sweep:
                    qmax = _closed_loop_qps(trial_rows, ef)
                    for frac in sweep:
                        measure(ef, max(1.0, frac * qmax))
                    knee = find_knee([r for r in summarize(trial_rows) if r["ef_search"] == ef])
                    if knee:
                        rep.say(f"knee at ef_search={ef}: {knee['target_rate']:,.0f} ops/s offered "
                                f"({knee['qps']:,.0f} achieved, P99 {knee['p99_us']:,.0f} us)")
                        knees.append({"ef_search": ef, **knee})
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        rep.warn("interrupted: writing the trials that finished")
    except _Stop as e:
        status = "stopped"
        rep.warn(str(e))
    except WorkerFailed as e:
        status = "failed"
        warnings.append(f"a worker failed: {e}")
        rep.warn(f"a worker failed: {e}")
    finally:
        if pool is not None:
            pool.close()
        if trial_rows:
            summary_rows = _write_results(trial_rows, status, run_dir, prefix)
        write_json(run_dir / f"{prefix}run.json", {
            "run_id": run_id, "backend": req.backend, "workload": spec.model_dump(mode="json"),
            "backend_options": public_options(options), "command": redact_command(req.command),
            "started_utc": started.isoformat(), "ended_utc": datetime.now(UTC).isoformat(),
            "dataset": ds.describe(), **({"vectors": mv.describe()} if mv else {}), "status": status,
            "warnings": warnings,
            "index_built": built.as_dict() if built else None, "knees": knees,
            **({"hybrid": _hybrid_json(hyb, spec.search.k)} if hyb else {})})
        try:
            backend.drop()
            backend.close()
        except Exception:  # noqa: BLE001 - cleanup must not hide the result
            pass
        shutil.rmtree(workdir, ignore_errors=True)
    if status == "interrupted":
        raise KeyboardInterrupt
    return RunOutcome(run_id, run_dir, trial_rows, summary_rows, built, warnings, status)


class _Stop(Exception):
    pass


def _write_results(trial_rows: list[dict], run_status: str, run_dir: Path, prefix: str) -> list[dict]:
    """Write trials.parquet and the trimmed summary.parquet (atomically), marked with the run's status."""
    for r in trial_rows:
        r["run_status"] = run_status
    summary_rows = summarize(trial_rows)
    for r in summary_rows:
        r["run_status"] = run_status
    write_parquet(table(trial_rows, TRIALS_SCHEMA), run_dir / f"{prefix}trials.parquet")
    write_parquet(table(summary_rows, SUMMARY_SCHEMA), run_dir / f"{prefix}summary.parquet")
    return summary_rows


def _rss_before_build(ds) -> int:
    """The harness's RSS before an in-process engine is created, with the dataset's pages already resident (a
    memory-mapped dataset read while loading would otherwise count as the engine's memory)."""
    float(np.asarray(ds.base).sum())  # reads every page
    return psutil.Process().memory_info().rss


def _configs(spec: WorkloadSpec) -> list[int | None]:
    if spec.kind == "ann":
        return list(spec.search.ef_search)
    return [spec.search.ef_search[0]]


def _hybrid_json(hyb: _Hybrid, k: int) -> dict[str, Any]:
    """What the hybrid reference was, and how far it sits from each side alone (overlap@k of the exact fused
    top-k with the exact dense and the exact BM25 top-k): where an engine's disagreement can come from."""
    out = hyb.describe()
    for c in out["configurations"]:
        ref = hyb.refs[(c["fusion"], c["alpha"])]
        q = np.arange(len(ref.fused))
        c["reference_recall_dense"] = recall_at_k(ref.fused, ref.dense_topk, k)
        c["reference_recall_bm25"] = recall_at_k(ref.fused, ref.bm25_topk, k)
        c["reference_self_agreement"] = ref.agreement(q, ref.fused, k)
    return out


def _load(backend: Backend, ds, batch_size: int, rep: Reporter, fmasks: dict | None = None,
          texts: list[str] | None = None) -> float:
    """Insert every base row in batches; `ds` is a Dataset, or MultiVectorData (then vectors are {name: array})."""
    total = 0.0
    with rep.progress() as prog:
        bar = prog.add_task(f"loading {ds.name}", total=ds.n)
        for ids, vecs in ds.batches(batch_size):
            payloads = filtered.payloads(ids, fmasks) if fmasks else None
            if texts is not None:
                payloads = [{**(payloads[j] if payloads else {}), "text": texts[i]} for j, i in enumerate(ids.tolist())]
            t0 = time.perf_counter()
            backend.insert(ids, vecs, payloads)
            total += time.perf_counter() - t0
            prog.advance(bar, len(ids))
    return total


def _per_worker(total: int | None, W: int) -> int | None:
    return None if total is None else max(1, math.ceil(total / W))


def _phase(pool, spec: WorkloadSpec, ds, ef, trial: int, warmup: bool, state,
           rate: float | None, flt=None, vec: str | None = None, hyb=None) -> tuple[list[WorkerResult], float | None]:
    r = spec.run
    W = r.concurrency
    if warmup:
        if r.warmup_s <= 0:
            return [], None
        duration, operations = r.warmup_s, None
    elif r.duration_s is not None:
        duration, operations = r.duration_s, _per_worker(r.operations, W)
    else:
        duration = None
        operations = _per_worker(r.operations or (len(ds.queries) if spec.kind == "ann" else 10_000), W)
    y = spec.ycsb
    searching = spec.kind == "ycsb" and y is not None and (y.search_proportion + y.filtered_search_proportion) > 0
    task = PhaseTask(
        mode="search" if spec.kind == "ann" else "ycsb", trial=trial, seed=spec.dataset.seed, k=spec.search.k,
        ef_search=ef, duration_s=duration, operations=operations,
        target_rate=(rate / W) if rate else None, arrival=r.arrival, ycsb=y,
        record_count=ds.n,
        recall_sample_every=r.recall_sample_every if searching and not warmup else 0,
        visibility_every=r.visibility_sample_every if searching and not warmup else 0,
        filter=flt.query if flt is not None else None,
        vector_name=vec,
        hybrid=({"fusion": hyb[1][0], "alpha": hyb[1][1], "candidates": spec.hybrid.candidates}
                if hyb is not None and spec.hybrid is not None else None),
        query_texts=hyb[0].query_texts if hyb is not None else None,
        payload_cases=tuple(filtered.cases(spec.filter.selectivities)) if spec.filter and spec.kind == "ycsb" else (),
    )
    results, cpu_s = pool.run(task)
    state.apply(results)
    return results, cpu_s


def _closed_loop_qps(rows: list[dict], ef) -> float:
    qps = [r["qps"] for r in rows if r["ef_search"] == ef and r["target_rate"] is None and r["status"] == "ok"
           and r["op"] in ("search", "total")]
    if not qps:
        raise _Stop(f"no closed-loop trial at ef_search={ef} succeeded, so there is no maximum to sweep from")
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


class _UpdateState:
    """Which records hold which held-out vector now: ground truth under writes follows it across phases."""

    def __init__(self) -> None:
        self.current: dict[int, int] = {}  # key -> held-out row, after every phase so far
        self.before: dict[int, int] = {}  # the same, before the last phase
        self.trial_log: list[tuple[int, int, int]] = []  # (ack ns, key, row) of the last phase's writes, in order

    def apply(self, results: list[WorkerResult]) -> None:
        new = sorted(u for r in results for u in r.updates)
        self.before = dict(self.current)
        self.trial_log = new
        for _, key, row in new:
            self.current[key] = row


def _provenance(req, spec, ds, options, cls, info: EngineInfo, built: BuiltIndex, load_s, build_s, started, run_id):
    return {
        "run_id": run_id, "workload": spec.name, "workload_kind": spec.kind, "backend": req.backend,
        "phase": "search" if spec.kind == "ann" else "ycsb", "k": spec.search.k,
        "concurrency": spec.run.concurrency, "target_rate": spec.run.target_rate,
        "arrival": spec.run.arrival if spec.run.target_rate else None,
        "load_s": load_s, "build_s": build_s,
        "index_requested": json.dumps(spec.index.model_dump()), "index_built": json.dumps(built.as_dict()),
        "index_substitutions": json.dumps(built.substitutions), "index_size_bytes": info.index_size_bytes,
        "quantization": spec.index.quantization,
        "rescore": spec.index.rescore if spec.index.quantization else None,
        "backend_client_version": info.client_version, "backend_server_version": info.server_version,
        "backend_options": json.dumps(public_options(options)),
        "capabilities": json.dumps(cls.capabilities.as_dict()),
        "dataset_name": ds.name, "dataset_hash": ds.content_hash, "dataset_n": ds.n,
        "dataset_queries": len(ds.queries), "dataset_dim": ds.dim, "dataset_metric": ds.metric,
        "seed": spec.dataset.seed, **env.provenance(), "started_utc": started, "command": redact_command(req.command),
    }


def _trial_rows(spec, ds, gt, ef, trial, results: list[WorkerResult], cpu_s, pool_kind, res_stats, state,
                base_row, href=None, flt=None) -> list[dict]:
    start = min(r.started_wall for r in results)
    end = max(r.ended_wall for r in results)
    duration = max(end - start, 1e-9)
    labels = sorted({lbl for r in results for lbl in (*r.hist, *r.failed)})
    scheduled = sum(r.scheduled for r in results)
    late = sum(r.late for r in results)
    lag = sum(r.generator_lag for r in results)
    out_of_range = sum(r.out_of_range for r in results)
    cpu_cores = (cpu_s / duration) if cpu_s is not None else None
    limited = None
    if pool_kind == "process":
        limited = any((r.cpu_s or 0) / duration >= CLIENT_LIMIT for r in results)
    recall = frecall = per_query = recall_dense = recall_bm25 = None
    if spec.kind == "ann" and href is not None:  # hybrid: agreement with the exact fused reference
        q = np.concatenate([r.search_queries for r in results])
        ids = np.concatenate([r.search_ids for r in results])
        if len(q):
            per_search = href.per_search(q, ids, spec.search.k)
            recall = float(per_search.mean())
            per_query = per_query_mean(q, per_search, len(href.fused)).tolist()
            recall_dense = recall_at_k(ids, href.dense_topk[q], spec.search.k)
            recall_bm25 = recall_at_k(ids, href.bm25_topk[q], spec.search.k)
    elif spec.kind == "ann":
        q = np.concatenate([r.search_queries for r in results])
        ids = np.concatenate([r.search_ids for r in results])
        if len(q):  # one pass over the hits: the trial's recall and each query's
            per_search = per_search_recall(ids, gt[q], spec.search.k)
            recall = float(per_search.mean())
            per_query = per_query_mean(q, per_search, len(gt)).tolist()
    elif spec.ycsb is not None and spec.ycsb.search_proportion > 0 and gt is not None:
        recall = recall_under_updates(results, state, ds, spec.search.k)
    if spec.kind == "ycsb" and flt is not None and spec.ycsb.filtered_search_proportion > 0:
        kp = filtered.key_payloads(ds.n, tuple(filtered.cases(spec.filter.selectivities)), spec.dataset.seed)
        frecall = recall_under_updates(results, state, ds, spec.search.k,
                                       allowed=lambda keys: kp.mask(flt.field, keys))
    vis = [v for r in results for v in r.visibility_us]
    vis_ok = [v for v in vis if v >= 0]
    common = {
        **base_row, "ef_search": ef, "trial": trial, "duration_s": duration,
        "achieved_rate": (scheduled / duration) if spec.run.target_rate else None,
        "late_share": (late / scheduled) if scheduled else None,
        "generator_lag_share": (lag / scheduled) if scheduled else None,
        "out_of_range": out_of_range, "client_cpu_cores": cpu_cores, "client_limited": limited,
        "server_rss_peak_bytes": res_stats.rss_peak_bytes, "server_rss_mean_bytes": res_stats.rss_mean_bytes,
        "server_cpu_mean_pct": res_stats.cpu_mean_pct,
        "visibility_p50_us": float(np.percentile(vis_ok, 50)) if vis_ok else None,
        "visibility_p99_us": float(np.percentile(vis_ok, 99)) if vis_ok else None,
        "visibility_missed": (len(vis) - len(vis_ok)) if vis else None,
        "error_samples": json.dumps([s for r in results for s in r.error_samples][:5]),
    }
    rows = []
    groups = [(lbl, [lbl]) for lbl in labels]
    if spec.kind == "ycsb":
        groups.append(("total", labels))
    for op, members in groups:
        ok = hdr.merge(r.hist.get(m) for r in results for m in members)
        fail = hdr.merge(r.failed.get(m) for r in results for m in members)
        svc = hdr.merge(r.service.get(m) for r in results for m in members)
        st = hdr.stats(ok)
        n_ok, n_fail = ok.get_total_count(), fail.get_total_count()
        total = n_ok + n_fail
        err_rate = n_fail / total if total else 0.0
        status, reason = "ok", None
        if err_rate > spec.run.error_threshold:
            status, reason = "failed", f"error rate {err_rate:.2%} is above run.error_threshold {spec.run.error_threshold:.2%}"
        elif scheduled and lag / scheduled > GENERATOR_LAG_LIMIT:
            status, reason = "invalid", (f"the load generator fell behind its schedule on {lag / scheduled:.1%} of sends "
                                         "(the client, not the engine); lower --target-rate or add client cores")
        svc_st = hdr.stats(svc)
        rows.append({
            **common, "op": op, "status": status, "status_reason": reason, "count": n_ok, "errors": n_fail,
            "error_rate": err_rate, "qps": n_ok / duration,
            "mean_us": st["mean_us"], "p50_us": st["p50_us"], "p90_us": st["p90_us"], "p99_us": st["p99_us"],
            "p999_us": st["p999_us"], "max_us": st["max_us"],
            "recall": frecall if op == "filtered-search" else recall if op in ("search", "total") else None,
            "recall_per_query": per_query if op in ("search", "total") else None,
            "recall_dense": recall_dense if op == "search" else None,
            "recall_bm25": recall_bm25 if op == "search" else None,
            "service_p50_us": svc_st["p50_us"], "service_p99_us": svc_st["p99_us"], "service_p999_us": svc_st["p999_us"],
            "hdr": hdr.encode(ok) if n_ok else None, "hdr_failed": hdr.encode(fail) if n_fail else None,
            "hdr_service": hdr.encode(svc) if svc.get_total_count() else None,
        })
    return rows


def print_summary(rows: list[dict], warnings: list[str], out: Callable[[Any], None] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="bench results (trimmed median of kept trials; spread in brackets)")
    for col in ("backend", "workload", "op", "ef", "QPS", "P50 us", "P99 us", "P99.9 us", "recall", "trials"):
        t.add_column(col, justify="right" if col not in ("backend", "workload", "op") else "left")

    def f(v, spec=",.0f"):
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)

    for r in rows:
        qps = f"{f(r['qps'])} [{f(r['qps_lo'])}-{f(r['qps_hi'])}]" if r.get("qps") is not None else "-"
        ef = f(r.get("ef_search"), "d") + (f" @{r['selectivity'] * 100:.3g}%" if r.get("selectivity") is not None else "")
        ef += f" {r['vector_name']}" if r.get("vector_name") else ""
        if r.get("fusion") is not None:
            ef += f" {r['fusion']}" + (f" a={r['alpha']:g}" if r.get("alpha") is not None else "")
        t.add_row(r["backend"], r["workload"], r["op"], ef, qps, f(r.get("p50_us")),
                  f(r.get("p99_us")), f(r.get("p999_us")), f(r.get("recall"), ".4f"),
                  f"{r['n_kept']}/{r['n_ok']}/{r['n_trials']}")
    console = Console(file=sys.stdout, width=160)
    console.print(t)
    subs = sorted({s for r in rows for s in json.loads(r.get("index_substitutions") or "[]")})
    for s in subs:
        console.print(f"[yellow]built other than asked:[/yellow] {s}")
    for w in sorted(set(warnings) - {w for w in warnings if any(s in w for s in subs)}):
        console.print(f"[yellow]warning:[/yellow] {w}")
