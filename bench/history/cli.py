"""`bench history add | changes | report`: the nightly's memory (docs/history.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bench.errors import UserError

HELP = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(help="Keep every night's figures, find the change points, draw the page (docs/history.md).",
                  no_args_is_help=True, rich_markup_mode=None, context_settings=HELP)

StoreOpt = Annotated[str, typer.Option("--store", help="the history: a folder (a parquet dataset by date) or a "
                                       "postgresql://user@host:port/db?schema=NAME URL")]
LastOpt = Annotated[int | None, typer.Option("--last", min=1, help="only the changes of the last N nights of each "
                                             "series; exit 1 when one of them is for the worse")]


@app.command("add")
def add(
    runs: Annotated[list[Path], typer.Argument(help="run folders (bench run/suite/import output)")],
    store: StoreOpt = "history",
) -> None:
    """Append runs to the history (a run already there is skipped)."""
    from bench.history.rows import run_rows
    from bench.history.store import open_store

    s = open_store(store)
    for run in runs:
        if not run.is_dir():
            raise UserError(f"{run} is not a run folder", "give the folder `bench run` or `bench suite` wrote")
        by_run: dict[str, list[dict]] = {}
        for r in run_rows(run):
            by_run.setdefault(r["run_id"], []).append(r)
        if not by_run:
            raise UserError(f"{run} has no result rows the history keeps (an A/B run is not a night)",
                            "give a run of `bench run`, `bench suite` or `bench import`")
        for run_id, rows in by_run.items():
            added = s.add(run_id, rows)
            print(f"{run_id}: " + (f"added {len(rows)} configuration(s) to {s.where}" if added
                                   else f"already in {s.where}, left as it was"))


def _changes(store: str, last: int | None):
    from bench.history import changes, series
    from bench.history.store import open_store

    s = open_store(store)
    history = s.read()
    if history.empty:
        raise UserError(f"The history {s.where} is empty", "add runs with `bench history add RUN_DIR...`")
    found = changes.find(series.build(history))
    return history, (changes.recent(found, last) if last else found)


@app.command("changes")
def changes_cmd(store: StoreOpt = "history", last: LastOpt = None) -> None:
    """Print the change points of every series, newest first, one line each."""
    history, found = _changes(store, last)
    nights = history["run_id"].nunique()
    scope = f"in the last {last} night(s) of each series" if last else "in the history"
    print(f"{len(found)} change point(s) {scope} ({nights} nights, {history['series_id'].nunique()} "
          "configurations)")
    for c in found:
        print(c.line())
    from bench.history.changes import alarming

    if last and any(alarming(c) for c in found):
        raise typer.Exit(1)


@app.command("report")
def report_cmd(
    out: Annotated[Path, typer.Option("--out", help="folder to write index.html into")],
    store: StoreOpt = "history",
    last: Annotated[int, typer.Option("--last", min=1, help="the summary at the top lists the changes of the "
                                      "last N nights")] = 7,
) -> None:
    """Write one self-contained HTML page: recent changes, then a chart per configuration and figure."""
    from bench.history.page import write

    path = write(store, out, last)
    print(f"history page written to {path}")
