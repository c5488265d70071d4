"""`bench fault`: the command line of bench.faults (registered in bench/cli.py)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer


def fault(
    backend: Annotated[str, typer.Option("--backend", "-b", help="a server backend: pgvector or chroma-server")],
    workload: Annotated[str, typer.Option("--workload", "-w", help="a ycsb workload with writes")] = "fault-ycsb-a",
    kill_at: Annotated[float, typer.Option("--kill-at", help="seconds into the timed phase to SIGKILL the server")] = 5.0,
    duration: Annotated[float, typer.Option("--duration", help="length of the timed phase, in seconds")] = 20.0,
    p99_factor: Annotated[float, typer.Option("--p99-factor", help="recovered once the sliding-window P99 is within "
                                              "this factor of the P99 before the fault")] = 2.0,
    window: Annotated[float, typer.Option("--window", help="sliding window for the P99, in seconds")] = 1.0,
    restart_cmd: Annotated[str | None, typer.Option("--restart-cmd", help="shell command that starts the server "
                                                    "again (default: scripts/services.py up NAME)")] = None,
    restart_delay: Annotated[float, typer.Option("--restart-delay", help="seconds between kill and restart")] = 0.0,
    recovery_timeout: Annotated[float, typer.Option("--recovery-timeout", help="give up on the server after "
                                                    "this many seconds")] = 120.0,
    node: Annotated[str | None, typer.Option("--node", help="kill one node of a replicated engine whose config names "
                                             "its servers (pgvector with replica_dsns: primary, replica1, ...; "
                                             "recovered by its promote_cmd / node_start_cmd), or stop this docker "
                                             "compose service (e.g. qdrant-node2; started again with `docker "
                                             "compose start`)")] = None,
    compose_file: Annotated[Path | None, typer.Option(help="--node: the compose file (default ./docker-compose.yml, "
                                                      "else the repo's)")] = None,
    node_action: Annotated[str, typer.Option(help="--node: kill (SIGKILL, a crash) or stop (SIGTERM, then kill)")] = "kill",
    set_: Annotated[list[str], typer.Option("--set", help="override a value: section.key=value")] = [],  # noqa: B006
    config: Annotated[str | None, typer.Option(help="backend config file (default configs/<backend>.toml)")] = None,
    concurrency: Annotated[int | None, typer.Option(help="worker threads, each with its own client")] = None,
    results_dir: Annotated[Path, typer.Option(help="where results/<run-id>/ goes")] = Path("results"),
    run_id: Annotated[str | None, typer.Option(help="run id (default: time, backend, workload, random)")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="dataset cache (default $BENCH_CACHE_DIR)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Kill a local server with SIGKILL (or stop one node of a compose cluster, --node) during a YCSB run, restart
    it, and measure recovery and lost writes."""
    from bench.faults import FaultRequest, format_summary, outcome_json, run_fault

    req = FaultRequest(backend=backend, workload=workload, overrides=list(set_), config=config, kill_at_s=kill_at,
                       duration_s=duration, p99_factor=p99_factor, window_s=window, restart_cmd=restart_cmd,
                       restart_delay_s=restart_delay, recovery_timeout_s=recovery_timeout, concurrency=concurrency,
                       node=node, compose_file=compose_file, node_action=node_action,
                       results_dir=results_dir, run_id=run_id, cache_dir=cache_dir, quiet=quiet or as_json,
                       command=shlex.join(["bench", *sys.argv[1:]]))
    out = run_fault(req, say=(lambda m: None) if (quiet or as_json) else (lambda m: print(m, file=sys.stderr)))
    if as_json:
        print(outcome_json(out))
    else:
        print(format_summary(out.summary))
        print(f"results: {out.run_dir}/fault.json, {out.run_dir}/timeline.parquet")
    if out.status != "complete":
        raise typer.Exit(1)
