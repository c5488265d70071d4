"""Cache files: streamed .npy writing, atomic replace, keys and the content hash."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bench.datasets.rows import FileRows, Rows, block_rows_for
from bench.errors import UserError

HASH_VERSION = "bench-dataset-v1"


def key_of(obj: Any, length: int = 16) -> str:
    """A short stable hex key of a JSON-able object."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def file_identity(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def ensure_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"Cannot create the cache folder {path} ({e.strerror or e})",
                        "set BENCH_CACHE_DIR to a writable folder") from None
    return path


@contextmanager
def atomic_path(final: Path):
    """Yield a temporary path beside `final`; on success it is renamed over `final`, else removed."""
    ensure_dir(final.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))


def save_npy_atomic(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, arr)


def write_npy_blocks(path: Path, n: int, dim: int, blocks: Iterable[np.ndarray],
                     on_block: Callable[[np.ndarray], None] | None = None) -> FileRows:
    """Write `n` float32 rows given in blocks to a new .npy file, one block in memory at a time.

    The header is made by `np.lib.format.open_memmap`; the rows are written with plain file writes so the
    process never maps the file (its pages would otherwise count in the resident set). Atomic: the file
    appears under `path` only when complete.
    """
    with atomic_path(path) as tmp:
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))
        offset = int(mm.offset)
        del mm
        written = 0
        with open(tmp, "r+b") as f:
            f.seek(offset)
            for block in blocks:
                block = np.ascontiguousarray(block, dtype=np.float32)
                if block.ndim != 2 or block.shape[1] != dim:
                    raise ValueError(f"block of shape {block.shape} does not fit ({n}, {dim})")
                if written + len(block) > n:
                    raise ValueError("more rows than announced")
                f.write(memoryview(block).cast("B"))
                written += len(block)
                if on_block is not None:
                    on_block(block)
        if written != n:
            raise UserError(f"Only {written} of {n} rows could be read while writing {path.name}",
                            "the source file may be truncated")
    return FileRows.contiguous(path, offset, n, dim)


def read_npy_header(path: Path) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran_order, dtype, data offset) of a .npy file; ValueError when it is not one."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f".npy format version {version} is not supported")
        return shape, fortran, dtype, f.tell()


def npy_rows(path: Path) -> FileRows:
    """Rows of a float32, C-ordered, 2-D .npy file (already validated or written by us)."""
    shape, fortran, dtype, offset = read_npy_header(path)
    if fortran or dtype != np.float32 or len(shape) != 2:
        raise ValueError(f"{path} is not a float32 C-ordered matrix")
    return FileRows.contiguous(path, offset, int(shape[0]), int(shape[1]))


def new_hasher(metric: str, n: int, nq: int, dim: int) -> Any:
    h = hashlib.sha256()
    h.update(f"{HASH_VERSION}|metric={metric}|n={n}|nq={nq}|dim={dim}|".encode())
    return h


def content_hash(base: Rows, queries: np.ndarray, metric: str, progress: Callable[[int], None] | None = None,
                 check: Callable[[int, np.ndarray], None] | None = None) -> str:
    """sha256 (first 16 hex digits) over metric, sizes, then the float32 bytes of base and queries.
    `check(first_row, block)` sees every base block on the way (e.g. to reject corrupt values)."""
    h = new_hasher(metric, base.n, len(queries), base.dim)
    for start, block in base.blocks(block_rows_for(base.dim)):
        if check is not None:
            check(start, block)
        h.update(memoryview(block).cast("B"))
        if progress is not None:
            progress(len(block))
    h.update(memoryview(np.ascontiguousarray(queries, dtype=np.float32)).cast("B"))
    return h.hexdigest()[:16]
