"""Small checks on the files a user names, so a mistake ends in one sentence instead of a hang or a traceback."""

from __future__ import annotations

import stat
from pathlib import Path

from bench.errors import UserError

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def check_regular_file(path: Path, what: str = "file") -> Path:
    """Refuse anything but a regular file (after symlinks): reading a FIFO or a device can block forever.
    A missing file raises FileNotFoundError, so callers keep their own sentence for it."""
    mode = Path(path).stat().st_mode
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise UserError(f"The {what} {path} is {kind}, not a regular file", "give the path of an ordinary file")
    return Path(path)
