"""Nothing lost, nothing hung, nothing leaked: a user mistake ends in one sentence and exit 2, a crash is never
mistaken for a verdict (exit 3, not 1), concurrent writers keep every run, result files follow the umask, and
inputs that used to crash, hang or run away are refused at load. Through the real `bench` command line where one
can be made."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from bench.errors import UserError
from bench.units import format_bytes


# -- sizes in messages ----------------------------------------------------------------------------------------

def test_small_sizes_are_not_zero_gib() -> None:
    assert [format_bytes(n) for n in (0, 512, 1536, 10 << 20, 150 << 20, 3 * 2**30 // 2, 5 * 2**40)] == [
        "0 B", "512 B", "1.5 KiB", "10 MiB", "150 MiB", "1.5 GiB", "5 TiB"]


def test_a_full_disk_names_sizes_that_differ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The generator's disk check said "needs 0.0 GiB but has 0.0 GiB free"."""
    from bench.datasets import synthetic
    from bench.datasets.spec import DatasetSpec

    monkeypatch.setattr(synthetic.shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(1 << 30, 1 << 30, 20_000))
    with pytest.raises(UserError, match=r"needs 55 KiB but .* has 19.5 KiB free"):
        synthetic.ensure_generated(DatasetSpec(n=100, queries=10, dim=128), tmp_path, progress=False)
