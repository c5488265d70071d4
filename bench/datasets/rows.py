"""Row sources: a range of vectors, in memory or on disk, read block by block.

On-disk rows are read with `os.preadv` into fresh arrays rather than through a memory map, so that streaming a
3 GB file does not map it into the process (file-backed pages would count in its resident set).
`array()` still gives an `np.memmap` for callers that want random access.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bench.errors import UserError


class Rows(ABC):
    """`n` vectors of dimension `dim`; `read` returns fresh float32 C-contiguous arrays."""

    n: int
    dim: int

    @abstractmethod
    def read(self, start: int, stop: int) -> np.ndarray: ...

    @abstractmethod
    def take(self, idx: np.ndarray) -> np.ndarray:
        """Rows at sorted, unique indices, as float32 (len(idx), dim)."""

    @abstractmethod
    def array(self) -> np.ndarray:
        """All rows as one array (an `np.memmap` for on-disk rows)."""

    @abstractmethod
    def slice(self, start: int, stop: int) -> Rows: ...

    def blocks(self, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        for s in range(0, self.n, block_rows):
            yield s, self.read(s, min(self.n, s + block_rows))


class ArrayRows(Rows):
    """Rows held in an array (any float dtype; read converts to float32)."""

    def __init__(self, arr: np.ndarray):
        if arr.ndim != 2:
            raise ValueError(f"expected a 2-D array, got shape {arr.shape}")
        self._arr = arr
        self.n, self.dim = int(arr.shape[0]), int(arr.shape[1])

    def read(self, start: int, stop: int) -> np.ndarray:
        return np.array(self._arr[start:stop], dtype=np.float32, order="C", copy=True)

    def take(self, idx: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self._arr[idx], dtype=np.float32)

    def array(self) -> np.ndarray:
        if self._arr.dtype != np.float32:
            self._arr = np.ascontiguousarray(self._arr, dtype=np.float32)
        return self._arr

    def slice(self, start: int, stop: int) -> Rows:
        return ArrayRows(self._arr[start:stop])


@dataclass
class FileRows(Rows):
    """float32 rows in a file: row i starts at `offset + i * stride + skip` and holds `dim` values.

    `skip` is 4 for .fvecs (each row starts with its dimension as int32), 0 for .npy and HDF5.
    """

    path: Path
    offset: int
    n: int
    dim: int
    stride: int
    skip: int = 0

    @classmethod
    def contiguous(cls, path: Path, offset: int, n: int, dim: int) -> FileRows:
        return cls(Path(path), offset, n, dim, dim * 4, 0)

    @property
    def _row_values(self) -> int:
        return self.stride // 4

    def _pread(self, fd: int, buf: np.ndarray, offset: int) -> None:
        view = memoryview(buf).cast("B")
        done = 0
        while done < len(view):
            got = os.preadv(fd, [view[done:]], offset + done)
            if got <= 0:
                raise UserError(f"The file {self.path} ends early (truncated or still being written)",
                                "download or generate it again")
            done += got

    def _read_fd(self, fd: int, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, start), min(self.n, stop)
        count = max(0, stop - start)
        if self.skip == 0 and self.stride == self.dim * 4:
            out = np.empty((count, self.dim), dtype=np.float32)
            if count:
                self._pread(fd, out, self.offset + start * self.stride)
            return out
        raw = np.empty((count, self._row_values), dtype=np.float32)
        if count:
            self._pread(fd, raw, self.offset + start * self.stride)
        s = self.skip // 4
        return np.ascontiguousarray(raw[:, s:s + self.dim])

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDONLY)
        except OSError as e:
            raise UserError(f"Cannot read the dataset file {self.path} ({e.strerror or e})",
                            "check that it still exists and is readable") from None

    def read(self, start: int, stop: int) -> np.ndarray:
        fd = self._open()
        try:
            return self._read_fd(fd, start, stop)
        finally:
            os.close(fd)

    def take(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        out = np.empty((len(idx), self.dim), dtype=np.float32)
        if not len(idx):
            return out
        # Coalesce runs of consecutive indices into one read each.
        breaks = np.flatnonzero(np.diff(idx) != 1) + 1
        starts = np.concatenate(([0], breaks))
        ends = np.concatenate((breaks, [len(idx)]))
        fd = self._open()
        try:
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
                out[a:b] = self._read_fd(fd, int(idx[a]), int(idx[a]) + (b - a))
        finally:
            os.close(fd)
        return out

    def array(self) -> np.ndarray:
        if self.n == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        mm = np.memmap(self.path, dtype=np.float32, mode="r", offset=self.offset, shape=(self.n, self._row_values))
        if self.skip == 0 and self._row_values == self.dim:
            return mm
        s = self.skip // 4
        return mm[:, s:s + self.dim]

    def slice(self, start: int, stop: int) -> Rows:
        start, stop = max(0, start), min(self.n, stop)
        return replace(self, offset=self.offset + start * self.stride, n=max(0, stop - start))


def empty_rows(dim: int) -> Rows:
    return ArrayRows(np.empty((0, dim), dtype=np.float32))


def block_rows_for(dim: int, budget_bytes: int = 64 << 20) -> int:
    """Rows per block so one float32 block stays near `budget_bytes`."""
    return max(1, min(1 << 16, budget_bytes // (4 * max(1, dim))))
