"""Tables for the terminal (rich): fitted to its width, the least needed columns left out first and named under
the table; `wide=True` keeps every column (a pipe or a file then gets the table's natural width)."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from typing import IO

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

CLIP_MIN = 16


@dataclass(frozen=True)
class Column:
    head: str
    right: bool = False  # numbers: right-aligned
    drop: int = 0  # 0 = always kept; otherwise the higher, the earlier it goes when the table is too wide
    wrap: bool = False  # long text that may wrap onto more lines (other cells never wrap)
    clip: bool = False  # long text that may end in '…' to keep one line per row (a list whose full text is a
    #                     --json or --wide away); it keeps CLIP_MIN columns at least


def terminal_width(file: IO[str] | None = None) -> int:
    """The terminal's columns ($COLUMNS wins; a pipe or file: 100, wide enough for a log, narrow enough to read)."""
    stream = file or sys.stdout
    try:
        is_tty = stream.isatty()
    except (AttributeError, ValueError):
        is_tty = False
    return shutil.get_terminal_size((100, 24)).columns if is_tty else int(_env_columns() or 100)


def _env_columns() -> str | None:
    import os

    value = os.environ.get("COLUMNS", "")
    return value if value.isdigit() and int(value) > 20 else None


def _table(title: str | None, cols: list[Column], rows: list[list[str]], width: int | None = None) -> Table:
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1), show_edge=False)
    others = _min_width([c for c in cols if not c.clip], [[x for x, c in zip(r, cols, strict=True) if not c.clip] for r in rows])
    for i, c in enumerate(cols):
        whole = max(cell_len(x) for x in [c.head, *(r[i] for r in rows)])
        t.add_column(c.head, justify="right" if c.right else "left", no_wrap=not c.wrap,
                     overflow="ellipsis" if c.clip else "fold",
                     min_width=None if c.wrap else min(whole, CLIP_MIN) if c.clip else whole,
                     max_width=max(CLIP_MIN, width - others - 3) if c.clip and width else None)
    for r in rows:
        t.add_row(*(Text(c) for c in r))  # cells are text, never markup: "[ed1198]" names a run, not a style
    return t


def fit(title: str | None, cols: list[Column], rows: list[list[str]], width: int, wide: bool = False
        ) -> tuple[Table, list[str]]:
    """A rich table no wider than `width`: columns are left out by falling `drop` until it fits (ties: the
    rightmost first), and a column whose cells are all '-' goes before any other. Returns the table and the
    heads left out."""
    keep = list(range(len(cols)))
    dropped: list[str] = []
    if wide:
        return _table(title, cols, rows), dropped
    empty = [i for i in keep if cols[i].drop and all(r[i] in ("-", "") for r in rows)]
    order = empty + sorted((i for i in keep if cols[i].drop and i not in empty), key=lambda i: (-cols[i].drop, -i))
    for i in [None, *order]:
        if i is not None:
            keep.remove(i)
            dropped.append(cols[i].head)
        t = _table(title, [cols[j] for j in keep], [[r[j] for j in keep] for r in rows], width)
        if _min_width([cols[j] for j in keep], [[r[j] for j in keep] for r in rows]) <= width:
            break
    return t, [h for h in dropped if h]


def _min_width(cols: list[Column], rows: list[list[str]]) -> int:
    """The narrowest the table can print without cutting a cell: every cell whole, except that a wrapping
    column may break at spaces (its longest word); one space of padding on each side of a column."""
    total = 0
    for i, c in enumerate(cols):
        cells = [c.head, *(r[i] for r in rows)]
        if c.wrap:
            total += max((cell_len(w) for cell in cells for w in cell.split()), default=1)
        elif c.clip:
            total += min(CLIP_MIN, max(cell_len(cell) for cell in cells))
        else:
            total += max(cell_len(cell) for cell in cells)
        total += 3  # padding on both sides, and the column divider
    return total


def print_table(title: str | None, cols: list[Column], rows: list[list[str]], wide: bool = False,
                file: IO[str] | None = None, console: Console | None = None) -> list[str]:
    """Print the fitted table (and one line naming what it left out); returns the heads left out."""
    width = console.width if console is not None else terminal_width(file)
    t, dropped = fit(title, cols, rows, width, wide)
    out = console or Console(file=file or sys.stdout, width=10_000 if wide else width, highlight=False)
    out.print(t)
    if dropped:
        out.print(f"[dim]left out to fit {width} columns: {', '.join(dropped)} (--wide keeps every column)[/dim]")
    return dropped
