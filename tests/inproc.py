"""`bench ARGS` in the test's own process (no interpreter start-up per call): exit code, stdout, stderr."""

from __future__ import annotations

import contextlib
import io
import sys
from dataclasses import dataclass

from bench.cli import main


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def bench(*args: str) -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    old = sys.argv
    sys.argv = ["bench", *args]
    code: int | None = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = old
    return Outcome(int(code or 0), out.getvalue(), err.getvalue())
