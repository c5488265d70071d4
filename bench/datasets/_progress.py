"""A rich progress bar on stderr, or nothing when progress is off."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


def _noop(_: int) -> None:
    return None


@contextmanager
def bar(description: str, total: int | None, enabled: bool = True, *, bytes_: bool = False,
        completed: int = 0) -> Iterator[Callable[[int], None]]:
    """Yield `advance(amount)`; shows a bar on stderr while the block runs when `enabled`."""
    if not enabled:
        yield _noop
        return
    if bytes_:
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   TimeRemainingColumn())
    else:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as prog:
        task = prog.add_task(description, total=total, completed=completed)
        yield lambda amount: prog.advance(task, amount)
