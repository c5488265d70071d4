"""Disk space for a run: a check before anything is written, where the sizes are known, and a reserve that lets a
run whose disk filled up still write its final status.

The check estimates what the run will write: the results (kept result ids of every trial, interval logs, the
parquet files) in the results folder, and an in-process engine's data (vectors and graph) in its work folder.
A run that cannot fit stops before it starts, in one sentence.

The reserve (`Reserve`) is a small file of zeros written into the run's folder when it starts. A full disk
during the run makes a write fail (ENOSPC): the run then ends `failed`, and just before its last writes (the
final trials.parquet, summary.parquet, run.json) it deletes the reserve, so those writes find the room it held.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bench.errors import UserError
from bench.units import format_bytes

RESERVE_BYTES = 1 << 20  # room for the final run.json and parquet rewrites of a run that filled its disk
ENGINE_FACTOR = 3.0  # an in-process engine's data: the vectors, the graph (M=64 links) and its own files


def results_bytes(trials: int, configs: int, kept_per_trial: int, k: int) -> int:
    """What a run writes into its results folder: every trial's kept ids (int64 before compression), its
    interval log and parquet rows (a few KiB a trial), and the reserve."""
    per_trial = kept_per_trial * k * 8 + 16 * 1024
    return trials * configs * per_trial + RESERVE_BYTES


def engine_bytes(n: int, dim: int) -> int:
    """An in-process engine's data for n vectors of dim floats."""
    return int(n * dim * 4 * ENGINE_FACTOR)


def _existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_free(path: Path, need: int, what: str, fix: str) -> None:
    """Raise a UserError when the file system of `path` (or its nearest existing parent) has less than `need`
    bytes free."""
    free = shutil.disk_usage(_existing(path)).free
    if need > free:
        raise UserError(f"The run needs about {format_bytes(need)} for {what} in {path} but only "
                        f"{format_bytes(free)} is free there", fix)


class Reserve:
    """A file of zeros held for the end of the run (see the module docstring)."""

    def __init__(self, path: Path, size: int = RESERVE_BYTES):
        self.path: Path | None = path
        with open(path, "wb") as f:
            f.write(b"\0" * size)
            f.flush()
            os.fsync(f.fileno())

    def release(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None
