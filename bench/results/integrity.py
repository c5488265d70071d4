"""Damage anywhere is detected: every result file bench writes (parquet, run.json, suite.json, hlog, ...) gets a
checksum file beside it, `<name>.sha256` (sha256sum's line format: the first line names the file's content), and its readers
verify the bytes against it before anything parses them, so a flipped byte is never read as a figure and never
reaches a parser that could crash on it. Parquet files also carry page checksums (CRC32, verified on read).

A rewrite (a run rewrites its parquet files after every trial) first writes the checksum file naming the new
content and the current one, then renames the new file into place: a reader, or a writer killed between the two
renames, always finds the file's content named. Files written before bench kept checksums have no checksum file:
they are read as they are, with a note that they cannot be verified.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from bench.errors import UserError

SUFFIX = ".sha256"
RETRY_S = 0.2  # a file rewritten while it was read: its checksum file is read again once after this long
_noted: set[str] = set()


class DamagedFile(UserError):
    """A result file whose content does not match its checksum: never read as figures."""


def sum_path(path: Path) -> Path:
    return path.with_name(path.name + SUFFIX)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _named(path: Path) -> list[str] | None:
    """The digests the checksum file names (the newest first), or None when there is none."""
    try:
        text = sum_path(path).read_text(errors="replace")
    except FileNotFoundError:
        return None
    except OSError:
        return []
    return [line.split()[0] for line in text.splitlines() if line.strip()]


def write_sum(path: Path, new_digest: str) -> None:
    """Name `new_digest` (the content about to be renamed into place) and the file's current content."""
    named = _named(path) if path.exists() else None
    old = named[0] if named else None
    lines = [f"{new_digest}  {path.name}\n"] + ([f"{old}  {path.name}\n"] if old and old != new_digest else [])
    tmp = path.with_name(f".{path.name}{SUFFIX}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write("".join(lines))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, sum_path(path))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_verified(path: Path, what: str = "results file") -> bytes:
    """The bytes of `path`, checked against its checksum file (a DamagedFile when they do not match); a file
    without one is read as it is, noted once on stderr as one that cannot be verified."""
    for attempt in (0, 1):
        with open(path, "rb") as f:
            data = f.read()
        named = _named(path)
        if named is None:
            note_unverified(path)
            return data
        if digest(data) in named:
            return data
        if attempt == 0:
            time.sleep(RETRY_S)  # rewritten meanwhile? the next look sees the file and its checksum agree
    raise DamagedFile(f"The {what} {path} cannot be read: it is damaged (its content does not match its checksum in "
                      f"{sum_path(path).name})", "restore it from a copy or rerun it; bench reads no figure from it")


def note_unverified(path: Path) -> None:
    """Once per folder: its files were written before bench kept checksums."""
    key = str(path.parent)
    if key not in _noted:
        _noted.add(key)
        print(f"note: {path} and the files beside it have no checksums (written before bench kept them), so "
              "damage to them cannot be detected", file=sys.stderr)


def verify(path: Path, what: str = "results file") -> None:
    """Check `path` against its checksum file when it has one (a missing file is not checked here)."""
    if path.is_file() and not path.name.endswith(SUFFIX):
        read_verified(path, what)


def read_parquet(path: Path) -> Any:
    """A parquet file as a pyarrow table: its bytes checked first (read_verified), then its page CRCs; anything
    that cannot be read is one sentence naming the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        data = read_verified(path)
        return pq.read_table(pa.BufferReader(data), page_checksum_verification=True)
    except DamagedFile:
        raise
    except (OSError, pa.ArrowException, ValueError, UnicodeDecodeError, IndexError) as e:
        raise UserError(f"The results file {path} cannot be read ({' '.join(str(e).split())[:300]})",
                        "it may be truncated or not a bench parquet file; rerun or give another file") from None
