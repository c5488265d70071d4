"""The `bench` command line. Thin: parse, call, print. A UserError becomes one sentence on stderr and exit 2."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from bench.errors import UserError

app = typer.Typer(help="bench: a benchmark harness for vector databases.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)


def _mount_subapps() -> None:
    try:
        from bench.datasets.cli import app as datasets_app
    except ImportError:  # pragma: no cover - the datasets package is part of bench
        return
    app.add_typer(datasets_app, name="datasets", help="Generate, fetch, list and describe datasets.")


@app.command()
def run(
    backend: Annotated[str, typer.Option("--backend", "-b", help="backend name (`bench backends` lists them)")],
    workload: Annotated[str, typer.Option("--workload", "-w", help="workload file or name in workloads/")] = "ann-smoke",
    set_: Annotated[list[str], typer.Option("--set", help="override a value: section.key=value (dataset., index., "
                                            "search., ycsb., run., backend.)")] = [],  # noqa: B006
    config: Annotated[str | None, typer.Option(help="backend config file (default configs/<backend>.toml)")] = None,
    trials: Annotated[int | None, typer.Option(help="timed trials per configuration (default 5)")] = None,
    concurrency: Annotated[int | None, typer.Option(help="workers: threads (in-process) or processes")] = None,
    target_rate: Annotated[float | None, typer.Option(help="open loop: operations per second offered")] = None,
    rate_sweep: Annotated[bool, typer.Option(help="then offer 10%..120% of the closed-loop QPS, open loop, and "
                                             "find the latency-throughput knee")] = False,
    results_dir: Annotated[Path, typer.Option(help="where results/<run-id>/ goes")] = Path("results"),
    run_id: Annotated[str | None, typer.Option(help="run id (default: time, backend, workload, random)")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="dataset cache (default $BENCH_CACHE_DIR or ~/.cache/bench)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary rows as JSON")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Measure one backend on one workload: load, index, warm up, then timed trials; write parquet results."""
    from bench.runner import RunRequest, print_summary
    from bench.runner import run as do_run

    req = RunRequest(backend=backend, workload=workload, overrides=list(set_), config=config, results_dir=results_dir,
                     cache_dir=cache_dir, run_id=run_id, trials=trials, concurrency=concurrency,
                     target_rate=target_rate, rate_sweep=rate_sweep, quiet=quiet or as_json, command=shlex.join(["bench", *sys.argv[1:]]))
    out = do_run(req)
    if as_json:
        keep = ("backend", "workload", "op", "ef_search", "concurrency", "target_rate", "n_trials", "n_ok", "n_kept",
                "qps", "qps_lo", "qps_hi", "mean_us", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "recall",
                "recall_lo", "recall_hi", "load_s", "build_s", "index_built", "index_substitutions", "run_status")
        print(json.dumps({"run_id": out.run_id, "results": str(out.run_dir), "status": out.status,
                          "warnings": out.warnings, "summary": [{k: r.get(k) for k in keep} for r in out.summary_rows]},
                         indent=2, default=str))
    else:
        print_summary(out.summary_rows, out.warnings)
        print(f"results: {out.run_dir}/trials.parquet, {out.run_dir}/summary.parquet")
    if out.status not in ("complete",):
        raise typer.Exit(1)


@app.command()
def backends(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the backend adapters and whether each is usable on this machine."""
    from rich.console import Console
    from rich.table import Table

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
    t = Table(title="backends")
    for c in ("backend", "kind", "usable", "why not / capabilities"):
        t.add_column(c)
    for r in rows:
        caps = r["capabilities"] or {}
        flags = ", ".join(k for k, v in caps.items() if v is True and k not in ("in_process", "server"))
        t.add_row(r["backend"], r["kind"], "yes" if r["usable"] else "no", r["reason"] or flags)
    Console(width=160).print(t)


@app.command()
def calibrate(
    operations: Annotated[int, typer.Option(help="operations per measurement")] = 200_000,
    slow_latency_us: Annotated[float, typer.Option(help="service time of the fake-slow backend")] = 1000.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Measure the harness' own ceiling (null backend) and its accuracy (fake-slow backend of known latency)."""
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    from bench.load.calibrate import calibrate as do_calibrate

    rows = do_calibrate(operations, slow_latency_us)
    if as_json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return
    t = Table(title="harness self-check (one worker thread)")
    for c in ("backend", "mode", "ops/s", "loop cost per op (us)", "recorded P50 (us)", "recorded P99 (us)"):
        t.add_column(c)
    for r in rows:
        t.add_row(r.backend, r.mode, f"{r.ops_per_s:,.0f}", f"{r.per_op_us:.2f}", f"{r.p50_us}", f"{r.p99_us}")
    Console(width=160).print(t)
    print(f"fake-slow was asked for {slow_latency_us:.0f} us per operation; the recorded P50 above should be close "
          "to it (plus the OS's sleep overshoot).")


def main() -> None:
    _mount_subapps()
    try:
        app(standalone_mode=False)
    except UserError as e:
        print(f"error: {e.sentence()}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("interrupted; finished trials were written", file=sys.stderr)
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # click usage errors and the like
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise


if __name__ == "__main__":
    main()
