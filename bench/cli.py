"""The `bench` command line. Thin: parse, call, print. A UserError becomes one sentence on stderr and exit 2."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
import typer.core

from bench.cli_help import HELP, HelpGroup
from bench.errors import UserError

# Exit codes, the same for every command (docs/cli.md, "Exit codes"): a crash must never look like a verdict.
EXIT_OK, EXIT_FAILED, EXIT_USER, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

app = typer.Typer(cls=HelpGroup, help="bench: a benchmark harness for vector databases.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False, rich_markup_mode=None, context_settings=HELP)


def _version(value: bool) -> None:
    if value:
        from bench import __version__
        from bench.results.env import git_commit

        commit = git_commit()
        print(f"bench {__version__}" + (f" (git {commit[:12]})" if commit else ""))
        raise typer.Exit(EXIT_OK)


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_version,
                                                help="print the version and git commit, then exit")] = False) -> None:
    """bench: a benchmark harness for vector databases."""


def _mount_subapps() -> None:
    """Mount `bench datasets` and `bench workloads` once (main() may be called more than once in one process, as tests do)."""
    if any(g.name == "datasets" for g in app.registered_groups):
        return
    from bench.datasets.cli import app as datasets_app
    from bench.workload_guide import app as workloads_app

    app.add_typer(datasets_app, name="datasets", help="Generate, fetch, list and describe datasets.")
    app.add_typer(workloads_app, name="workloads", help="List the workloads that ship, or show one with each key "
                  "explained.")


@app.command()
def run(
    backend: Annotated[str, typer.Option("--backend", "-b", help="backend name (`bench backends` lists them)")],
    workload: Annotated[str, typer.Option("--workload", "-w", help="workload file or name in workloads/")] = "ann-smoke",
    set_: Annotated[list[str], typer.Option("--set", help="override a value: section.key=value (dataset., index., "
                                            "search., ycsb., run., backend.)")] = [],  # noqa: B006
    config: Annotated[str | None, typer.Option(help="backend config file (default configs/<backend>.toml)")] = None,
    trials: Annotated[int | None, typer.Option(help="timed trials per configuration (default 5)")] = None,
    concurrency: Annotated[str | None, typer.Option(help="workers: threads (in-process), processes, or Ray actors "
                                                    "(--cluster); a list (1,2,4,8) sweeps the levels in one run")] = None,
    target_rate: Annotated[float | None, typer.Option(help="open loop: operations per second offered")] = None,
    cluster: Annotated[str | None, typer.Option(help="run the workers as Ray actors on this cluster: ray://HOST:PORT, "
                                                "HOST:PORT, or auto (a cluster this machine is part of)")] = None,
    workers_per_node: Annotated[int | None, typer.Option(help="with --cluster: workers on each node (instead of "
                                                         "--concurrency)", min=1)] = None,
    rate_sweep: Annotated[bool, typer.Option(help="then offer 10%..120% of the closed-loop QPS, open loop, and "
                                             "find the latency-throughput knee")] = False,
    results_dir: Annotated[Path, typer.Option(help="where results/<run-id>/ goes")] = Path("results"),
    run_id: Annotated[str | None, typer.Option(help="run id (default: time, backend, workload, random)")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="dataset cache (default $BENCH_CACHE_DIR or ~/.cache/bench)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary rows as JSON")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="every detail: each busy or flagged trial, every "
                                          "parameter of the index as built")] = False,
    wide: Annotated[bool, typer.Option("--wide", help="keep every column of the table, whatever the terminal's "
                                       "width")] = False,
    prometheus_port: Annotated[int | None, typer.Option(help="serve live QPS and latency histograms for "
                                                        "Prometheus on 127.0.0.1:PORT/metrics during the run")] = None,
    price_per_hour: Annotated[float | None, typer.Option(help="what an hour of the engine's machine costs: compare "
                                                         "and report show queries per unit and per million")] = None,
    currency: Annotated[str | None, typer.Option(help="ISO 4217 code of --price-per-hour (default USD)")] = None,
) -> None:
    """Measure one backend on one workload: load, index, warm up, then timed trials; write parquet results."""
    from bench.runner import RunRequest
    from bench.runner import run as do_run

    _check_price(price_per_hour, currency)
    set_ = [*set_, *([f"backend.price_per_hour={price_per_hour!r}"] if price_per_hour is not None else []),
            *([f"backend.currency={json.dumps(currency)}"] if currency is not None else [])]  # as backend.X
    levels = _levels(concurrency)
    if workers_per_node is not None and not cluster:
        raise UserError("--workers-per-node needs --cluster", "give --cluster ray://HOST:PORT, or use --concurrency")
    req = RunRequest(backend=backend, workload=workload, overrides=list(set_), config=config, results_dir=results_dir,
                     cache_dir=cache_dir, run_id=run_id, trials=trials, concurrency=levels[0] if levels else None,
                     concurrency_levels=levels if levels and len(levels) > 1 else None, cluster=cluster,
                     workers_per_node=workers_per_node,
                     target_rate=target_rate, rate_sweep=rate_sweep, quiet=quiet or as_json, verbose=verbose,
                     command=shlex.join(["bench", *sys.argv[1:]]))
    if prometheus_port is not None:
        from bench.live import LiveExporter

        req.live = LiveExporter(prometheus_port).start()
    try:
        out = do_run(req)
    finally:
        if req.live is not None:
            req.live.close()
    _finish_run(out, as_json, wide, verbose)


def _finish_run(out, as_json: bool, wide: bool, verbose: bool) -> None:
    """Print the run's table (or JSON) and exit 1 when a trial failed or the run did not complete."""
    with _reader_may_leave():
        _print_run(out, as_json, wide, verbose)
    bad = [r for r in out.trial_rows if r["status"] != "ok"]
    if out.status != "complete" or bad:
        if bad and not as_json:
            print(f"{len(bad)} trial rows failed (see status_reason in trials.parquet)", file=sys.stderr)
        raise typer.Exit(EXIT_FAILED)


def _check_price(price_per_hour: float | None, currency: str | None) -> None:
    """--price-per-hour and --currency become backend.* values; a bad one is named by its flag, not as a --set."""
    if price_per_hour is not None and not 0 < price_per_hour < float("inf"):
        raise UserError(f"--price-per-hour {price_per_hour:g} must be a price above 0",
                        "give what an hour of the engine's machine costs, e.g. --price-per-hour 2.4")
    if currency is not None and not (len(currency) == 3 and currency.isascii() and currency.isupper()):
        raise UserError(f"--currency {currency!r} is not an ISO 4217 code", "give three capital letters, e.g. --currency EUR")


def _levels(text: str | None) -> list[int] | None:
    """--concurrency: one level (4) or a sweep (1,2,4,8), each 1 to 1024, none twice."""
    if text is None:
        return None
    try:
        levels = [int(x) for x in text.split(",")]
    except ValueError:
        raise UserError(f"--concurrency {text!r} is not a whole number or a comma-separated list of them",
                        "give e.g. --concurrency 4 or --concurrency 1,2,4,8") from None
    if any(not 1 <= n <= 1024 for n in levels) or len(set(levels)) != len(levels):
        raise UserError(f"--concurrency {text!r} must list different levels, each from 1 to 1024",
                        "give e.g. --concurrency 1,2,4,8")
    return levels


def _print_run(out, as_json: bool, wide: bool = False, verbose: bool = False) -> None:
    from bench.runner import print_summary

    if as_json:
        from bench.results import keys

        keep = (*keys.names(), "n_trials", "n_ok", "n_kept",
                "qps", "qps_lo", "qps_hi", "mean_us", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "recall",
                "recall_lo", "recall_hi", "load_s", "build_s", "searchable_s", "index_built", "index_substitutions",
                "percentiles_withheld", "outliers", "busy_trials", "suspect_trials", "client_cpu_cores", "client_limited",
                "run_status")
        print(json.dumps({"run_id": out.run_id, "results": str(out.run_dir), "status": out.status,
                          "warnings": out.warnings, "summary": [{k: _json_value(k, r.get(k)) for k in keep}
                                                                for r in out.summary_rows]},
                         indent=2, default=str))
    else:
        print_summary(out.summary_rows, out.warnings, wide=wide, verbose=verbose)
        print(f"results: {out.run_dir}/ (summary.parquet, trials.parquet, run.json); `bench compare {out.run_dir}` "
              "weighs them against other runs")


def _json_value(key: str, value: object) -> object:
    """A summary value for --json: the JSON-text columns as objects, not strings inside JSON."""
    if key in ("index_built", "index_substitutions") and isinstance(value, str):
        return json.loads(value)
    return value


@app.command()
def backends(as_json: Annotated[bool, typer.Option("--json")] = False,
             wide: Annotated[bool, typer.Option("--wide", help="keep every column of the table, whatever the "
                                                "terminal's width")] = False) -> None:
    """List the backend adapters and whether each is usable on this machine."""
    from bench.backends import registry
    from bench.spec import load_backend_options

    rows = []
    for name in registry.names():
        try:
            cls = registry.get(name)
            options, path = load_backend_options(cls.Options, name, None)
            reason = cls.check_available(options)
            caps = cls.capabilities
            kind = "in-process" if caps.in_process else ("server" if caps.server else "client")
        except UserError as e:
            reason, kind, caps = e.sentence(), "?", None
        rows.append({"backend": name, "kind": kind, "usable": reason is None, "reason": reason,
                     "capabilities": caps.as_dict() if caps else None})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from bench.terminal import Column, print_table

    table_rows = []
    for r in rows:
        caps = r["capabilities"] or {}
        flags = ", ".join(k for k, v in caps.items() if v is True and k not in ("in_process", "server"))
        quant = ", ".join(caps.get("quantization") or []) or "-"
        table_rows.append([r["backend"], r["kind"], "yes" if r["usable"] else "no", quant, r["reason"] or flags])
    print_table("backends", [Column("backend"), Column("kind"), Column("usable"), Column("quantization", drop=1),
                             Column("why not / capabilities", wrap=True)], table_rows, wide=wide)


@app.command()
def calibrate(
    operations: Annotated[int | None, typer.Option(
        help="operations per measurement (default: 200,000 for the null backend, 2 s of fake-slow operations)",
        min=1)] = None,
    slow_latency_us: Annotated[float, typer.Option(help="service time of the fake-slow backend")] = 1000.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Measure the harness' own ceiling (null backend) and its accuracy (fake-slow backend of known latency)."""
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    from bench.load.calibrate import calibrate as do_calibrate
    from bench.load.calibrate import verdict

    rows = do_calibrate(operations or 200_000, slow_latency_us, operations)  # given, fake-slow runs as many too
    v = verdict(rows[-1], slow_latency_us)
    if as_json:
        print(json.dumps({"measurements": [asdict(r) for r in rows], "verdict": {**asdict(v), "text": v.sentence()}},
                         indent=2))
        return
    t = Table(title="harness self-check (one worker thread)")
    for c in ("backend", "mode", "ops/s", "loop cost per op (us)", "recorded P50 (us)", "recorded P99 (us)"):
        t.add_column(c)
    for r in rows:
        t.add_row(r.backend, r.mode, f"{r.ops_per_s:,.0f}", f"{r.per_op_us:.2f}", f"{r.p50_us}", f"{r.p99_us}")
    Console().print(t)
    print(f"verdict: {v.sentence()}")


# -- analysis: compare, report, regress, baseline, suite (bench/analysis/*, bench/suite.py) -------------------

@app.command()
def compare(
    results: Annotated[list[str] | None, typer.Argument(help="run folders or parquet files (default: results/)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | markdown | csv | html | json | parquet (parquet "
                                     "needs --out)")] = "table",
    out: Annotated[Path | None, typer.Option("--out", help="write to this file instead of printing")] = None,
    wide: Annotated[bool, typer.Option("--wide", help="table: keep every column, whatever the terminal's "
                                       "width")] = False,
    at_recall: Annotated[str | None, typer.Option("--at-recall", help="recall levels of the verdict, e.g. "
                                                  "0.9,0.95,0.99 (the default)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="every definition and the capability "
                                          "matrix")] = False,
) -> None:
    """The answer first (who leads at each recall level, by how much, beyond the noise or not), then tables across
    backends and runs, grouped by workload and dataset."""
    from bench.analysis.compare import compare as do_compare
    from bench.analysis.compare import render
    from bench.analysis.verdict import parse_levels

    levels = parse_levels(at_recall)

    if fmt == "parquet":
        from bench.analysis.export import write_table

        if out is None:
            raise UserError("--format parquet writes a file", "give --out FILE.parquet")
        rows = write_table(do_compare(results or None, levels).figures.drop(columns=["table"]), out)
        print(f"wrote {out}: {rows} rows")
        return
    from bench.terminal import terminal_width

    text = render(do_compare(results or None, levels), fmt, width=terminal_width(), wide=wide, verbose=verbose)
    if out is not None:
        from bench.results.writer import write_text

        write_text(out, text)
        print(f"wrote {out}")
    else:
        with _reader_may_leave():
            print(text, end="" if text.endswith("\n") else "\n")


@app.command()
def export(
    results: Annotated[list[str] | None, typer.Argument(help="run folders or parquet files (default: results/)")] = None,
    out: Annotated[Path, typer.Option("--out", help="the file to write: .parquet or .csv")] = Path("results.parquet"),
    trials: Annotated[bool, typer.Option("--trials", help="every trial row instead of the summary rows")] = False,
) -> None:
    """One tidy table across runs: every summary row (or trial row) of every run, one file."""
    from bench.analysis.export import export as do_export

    n, runs = do_export(results or None, out, "trials" if trials else "summary")
    print(f"wrote {out}: {n} rows from {runs} run(s)")


@app.command("import")
def import_(
    files: Annotated[list[Path], typer.Argument(help="VectorDBBench result .json or ann-benchmarks result .hdf5 files")],
    out: Annotated[Path, typer.Option("--out", help="where the run folders go")] = Path("results"),
    tool_version: Annotated[str | None, typer.Option(help="the version of the tool that wrote the files (neither "
                                                     "tool records its own)")] = None,
    dataset: Annotated[Path | None, typer.Option(help="ann-benchmarks: the dataset's HDF5 file, for recall (default: "
                                                 "the set fetched into the cache under the name the file records)")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="dataset cache (default $BENCH_CACHE_DIR or ~/.cache/bench)")] = None,
) -> None:
    """Other tools' results as bench runs, one run folder each, so compare and report show them beside bench's."""
    from bench.datasets import default_cache_dir
    from bench.importers import import_files

    for r in import_files(files, out, version=tool_version, dataset=dataset, cache_dir=cache_dir or default_cache_dir()):
        print(f"imported {r.path}: {r.rows} rows -> {r.run_dir}")
        for s in r.skipped:
            print(f"  skipped {s}")


@app.command()
def rescore(
    results: Annotated[list[str], typer.Argument(help="run folders or trials.parquet files")],
    cache_dir: Annotated[Path | None, typer.Option(help="dataset cache (default $BENCH_CACHE_DIR or ~/.cache/bench)")] = None,
) -> None:
    """Recompute recall (and every quality figure) of runs already made, from the ids their searches returned."""
    from bench.analysis.rescore import rescore as do_rescore

    do_rescore(results, cache_dir)


@app.command()
def report(
    results: Annotated[list[str], typer.Argument(help="run folders or parquet files")],
    out: Annotated[Path, typer.Option("--out", help="folder for index.html and the PNG pictures (its earlier "
                                      "report files are replaced)")] = Path("report"),
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="name every picture drawn and every chart "
                                          "skipped, with why")] = False,
    at_recall: Annotated[str | None, typer.Option("--at-recall", help="recall levels of the verdict at the top, "
                                                  "e.g. 0.9,0.95,0.99 (the default)")] = None,
) -> None:
    """One self-contained interactive HTML page (the verdict first, charts, sortable tables) and PNG pictures for
    papers."""
    from bench.analysis.report import build, summary_lines
    from bench.analysis.verdict import parse_levels

    for line in summary_lines(build(results, out, parse_levels(at_recall)), verbose):
        print(line)


@app.command()
def regress(
    candidate: Annotated[str, typer.Option("--candidate", help="candidate: a run folder or run id")],
    baseline: Annotated[str | None, typer.Option("--baseline", help="baseline: a run folder, run id or baseline "
                                                 "name; none: the candidate is an A/B run (`bench ab`), arm B "
                                                 "tested against arm A pair by pair")] = None,
    config: Annotated[str | None, typer.Option(help="tolerances and alpha (default configs/regress.toml)")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="also write the summary here (markdown, or the "
                                             "--format's html or json)")] = None,
    results_dir: Annotated[Path, typer.Option(help="where run ids are looked up")] = Path("results"),
    baselines_dir: Annotated[Path, typer.Option(help="where baseline names are looked up")] = Path("baselines"),
    fmt: Annotated[str, typer.Option("--format", help="table | markdown | html | json")] = "table",
    as_json: Annotated[bool, typer.Option("--json", help="the same as --format json")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="table: explain the method and show the "
                                          "sentinel's table")] = False,
    allow_incomplete: Annotated[bool, typer.Option("--allow-incomplete", help="compare runs that did not complete "
                                                   "(interrupted, failed, stopped) too")] = False,
    across: Annotated[list[str], typer.Option("--across", help="pair configurations across a key group (data, "
                                               "index, load, variant) or key, e.g. an A/B of index settings")] = [],  # noqa: B006
) -> None:
    """Compare a candidate with a baseline; exit 1 when a figure got clearly worse beyond its tolerance."""
    from bench.analysis import regress as rg
    from bench.analysis.load import resolve_results
    from bench.results.writer import write_text
    from bench.terminal import terminal_width

    fmt = "json" if as_json else fmt
    if fmt not in ("table", "markdown", "html", "json"):
        raise UserError(f"--format {fmt!r} is not a regress format", "use one of: table, markdown, html, json")
    if config is None:
        default = Path("configs/regress.toml")
        from bench.spec import CONFIG_DIR

        config = str(default if default.exists() else CONFIG_DIR / "regress.toml")
    res = rg.regress(resolve_results(baseline, results_dir, baselines_dir) if baseline is not None else None,
                     resolve_results(candidate, results_dir, baselines_dir), config, across, allow_incomplete)
    if out is not None:
        write_text(out, rg.render(res, "markdown" if fmt == "table" else fmt))
    text = rg.render(res, fmt, width=terminal_width(), verbose=verbose)
    with _reader_may_leave():
        print(text.rstrip("\n"))
    if res.regressions:
        raise typer.Exit(EXIT_FAILED)


baseline_app = typer.Typer(help="Store and list baselines for `bench regress` (under baselines/NAME/).",
                           no_args_is_help=True, rich_markup_mode=None, context_settings=HELP, cls=HelpGroup)
app.add_typer(baseline_app, name="baseline")


@app.command()
def cleanup(
    run: Annotated[str, typer.Argument(help="run folder or run id (a suite's: every cell)")],
    results_dir: Annotated[Path, typer.Option(help="where run ids are looked up")] = Path("results"),
    set_: Annotated[list[str], typer.Option("--set", help="backend.KEY=VALUE, e.g. a password run.json does not "
                                            "keep")] = [],  # noqa: B006
) -> None:
    """Drop the collection or table a run created and could not drop (its run.json names it)."""
    from bench.cleanup import cleanup as do_cleanup

    for d in do_cleanup(run, results_dir, list(set_)):
        print(f"dropped {d.backend} collection '{d.collection}' (named in {d.run_json}), if it was still there")


@baseline_app.command("save")
def baseline_save(
    run: Annotated[str, typer.Argument(help="run folder or run id under --results-dir")],
    name: Annotated[str, typer.Option("--name", help="baseline name, e.g. main or nightly")],
    results_dir: Annotated[Path, typer.Option(help="where run ids are looked up")] = Path("results"),
    baselines_dir: Annotated[Path, typer.Option(help="where baselines are kept")] = Path("baselines"),
    append: Annotated[bool, typer.Option("--append", help="add the run to the baseline's runs instead of "
                                         "replacing them (their run-to-run spread then counts in regress)")] = False,
    keep: Annotated[int | None, typer.Option(help="with --append: keep only the newest N runs")] = None,
    allow_incomplete: Annotated[bool, typer.Option("--allow-incomplete", help="accept a run that did not "
                                                   "complete")] = False,
    skip_busy: Annotated[bool, typer.Option("--skip-busy", help="leave the baseline as it is when more than a "
                                            "fifth of the run's trials were disturbed by other processes (a "
                                            "rolling baseline: a night in a burst of load would widen it)")] = False,
) -> None:
    """Copy a run's results to baselines/NAME/<run-id>/ (replacing the baseline, or --append), with a note."""
    from bench.analysis.baseline import busy_reason, save

    if skip_busy and (why := busy_reason(run, results_dir, baselines_dir)):
        print(f"baseline '{name}' left as it was: run {run} not added, {why}")
        return
    b = save(run, name, results_dir, baselines_dir, append=append, keep=keep, allow_incomplete=allow_incomplete)
    print(f"baseline '{b.name}' saved in {b.path}: {len(b.note['runs'])} run(s), latest from {b.note['source']}"
          + (f" (replaced {', '.join(b.note['replaced'])})" if b.note.get("replaced") else ""))


@baseline_app.command("show")
def baseline_show(
    name: Annotated[str | None, typer.Argument(help="one baseline (default: all)")] = None,
    baselines_dir: Annotated[Path, typer.Option(help="where baselines are kept")] = Path("baselines"),
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List the stored baselines: where each came from and what it holds."""
    from bench.analysis.baseline import show

    items = show(baselines_dir, name)
    if as_json:
        print(json.dumps([{"name": b.name, "path": str(b.path), **b.note} for b in items], indent=2))
        return
    if not items:
        print(f"no baselines under {baselines_dir}/ (save one with `bench baseline save RUN --name NAME`)")
    for b in items:
        n = b.note
        print(f"{b.name}  ({b.path})")
        for label, value in (("saved", n.get("saved_utc", "?")), ("from", n.get("source", "?")),
                             ("runs", ", ".join(n.get("run_ids", [])) or "?"),
                             ("backends", ", ".join(n.get("backends", [])) or "?"),
                             ("workloads", ", ".join(n.get("workloads", [])) or "?"),
                             ("trial rows", n.get("trial_rows", "?"))):
            print(f"  {label:<10} {value}")


@app.command()
def ab(
    backend: Annotated[str, typer.Option("--backend", "-b", help="arm A's backend (and arm B's, without --b-backend)")],
    workload: Annotated[str, typer.Option("--workload", "-w", help="workload file or name in workloads/")] = "ann-smoke",
    set_: Annotated[list[str], typer.Option("--set", help="override for both arms: section.key=value")] = [],  # noqa: B006
    config: Annotated[str | None, typer.Option(help="backend config file of both arms")] = None,
    a_set: Annotated[list[str], typer.Option("--a-set", help="override for arm A only")] = [],  # noqa: B006
    b_set: Annotated[list[str], typer.Option("--b-set", help="override for arm B only, e.g. backend.url=... of "
                                             "the candidate build, or index.m=32")] = [],  # noqa: B006
    b_backend: Annotated[str | None, typer.Option(help="arm B's backend (default: --backend)")] = None,
    b_config: Annotated[str | None, typer.Option(help="arm B's backend config file (default: --config)")] = None,
    a_harness: Annotated[str | None, typer.Option(help="arm A runs this harness: a git revision of bench (e.g. "
                                                  "HEAD~1) or a bench checkout's folder")] = None,
    b_harness: Annotated[str | None, typer.Option(help="arm B runs this harness (default: the one running)")] = None,
    trials: Annotated[int | None, typer.Option(help="timed trials per arm and configuration: the pairs")] = None,
    results_dir: Annotated[Path, typer.Option(help="where results/<run-id>/ goes")] = Path("results"),
    run_id: Annotated[str | None, typer.Option(help="run id (default: time, 'ab', random)")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="dataset cache (default $BENCH_CACHE_DIR or ~/.cache/bench)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no line per trial")] = False,
) -> None:
    """Interleaved A/B: two configurations' trials alternate in one time window; `bench regress --candidate RUN`
    then tests the paired differences."""
    from bench.ab import Arm, run_ab

    arms = [Arm("A", backend, config, [*set_, *a_set], harness=a_harness),
            Arm("B", b_backend or backend, b_config if b_config is not None else config, [*set_, *b_set],
                harness=b_harness)]
    out = run_ab(workload, arms, trials, results_dir, cache_dir, run_id, shlex.join(["bench", *sys.argv[1:]]),
                 say=(lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr)))
    with _reader_may_leave():
        for a in out.arms:
            harness = f", harness {a.harness} ({(a.harness_commit or 'no git commit')[:12]})" if a.harness else ""
            print(f"arm {a.name}: {a.backend} {a.status}, {a.trials} trials ({a.prefix}*){harness}")
        print(f"A/B run {out.status}: {out.run_dir} (bench regress --candidate {out.run_dir})")
    if out.status != "complete":
        raise typer.Exit(EXIT_FAILED)


@app.command()
def suite(
    file: Annotated[Path, typer.Argument(help="suite file, e.g. configs/suites/nightly.toml")],
    resume: Annotated[str | None, typer.Option(help="run id of an earlier suite: skip the cells it finished")] = None,
    run_id: Annotated[str | None, typer.Option(help="run id of a new suite (default: time, suite name, random)")] = None,
    results_dir: Annotated[Path, typer.Option(help="where results/<run-id>/ goes")] = Path("results"),
    cache_dir: Annotated[Path | None, typer.Option(help="dataset cache (default $BENCH_CACHE_DIR or ~/.cache/bench)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print suite.json's cells as JSON")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Run a matrix of backends x workloads into one run id; a failed cell is recorded and the suite goes on."""
    from dataclasses import asdict

    from bench.suite import run_suite

    out = run_suite(file, resume=resume, run_id=run_id, results_dir=results_dir, cache_dir=cache_dir,
                    quiet=quiet or as_json, command=shlex.join(["bench", *sys.argv[1:]]),
                    say=lambda m: print(m, file=sys.stderr))
    with _reader_may_leave():
        if as_json:
            print(json.dumps({"run_id": out.run_id, "results": str(out.run_dir), "status": out.status,
                              "cells": [asdict(c) for c in out.cells]}, indent=2))
        else:
            for c in out.cells:
                print(f"{c.status:>12}  {c.backend} x {c.workload}" + (f": {c.reason}" if c.reason else ""))
            print(f"suite {out.status}: {out.run_dir}/suite.json")
    if out.status != "complete":
        raise typer.Exit(EXIT_FAILED)



def _mount_fault() -> None:
    from bench.faults.cli import fault

    app.command("fault")(fault)


_mount_fault()


def _mount_history() -> None:
    """`bench history` (bench/history/cli.py): the nightly's memory."""
    from bench.history.cli import app as history_app

    app.add_typer(history_app, name="history", cls=HelpGroup)


_mount_history()


def _silence_stdout() -> None:
    """The reader of stdout went away (`bench ... | head`): send what is left to /dev/null, so neither the rest of
    the output nor the interpreter's last flush raises again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


@contextmanager
def _reader_may_leave() -> Iterator[None]:
    """Print inside this block: a closed stdout is not an error, the command goes on to its exit code."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()


def _internal_error(e: BaseException) -> int:
    """A bug: one line naming it and the file holding the traceback (or the traceback, with BENCH_DEBUG=1)."""
    import tempfile
    import traceback

    from bench.backends.secrets import redact_command

    text = "".join(traceback.format_exception(e))
    if os.environ.get("BENCH_DEBUG", "") not in ("", "0"):
        print(text, file=sys.stderr, end="")
        print(f"internal error (exit {EXIT_INTERNAL})", file=sys.stderr)
        return EXIT_INTERNAL
    where = "not saved"
    try:
        fd, path = tempfile.mkstemp(prefix=f"bench-error-{time.strftime('%Y%m%dT%H%M%S')}-", suffix=".txt")
        with os.fdopen(fd, "w") as f:
            f.write(f"{redact_command(shlex.join(['bench', *sys.argv[1:]]))}\n{text}")
        where = f"saved in {path}"
    except OSError:
        pass
    first = " ".join(str(e).split())[:300]
    print(f"internal error (a bug in bench, not a verdict): {type(e).__name__}: {first}; the traceback is {where} "
          "(BENCH_DEBUG=1 prints it); please report it", file=sys.stderr)
    return EXIT_INTERNAL


def main() -> None:
    from bench.errors import terminate_on_signals

    terminate_on_signals()  # first: a SIGTERM or SIGHUP at any point ends the command as Ctrl-C would
    _mount_subapps()
    try:
        rc = app(standalone_mode=False)  # without standalone mode, a `typer.Exit(n)` comes back as n
        if isinstance(rc, int) and rc:
            from bench.errors import Terminated

            if rc == 130 and Terminated.received:  # an interrupt that was SIGTERM or SIGHUP: 143 or 129
                print("interrupted; finished trials were written", file=sys.stderr)
                rc = 128 + Terminated.received
            sys.exit(rc)
    except UserError as e:
        print(f"error: {e.sentence()}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt as e:
        from bench.errors import Terminated

        print("interrupted; finished trials were written", file=sys.stderr)
        sys.exit(128 + e.signum if isinstance(e, Terminated) else EXIT_INTERRUPTED)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort as e:  # click turns KeyboardInterrupt (and so SIGTERM/SIGHUP's Terminated) into Abort
        from bench.errors import Terminated

        cause = e.__cause__ or e.__context__
        print("interrupted; finished trials were written", file=sys.stderr)
        sys.exit(128 + cause.signum if isinstance(cause, Terminated) else EXIT_INTERRUPTED)
    except BrokenPipeError:  # stdout closed while a command printed outside _reader_may_leave: not an error
        _silence_stdout()
        sys.exit(EXIT_OK)
    except OSError as e:
        from bench.results.writer import ENVIRONMENT_ERRNOS

        if e.errno not in ENVIRONMENT_ERRNOS:
            sys.exit(_internal_error(e))
        print(f"error: Cannot write {e.filename or 'a file'} ({e.strerror or e}); free some space or choose "
              "another location", file=sys.stderr)
        sys.exit(EXIT_USER)
    except Exception as e:  # noqa: BLE001 - the one place a bug becomes exit 3 instead of a traceback
        if hasattr(e, "show") and hasattr(e, "exit_code"):  # usage errors of the (vendored) click: exit 2
            e.show()
            sys.exit(e.exit_code)
        sys.exit(_internal_error(e))


if __name__ == "__main__":
    main()
