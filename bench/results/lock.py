"""One writer per folder: a suite folder (or a baselines folder) is locked by the process working in it.

The lock is fcntl.flock on the folder itself (released by the kernel when the process ends, however it ends, so
a killed writer never leaves a stale lock); the holder's pid is written to `.bench.pid` beside, so a refusal can
name it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from bench.errors import UserError

PID_FILE = ".bench.pid"


def _holder(folder: Path) -> str:
    try:
        pid = int((folder / PID_FILE).read_text().split()[0])
        return f"pid {pid}"
    except (OSError, ValueError, IndexError):
        return "another process"


@contextlib.contextmanager
def folder_lock(folder: Path, what: str, hint: str) -> Iterator[None]:
    """Hold `folder`'s writer lock for the block; refuse at once (one sentence naming the holder) when another
    process holds it."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise UserError(f"Cannot open the {what} {folder} ({e.strerror or e})", "check the path") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"The {what} {folder} is in use by another bench process ({_holder(folder)})",
                            hint) from None
        pid_file: Path | None = folder / PID_FILE
        try:
            pid_file.write_text(f"{os.getpid()}\n")  # type: ignore[union-attr]
        except OSError:
            pid_file = None  # the lock holds without it; a refusal then says "another process"
        try:
            yield
        finally:
            if pid_file is not None:
                with contextlib.suppress(OSError):
                    pid_file.unlink()
    finally:
        os.close(fd)
