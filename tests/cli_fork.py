"""Run several `bench` command lines as real processes, cheaply: this script imports bench once, then forks one
child per command line, each running the CLI's `main()` with its own argv, stdout and stderr (files), and reports
each child's exit code (negative: the signal that ended it) with its output, as JSON on stdout.

    python tests/cli_fork.py '[["compare", "results/x"], ["export", "results/x", "--out", "a.parquet"]]'

The fuzz test of damaged results runs every reading command on each damaged copy this way: a crash in a parser
(SIGABRT), a traceback or exit 3 shows up exactly as it would from the `bench` command.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile


def run_all(commands: list[list[str]]) -> list[dict]:
    import bench.cli  # noqa: F401 - imported once, before the forks
    from bench.cli import _mount_subapps  # noqa: F401

    out = []
    for argv in commands:
        fo = tempfile.TemporaryFile()
        fe = tempfile.TemporaryFile()
        pid = os.fork()
        if pid == 0:  # the child: the bench command line, as `python -m bench.cli ARGS` runs it
            os.dup2(fo.fileno(), 1)
            os.dup2(fe.fileno(), 2)
            sys.argv = ["bench", *argv]
            code = 0
            try:
                from bench.cli import main

                main()
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        texts = []
        for f in (fo, fe):
            f.seek(0)
            texts.append(f.read().decode(errors="replace"))
            f.close()
        out.append({"argv": argv, "code": code, "stdout": texts[0], "stderr": texts[1]})
    return out


if __name__ == "__main__":
    print(json.dumps(run_all(json.loads(sys.argv[1]))))
