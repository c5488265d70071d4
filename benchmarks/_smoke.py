"""`--smoke` for every script in benchmarks/: the script runs end to end at a tiny size in seconds, so CI knows it
still runs (tests/test_benchmarks_smoke.py); its figures mean nothing at that size.

    ap = argparse.ArgumentParser(...)
    ...
    _smoke.add(ap, n=500, repeats=1)     # the values --smoke gives the script's own options
    args = _smoke.parse(ap)
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any


def add(ap: argparse.ArgumentParser, **tiny: Any) -> None:
    """Add --smoke to `ap`: given, each option in `tiny` takes its value there, whatever the command line says (a
    callable value is called then: `out=temp_dir` makes a folder only for a smoke run)."""
    ap.add_argument("--smoke", action="store_true",
                    help="run at a tiny size in seconds to check the script runs (the figures mean nothing)")
    ap.set_defaults(smoke_values=tiny)


def parse(ap: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    args = ap.parse_args(argv)
    if args.smoke:
        for name, value in args.smoke_values.items():
            setattr(args, name, value() if callable(value) else value)
    return args


def temp_dir() -> Path:
    """A fresh temporary folder, removed when the script exits."""
    path = Path(tempfile.mkdtemp(prefix="bench-smoke-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
