"""One run's context: what every orchestrator (`bench run`, `bench fault`, a suite cell) shares.

    with RunContext.open(req) as ctx:   # spec, scenarios' checks, dataset, dimension check, references,
        ...                             # run.json, create, load, wait until indexed, provenance
        ctx.add_rows(rows)              # trials.parquet + summary.parquet rewritten atomically
    outcome = ctx.outcome()             # run.json final status, collection dropped, work folder removed

Leaving the block ends the run with an honest status: `complete`, `partial` (it ran to its end but a trial
failed), `stopped` (a `Stop` raised inside), `failed`
(a worker failed, or anything else went wrong; the exception propagates unless it was a `WorkerFailed`) or
`interrupted` (Ctrl-C, SIGTERM or SIGHUP: what finished is written, then the interrupt propagates). Each run
owns a collection name unique to it, and drops only what it created.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench import datasets, guard
from bench.backends import registry
from bench.backends.base import Backend, BuiltIndex, CollectionSpec, EngineInfo
from bench.errors import Terminated, UserError, raise_terminated
from bench.load.pool import PhaseStalled, WorkerFailed
from bench.reporter import Reporter
from bench.results import env, space
from bench.results.aggregate import summarize
from bench.results.schema import summary_schema, table, trials_schema
from bench.results.writer import make_run_dir, new_run_id, write_json, write_parquet
from bench.scenarios import Prep, RunFlags, Variant
from bench.scenarios.plan import Plan
from bench.spec import WorkloadSpec, load_backend_options
from bench.workload_file import load_workload

RATE_SWEEP = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.2)  # --rate-sweep: fractions of the closed-loop QPS offered


class Stop(Exception):
    """Ends a run early on purpose (status `stopped`), e.g. run.on_trial_failure = "stop"."""


@contextlib.contextmanager
def deferred_signals() -> Iterator[list[int]]:
    """Within the block, SIGINT, SIGTERM and SIGHUP are noted (in the list it gives) instead of raised, so the end
    of a run (its last writes, dropping its collection, removing its work folder) cannot be cut in half."""
    got: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield got
        return
    old = {s: signal.signal(s, lambda signum, frame: got.append(signum))
           for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield got
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise `Terminated` in the main thread (as SIGINT raises
    KeyboardInterrupt), so a killed run writes what finished and cleans up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    old = {s: signal.signal(s, raise_terminated) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def index_line(built: BuiltIndex, n: int, load_s: float, build_s: float) -> str:
    """One line about the index as built: "index: hnsw M=16 efc=100, 10,000 vectors loaded in 0.4 s, built in
    5.9 s more (load recipe in run.json)"."""
    p = built.params
    parts = [built.kind]
    for name, label in (("m", "M"), ("ef_construction", "efc"), ("nlist", "nlist"), ("quantization", "quant")):
        if p.get(name) is not None:
            parts.append(f"{label}={p[name]}")
    recipe = "; load recipe in run.json" if p.get("load_recipe") else ""
    other = " (built other than asked: see the warning)" if built.substitutions else ""
    return (f"index: {' '.join(parts)}{other}, {n:,} vectors loaded in {load_s:.1f} s, built in {build_s:.1f} s "
            f"more{recipe}")


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
    verbose: bool = False  # every detail (each busy trial, the index's every parameter) instead of summary lines
    command: str = ""
    suite_run_id: str | None = None  # a suite writes several (backend, workload) cells into one run id
    suite_prefix: str | None = None  # the cell's file prefix in the suite's folder (default `<backend>.<name>.`)
    live: Any = None  # e.g. bench.live.LiveExporter: `trial_done(rows)` is called after every trial
    rate_sweep: bool = False  # after the closed-loop trials, offer 10%..120% of their QPS open loop
    row_extra: dict[str, Any] = field(default_factory=dict)  # key columns every row carries (an A/B arm, a role)
    concurrency_levels: list[int] | None = None  # a sweep: every configuration at each level, in one run
    cluster: str | None = None  # workers as Ray actors on this cluster (`ray://HOST:PORT`, `HOST:PORT`, `auto`)
    workers_per_node: int | None = None  # with `cluster`: concurrency = this x the cluster's nodes

    def all_overrides(self) -> list[str]:
        out = list(self.overrides)
        for key, value in (("trials", self.trials), ("concurrency", self.concurrency),
                           ("target_rate", self.target_rate)):
            if value is not None:
                out.append(f"run.{key}={value}")
        return out

    def flags(self) -> dict[str, str]:
        """The workload keys the command-line flags set, each with the flag as given (an error names it)."""
        given = {"trials": self.trials, "concurrency": self.concurrency, "target_rate": self.target_rate}
        return {f"run.{k}": f"--{k.replace('_', '-')} {v:g}" if isinstance(v, float) else f"--{k.replace('_', '-')} {v}"
                for k, v in given.items() if v is not None}


@dataclass
class RunOutcome:
    run_id: str
    run_dir: Path
    trial_rows: list[dict]
    summary_rows: list[dict]
    built: BuiltIndex | None
    warnings: list[str]
    status: str


@dataclass
class Checked:
    """A request validated before anything is written."""

    spec: WorkloadSpec
    cls: type[Backend]
    options: Any
    plan: Plan
    warnings: list[str]


def check(req: RunRequest, extra: Callable[[Checked], None] | None = None) -> Checked:
    """Spec, backend name, options, availability, and every scenario's check against this engine."""
    if req.cluster:
        _check_cluster(req)
    spec = load_workload(req.workload, req.all_overrides(), req.flags())
    cls = registry.get(req.backend)
    options, _ = load_backend_options(cls.Options, req.backend, req.config, req.overrides)
    reason = cls.check_available(options)
    if reason:
        raise UserError(f"Backend '{req.backend}' is not usable here: {reason.rstrip('.')}")
    reason = cls.supports("remote_workers", options) if req.cluster else None
    if reason:
        raise UserError(f"Backend '{req.backend}' cannot be driven from a Ray cluster: {reason.rstrip('.')}",
                        "use a server backend (pgvector, milvus, qdrant, weaviate, chroma-server) or drop --cluster")
    quant = spec.index.quantization
    reason = cls.supports("quantization", options, kind=quant) if quant else None
    if reason:
        raise UserError(f"Backend '{req.backend}' cannot build quantization '{quant}' ({reason.rstrip('.')}), which "
                        f"workload '{spec.name}' asks for, so it is skipped rather than built unquantized",
                        "choose another index.quantization or backend (`bench backends` lists them)")
    plan = Plan.of(spec)
    checked = Checked(spec, cls, options, plan, plan.check(cls, options, RunFlags(rate_sweep=req.rate_sweep)))
    if extra is not None:
        extra(checked)
    return checked


def _check_cluster(req: RunRequest) -> None:
    """Join the Ray cluster before anything is written; `--workers-per-node` becomes a total concurrency."""
    from bench.load import ray_pool

    ray = ray_pool.connect(req.cluster or "auto")
    if req.workers_per_node is not None:
        if req.concurrency is not None or req.concurrency_levels:
            raise UserError("--workers-per-node and --concurrency both say how many workers to start",
                            "give one of them")
        nodes = ray_pool.cpu_nodes(ray)
        req.concurrency = req.workers_per_node * len(nodes)


def collection_name(workload: str, run_key: str) -> str:
    """A collection name unique to the run, valid on every engine (letters, digits, underscores; <= 63)."""
    safe = re.sub(r"[^a-z0-9_]", "_", workload.lower())[:40]
    return f"bench_{safe}_{hashlib.sha1(run_key.encode()).hexdigest()[:10]}"


class RunContext:
    """See the module docstring. Build with `RunContext.open(req)`."""

    def __init__(self, req: RunRequest, checked: Checked):
        self.req, self.spec, self.cls, self.options = req, checked.spec, checked.cls, checked.options
        self.plan, self.warnings = checked.plan, list(checked.warnings)
        self.rep = Reporter(req.quiet, req.verbose)
        self.cache_dir = req.cache_dir or datasets.default_cache_dir()
        self.trial_rows: list[dict] = []
        self.summary_rows: list[dict] = []
        self.extra_json: dict[str, Any] = {}
        self.status = "running"
        self.built: BuiltIndex | None = None
        self.info: EngineInfo | None = None
        self.backend: Backend | None = None
        self.collection: CollectionSpec | None = None
        self.stalled = False  # a phase stalled: the engine stopped answering, so cleanup is given a time limit
        self.left_behind: str | None = None  # what the run created on a server and could not drop
        self.log: guard.RunLog | None = None
        self._closers: list[Callable[[], None]] = []
        self._signals = signals_as_interrupts()

    @classmethod
    def open(cls, req: RunRequest, extra_check: Callable[[Checked], None] | None = None) -> RunContext:
        return cls(req, check(req, extra_check))

    # -- set-up ---------------------------------------------------------------------------------------------
    def __enter__(self) -> RunContext:
        self._signals.__enter__()
        try:
            self._data()
            self._start_files()
            self._engine()
        except BaseException as e:
            self.__exit__(type(e), e, e.__traceback__)
            raise
        return self

    def _data(self) -> None:
        spec, req = self.spec, self.req
        self.ds = ds = datasets.load(spec.dataset, self.cache_dir, progress=not req.quiet)
        if ds.dim != spec.dataset.dim:
            raise UserError(f"Dataset '{ds.name}' has dimension {ds.dim} but the workload says dataset.dim = "
                            f"{spec.dataset.dim}", "fix dataset.dim or choose another dataset")
        if self.plan.kind.needs_reference():
            ds.ground_truth(spec.search.k, progress=not req.quiet)  # the common reference, with its progress bar
        self.plan.prepare(Prep(spec, ds, self.cache_dir, not req.quiet, self.rep.say, self.cls))
        self.variants: list[Variant] = self.plan.variants(ds)
        for v in self.variants:
            self.plan.reference(v, spec.search.k, self.cache_dir)
        for w in self.warnings:
            self.rep.warn(w)

    def _start_files(self) -> None:
        req, spec = self.req, self.spec
        self.run_id = req.suite_run_id or req.run_id or new_run_id(f"{req.backend}-{spec.name}")
        if req.suite_run_id:
            self.run_dir = req.results_dir / self.run_id
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.prefix = req.suite_prefix or f"{req.backend}.{spec.name}."
        else:
            self._check_space(req.results_dir)
            self.run_dir = make_run_dir(req.results_dir, self.run_id)
            self.prefix = ""
        self.started = datetime.now(UTC)
        self.log = guard.RunLog(self.path("run.log")).start()  # engine clients' messages go here, not the terminal
        self.write_run_json()
        try:
            self.reserve = space.Reserve(self.path(".reserve"))
        except OSError as e:
            raise UserError(f"Cannot write {self.path('.reserve')} ({e.strerror or e})",
                            "free some space or choose another --results-dir") from None
        # named and its removal registered before it exists: an interrupt at any point leaves no work folder
        self.workdir = str(Path(tempfile.gettempdir()) / f"bench-{req.backend}-{secrets.token_hex(5)}")
        self._closers.append(lambda: shutil.rmtree(self.workdir, ignore_errors=True))
        os.mkdir(self.workdir, 0o700)
        if self.cls.capabilities.in_process:
            space.check_free(Path(self.workdir), space.engine_bytes(self.ds.n, self.ds.dim), "the engine's data",
                             "free some space in the temporary folder or point TMPDIR at a larger disk")

    def engine_call(self, fn: Callable[[], Any], phase: str, limit_s: float | None = None) -> Any:
        """One engine call outside the timed phases, guarded (bench.guard): an engine error or a server that
        does not answer within the limit (default op_timeout_s + phase_margin_s; none for an in-process engine)
        ends the run with one sentence naming the phase."""
        r = self.spec.run
        if self.cls.capabilities.in_process:
            limit_s = None
        elif limit_s is None:
            limit_s = r.op_timeout_s + r.phase_margin_s
        try:
            return guard.call(fn, phase=phase, engine=self.req.backend, limit_s=limit_s)
        except guard.EngineFault as e:
            self.stalled = self.stalled or "no answer" in e.message
            raise
        finally:
            if self.log is not None and phase in ("connecting", "creating the collection"):
                self.log.capture()  # a client imported by this call may have installed its own console handler

    def _engine(self) -> None:
        spec, ds = self.spec, self.ds
        self.backend = backend = self.cls(self.options, self.workdir)
        self.engine_call(backend.connect, "connecting")
        self._closers.insert(0, backend.close)
        self.collection = self.plan.collection(CollectionSpec(
            name=collection_name(spec.name, f"{self.run_id}/{self.prefix}"), dim=ds.dim, metric=ds.metric,
            index=spec.index.to_spec(), ef_search=self.plan.kind.ef_values()[0]))
        rss0 = psutil.Process().memory_info().rss if self.cls.capabilities.in_process else None
        self.write_run_json()  # names the collection before it exists: a killed run's leftover can be found
        self._closers.insert(0, self._drop)  # registered first: a create that failed half-way is dropped too
        self.engine_call(lambda: backend.create(self.collection), "creating the collection")
        self.load_s = self._load()
        t0 = time.perf_counter()
        with self.rep.spinner(f"waiting until {self.req.backend} has indexed {ds.n:,} vectors"):
            self.built = self.engine_call(lambda: backend.wait_indexed(spec.run.index_timeout_s),
                                          "waiting until the index is built",
                                          spec.run.index_timeout_s + spec.run.phase_margin_s)
        self.build_s = time.perf_counter() - t0
        rss_growth = (psutil.Process().memory_info().rss - rss0) if rss0 is not None else None
        self.warnings.extend(f"{self.req.backend}: {s}" for s in [*self.built.substitutions, *self.built.warnings])
        self.info = self.engine_call(backend.info, "reading back what was built")
        self.rep.say(index_line(self.built, ds.n, self.load_s, self.build_s))
        self.rep.detail("index as built: " + ", ".join(f"{k}={v}" for k, v in self.built.params.items()
                                                      if k != "load_recipe"))
        self.base_row = {**self._provenance(), **self.plan.run_row(), "client_rss_growth_bytes": rss_growth,
                         **self.req.row_extra}

    def _load(self) -> float:
        """Insert every record in batches (the dataset, or what a scenario loads instead), with its payloads."""
        source = self.plan.source(self.ds)
        total = 0.0
        with self.rep.progress() as prog:
            bar = prog.add_task(f"loading {source.name}", total=source.n)
            for ids, vecs in source.batches(self.backend.load_batch_size(self.spec.run.batch_size)):
                payloads = self.plan.payloads(ids)
                t0 = time.perf_counter()
                self.engine_call(lambda: self.backend.insert(ids, vecs, payloads), "loading the data")  # noqa: B023
                total += time.perf_counter() - t0
                prog.advance(bar, len(ids))
        return total

    def _provenance(self) -> dict[str, Any]:
        from bench.backends.secrets import public_options

        req, spec, ds, built, info = self.req, self.spec, self.ds, self.built, self.info
        assert built is not None and info is not None
        import json

        return {
            "run_id": self.run_id, "workload": spec.name, "workload_kind": spec.kind, "backend": req.backend,
            "phase": self.plan.kind.mode, "k": spec.search.k, "concurrency": spec.run.concurrency,
            **_index_keys(spec, built), "load_s": self.load_s, "build_s": self.build_s,
            "searchable_s": self.load_s + self.build_s,
            "index_requested": json.dumps(spec.index.model_dump()), "index_built": json.dumps(built.as_dict()),
            "index_substitutions": json.dumps(built.substitutions), "index_size_bytes": info.index_size_bytes,
            "quantization": spec.index.quantization,
            "rescore": spec.index.rescore if spec.index.quantization else None,
            "backend_client_version": info.client_version, "backend_server_version": info.server_version,
            "read_nodes": "+".join(info.read_nodes) if info.read_nodes else None,
            "backend_options": json.dumps(public_options(self.options)),
            "price_per_hour": self.options.price_per_hour,
            "currency": self.options.currency if self.options.price_per_hour else None,
            "capabilities": json.dumps(self.cls.capabilities.as_dict()),
            "dataset_name": ds.name, "dataset_hash": ds.content_hash, "dataset_n": ds.n,
            "dataset_queries": len(ds.queries), "dataset_dim": ds.dim, "dataset_metric": ds.metric,
            "seed": spec.dataset.seed, **env.provenance(), "started_utc": self.started, "command": _command(req),
        }

    # -- during the run -------------------------------------------------------------------------------------
    def on_close(self, fn: Callable[[], None]) -> None:
        """Call `fn` when the run ends (before the collection is dropped), e.g. to stop a worker pool."""
        self._closers.insert(0, fn)

    def add_rows(self, rows: list[dict]) -> None:
        """Keep a trial's rows and rewrite both parquet files atomically (an interrupted run keeps them)."""
        self.trial_rows.extend(rows)
        self._write_results("running")
        if self.req.live is not None:
            self.req.live.trial_done(rows)

    def path(self, name: str) -> Path:
        """A file of this run (a suite cell's files carry its prefix)."""
        return self.run_dir / f"{self.prefix}{name}"

    def _write_results(self, status: str) -> None:
        for r in self.trial_rows:
            r["run_status"] = status
        self.summary_rows = summarize(self.trial_rows)
        for r in self.summary_rows:
            r["run_status"] = status
        write_parquet(table(self.trial_rows, trials_schema()), self.path("trials.parquet"), checked=True)
        write_parquet(table(self.summary_rows, summary_schema()), self.path("summary.parquet"), checked=True)

    def write_run_json(self, **final: Any) -> None:
        from bench.backends.secrets import public_options

        req, spec = self.req, self.spec
        write_json(self.path("run.json"), {
            "run_id": self.run_id, "backend": req.backend, "workload": spec.dump(),
            "backend_options": public_options(self.options), "command": _command(req),
            "started_utc": self.started.isoformat(), "dataset": self.ds.describe(),
            "scenarios": self.plan.describe(), "collection": self.collection.name if self.collection else None,
            "status": self.status, **final}, checked=True)

    # -- the end --------------------------------------------------------------------------------------------
    def __exit__(self, et: Any, e: BaseException | None, tb: Any) -> bool:
        handled = False
        if e is None:
            self.status = outcome_status(self.trial_rows) if self.status == "running" else self.status
        elif isinstance(e, KeyboardInterrupt):
            self.status = "interrupted"
            self.rep.warn(f"interrupted ({e or 'Ctrl-C'}): writing the trials that finished")
        elif isinstance(e, Stop | WorkerFailed):
            self.stalled = isinstance(e, PhaseStalled)
            self.status = "stopped" if isinstance(e, Stop) else "failed"
            msg = str(e) if isinstance(e, Stop) else f"a worker failed: {e}"
            self.warnings.append(msg)
            self.rep.warn(msg)
            handled = True
        else:
            self.status = "failed"
        try:
            with deferred_signals() as late:  # the end (results, run.json, cleanup) runs whole, whatever comes
                self._finish()
            if self.left_behind is not None and isinstance(e, UserError):
                e.hint = f"{e.hint.rstrip('.')}; {self.left_behind}" if e.hint else self.left_behind
                e.args = (e.sentence(),)
            if late:
                self.rep.warn(f"{signal.Signals(late[0]).name} came while the run was ending; its files and the "
                              f"cleanup were finished first (status {self.status})")
                if e is None:  # then it ends the command as it would have (a suite stops before its next cell)
                    raise Terminated(late[0]) if late[0] != signal.SIGINT else KeyboardInterrupt()
        finally:
            if self.log is not None:
                self.log.stop()
            self._signals.__exit__(None, None, None)
        return handled

    def _check_space(self, results_dir: Path) -> None:
        spec, kind = self.spec, self.plan.kind
        configs = len(kind.ef_values()) * len(self.variants) * (1 + (len(RATE_SWEEP) if self.req.rate_sweep else 0))
        kept = max(len(self.ds.queries), spec.run.min_operations)
        space.check_free(results_dir, space.results_bytes(spec.run.trials, configs, kept, spec.search.k),
                         "its results", "free some space or choose another --results-dir")

    def _finish(self) -> None:
        if getattr(self, "reserve", None) is not None:
            self.reserve.release()  # the room it held is for the writes below, on a disk that may be full
        if self.trial_rows:
            self._write_results(self.status)
        if hasattr(self, "run_dir"):
            self.write_run_json(ended_utc=datetime.now(UTC).isoformat(), warnings=self.warnings,
                                rows={"trials": len(self.trial_rows), "summary": len(self.summary_rows)},
                                index_built=self.built.as_dict() if self.built else None, **self.extra_json)
        r = self.spec.run
        bound = self.stalled or not self.cls.capabilities.in_process  # a server may not answer: never wait forever
        limit = (r.op_timeout_s + r.phase_margin_s) if bound else None
        for close in self._closers:
            ok, err = _bounded(close, limit)
            if close == self._drop and (not ok or err is not None):
                why = f"did not answer within {limit:g} s" if not ok else f"{type(err).__name__}: {err}"
                self._left(" ".join(why.split())[:200])
            if not ok:
                break
        if self.left_behind is not None and hasattr(self, "run_dir"):
            self.write_run_json(ended_utc=datetime.now(UTC).isoformat(), warnings=self.warnings,
                                rows={"trials": len(self.trial_rows), "summary": len(self.summary_rows)},
                                index_built=self.built.as_dict() if self.built else None,
                                left_on_server={"collection": self.collection.name if self.collection else None,
                                                "server": self.server_text()}, **self.extra_json)

    def _drop(self) -> None:
        """Drop the run's collection (a closer; the engine answers or the limit in `_finish` ends the wait)."""
        assert self.backend is not None
        self.backend.drop()

    def server_text(self) -> str:
        """Where the engine's server is, as far as bench can tell without secrets (`127.0.0.1:5432`)."""
        addr = self.info.server_address if self.info is not None else None
        if addr:
            return f"{addr[0]}:{addr[1]}"
        from urllib.parse import urlsplit

        from bench.backends.secrets import public_options

        opts = public_options(self.options)
        for key in ("uri", "url", "dsn", "host"):
            v = opts.get(key)
            if isinstance(v, str) and v:
                try:
                    u = urlsplit(v)
                    return f"{u.hostname}:{u.port}" if u.hostname and u.port else v
                except ValueError:
                    return v
        return "its server"

    def _left(self, why: str) -> None:
        """The run's collection could not be dropped: say what is left where, and the command that drops it."""
        name = self.collection.name if self.collection else "?"
        self.left_behind = (f"the {self.req.backend} collection '{name}' is left on {self.server_text()} (dropping "
                            f"it failed: {why}); drop it with `bench cleanup {self.run_dir}` once the server answers")
        self.warnings.append(self.left_behind)
        self.rep.warn(self.left_behind)

    def outcome(self) -> RunOutcome:
        return RunOutcome(self.run_id, self.run_dir, self.trial_rows, self.summary_rows, self.built, self.warnings,
                          self.status)


def outcome_status(trial_rows: list[dict]) -> str:
    """The status of a run that ran to its end: `complete` when every trial is ok, `partial` when some trial
    failed (its figures rest on the others), `failed` when no trial was ok."""
    failed = [r for r in trial_rows if r.get("status") == "failed"]
    if not failed:
        return "complete"
    return "partial" if any(r.get("status") == "ok" for r in trial_rows) else "failed"


def _bounded(fn: Callable[[], None], limit_s: float | None) -> tuple[bool, Exception | None]:
    """Call `fn`, keeping its error rather than raising it (cleanup must not hide the result); with a limit, in a
    daemon thread given that long (an engine that stopped answering must not hang the end of the run). Gives
    (False, None) when it overran, else (True, its error or None)."""
    got: list[Exception] = []

    def call() -> None:
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            guard.log.warning("cleanup %s failed", getattr(fn, "__qualname__", fn), exc_info=e)
            got.append(e)

    if limit_s is None:
        call()
        return True, (got[0] if got else None)
    t = threading.Thread(target=call, name="bench-cleanup", daemon=True)
    t.start()
    t.join(limit_s)
    return (not t.is_alive()), (got[0] if got else None)


def _index_keys(spec: WorkloadSpec, built: BuiltIndex) -> dict[str, Any]:
    """The index axes of every row: as the engine reports it built, else as asked."""
    def param(name: str, asked: int) -> int | None:
        v = built.params.get(name)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        return asked if spec.index.kind == "hnsw" else None

    return {"index_kind": built.kind, "index_m": param("m", spec.index.m),
            "index_ef_construction": param("ef_construction", spec.index.ef_construction)}


def _command(req: RunRequest) -> str:
    from bench.backends.secrets import redact_command

    return redact_command(req.command)


