"""Progress and messages on stderr: rich progress bars, a spinner with elapsed time, warnings; silent with --quiet
(warnings still show); details only with --verbose."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)


class Reporter:
    def __init__(self, quiet: bool, verbose: bool = False):
        self.quiet = quiet
        self.verbose = verbose
        self.console = Console(stderr=True, quiet=quiet)

    def progress(self) -> Progress:
        return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=self.console, transient=True, disable=self.quiet or not self.console.is_terminal)

    @contextlib.contextmanager
    def spinner(self, what: str) -> Iterator[None]:
        """A spinner with the elapsed time while something of unknown length runs (an index build)."""
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=self.console,
                      transient=True, disable=self.quiet or not self.console.is_terminal) as prog:
            prog.add_task(what, total=None)
            yield

    def say(self, msg: str) -> None:
        self.console.print(msg)

    def detail(self, msg: str) -> None:
        """A line only `-v` shows (each busy trial, every index parameter)."""
        if self.verbose:
            self.console.print(msg, highlight=False)

    def warn(self, msg: str) -> None:
        Console(stderr=True).print(f"[yellow]warning:[/yellow] {msg}")
