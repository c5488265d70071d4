"""Atomic result writing: a temporary file in the same folder, fsync, then rename. A reader never sees a
half-written file; one run never overwrites another (run ids are unique and the folder must be new)."""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from bench.errors import UserError
from bench.results import integrity


def new_run_id(label: str = "") -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = secrets.token_hex(3)
    return f"{stamp}-{label}-{suffix}" if label else f"{stamp}-{suffix}"


# Write failures that are the machine's state, not a bug: a full disk or quota, a read-only file system, a folder
# that is not writable or is a file.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EISDIR,
                       errno.ENOTDIR}

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}")


def check_run_id(run_id: str) -> str:
    """A run id is one folder name: letters, digits, '.', '_', '+', '-' (no '/', no '..')."""
    if not _RUN_ID.fullmatch(run_id) or ".." in run_id:
        raise UserError(f"The run id '{run_id}' is not a plain folder name",
                        "use letters, digits, '.', '_', '+' and '-' (at most 200), starting with a letter or digit")
    return run_id


def make_run_dir(results_dir: Path, run_id: str) -> Path:
    check_run_id(run_id)
    if results_dir.exists() and not results_dir.is_dir():
        raise UserError(f"The results folder {results_dir} is a file, not a folder", "choose another --results-dir")
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        d = results_dir / run_id
        d.mkdir(exist_ok=False)
    except FileExistsError:
        raise UserError(f"The results folder {results_dir / run_id} already exists",
                        "runs never overwrite each other; choose another --run-id") from None
    except OSError as e:
        raise UserError(f"Cannot create the results folder {results_dir} ({e.strerror})",
                        "choose a writable --results-dir") from None
    return d


def _umask() -> int:
    """The process's umask, read without changing it (os.umask sets it, which races with other threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_mode(directory: bool = False) -> int:
    """The mode open() or mkdir() would give a new file or folder: 0666 (0777) less the user's umask. mkstemp and
    mkdtemp create 0600 / 0700, which would hide results from the group the umask shares them with."""
    return (0o777 if directory else 0o666) & ~_umask()


def _atomic(path: Path, write, checked: bool = False) -> None:
    """Write through a temporary file beside `path`, fsync, then rename: a reader sees the old file or the new one,
    never part of one. The temporary name is chosen before the file exists, so whatever ends the write (an error, a
    full disk, SIGTERM turned into an exception at any bytecode, even inside the call that creates it) removes it.
    `checked`: a checksum file beside it names the new content first (bench.results.integrity)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, default_mode())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if checked:
            integrity.write_sum(path, integrity.digest(tmp.read_bytes()))
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and e.errno in ENVIRONMENT_ERRNOS:
            raise UserError(f"Cannot write {path} ({e.strerror or e})",
                            "free some space or choose another location (an existing folder you may write to)") from None
        if isinstance(e, FileNotFoundError):
            raise UserError(f"Cannot write {path} ({e.strerror or e})",
                            "choose a writable location (an existing folder you may write to)") from None
        raise


def write_parquet(table: pa.Table, path: Path, metadata: dict[str, Any] | None = None, checked: bool = False) -> None:
    """A parquet file with page checksums (CRC32) and, when `checked` (every result file bench keeps), a checksum
    file of its own beside it (bench.results.integrity)."""
    if metadata:
        meta = dict(table.schema.metadata or {})
        meta.update({k.encode(): json.dumps(v, default=str).encode() for k, v in metadata.items()})
        table = table.replace_schema_metadata(meta)
    _atomic(path, lambda f: pq.write_table(table, f, write_page_checksum=True), checked)


def write_text(path: Path, text: str, checked: bool = False) -> None:
    _atomic(path, lambda f: f.write(text.encode()), checked)


def write_json(path: Path, obj: Any, checked: bool = False) -> None:
    write_text(path, json.dumps(obj, indent=2, default=str) + "\n", checked)
