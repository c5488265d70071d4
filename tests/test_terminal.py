"""The terminal: tables fit the width they are given (the least needed columns go first and are named), --wide
keeps every column, -h and --version work, a boolean flag shows no value placeholder, a generated dataset folder
can be described, and the run table has concurrency and offered-rate columns."""

from __future__ import annotations

import io
import subprocess
import sys

from rich.console import Console

from bench.runner import print_summary
from bench.terminal import Column, fit

COLS = [Column("backend"), Column("run", drop=1), Column("QPS", True), Column("spread", True, drop=3),
        Column("memory", True, drop=2), Column("empty", True, drop=1)]
ROWS = [["qdrant-edge", "20261130T101010Z-qdrant-edge-ann-smoke-abcdef", "2,310", "[2,250-2,370]", "512.0", "-"],
        ["faiss", "20261130T101011Z-faiss-ann-smoke-123456", "1,587", "[1,578-2,039]", "300.5", "-"]]


def _render(table, width: int) -> list[str]:
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None).print(table)
    return buf.getvalue().splitlines()


def test_fit_drops_empty_then_least_needed_columns_and_never_cuts_a_cell():
    for width in (200, 90, 60, 40):
        table, dropped = fit(None, COLS, ROWS, width)
        lines = _render(table, width)
        assert all(len(line.rstrip()) <= width for line in lines)
        text = "\n".join(lines)
        kept = [c.head for c in COLS if c.head not in dropped]
        for row in ROWS:  # every kept cell is printed whole, on one line: nothing folded or cut with an ellipsis
            for c, cell in zip(COLS, row, strict=True):
                if c.head in kept:
                    assert cell in text, (width, cell)
        assert "backend" in kept and "QPS" in kept  # never dropped
        if width < 200:
            assert dropped[0] == "empty"  # a column of '-' goes first
    _, dropped = fit(None, COLS, ROWS, 80)
    assert dropped == ["empty", "spread"]  # by falling drop priority, only as many as needed
    _, dropped = fit(None, COLS, ROWS, 60)
    assert dropped == ["empty", "spread", "memory", "run"]


def test_wide_keeps_every_column():
    table, dropped = fit(None, COLS, ROWS, 40, wide=True)
    assert dropped == [] and len(table.columns) == len(COLS)


def test_run_table_has_concurrency_and_rate_columns(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    rows = [{"backend": "faiss", "workload": "ann-smoke", "op": "search", "ef_search": 64, "k": 10, "concurrency": c,
             "target_rate": r, "qps": q, "qps_lo": q - 5, "qps_hi": q + 5, "p50_us": 400.0, "p99_us": 900.0,
             "p999_us": None, "recall": 0.99, "n_kept": 3, "n_ok": 5, "n_trials": 5}
            for c, r, q in ((1, None, 2000.0), (4, 500.0, 499.0), (4, 1000.0, 998.0))]
    print_summary(rows, [])
    out = capsys.readouterr().out
    head = next(line for line in out.splitlines() if "conc" in line)
    assert "rate" in head and "QPS" in head
    body = [line.split() for line in out.splitlines() if line.strip().startswith("faiss")]
    assert [b[5:7] for b in body] == [["1", "-"], ["4", "500"], ["4", "1,000"]]  # each rate on its own row


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, timeout=120,
                          env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"})


def test_help_version_and_flags():
    v = _cli("--version")
    assert v.returncode == 0 and v.stdout.startswith("bench 0.")
    h = _cli("run", "-h")
    assert h.returncode == 0 and "--rate-sweep / --no-rate-sweep" in h.stdout
    assert "<bool>" not in h.stdout and "…" not in h.stdout
    assert all(len(line) <= 80 for line in h.stdout.splitlines())
    top = _cli("-h")
    commands = top.stdout.split("Commands:", 1)[1]
    assert "..." not in commands and "baselines/NAME/" in commands  # whole first sentences, wrapped


def test_describe_reads_the_folder_generate_printed(tmp_path):
    env = {"COLUMNS": "80", "PATH": "/usr/bin:/bin", "BENCH_CACHE_DIR": str(tmp_path)}
    g = subprocess.run([sys.executable, "-m", "bench.cli", "datasets", "generate", "--n", "300", "--queries", "10",
                        "--dim", "8", "--quiet"], capture_output=True, text=True, timeout=120, env=env)
    assert g.returncode == 0, g.stderr
    folder = next(line.split(": ", 1)[1] for line in g.stdout.splitlines() if line.startswith("path: "))
    d = subprocess.run([sys.executable, "-m", "bench.cli", "datasets", "describe", folder], capture_output=True,
                       text=True, timeout=120, env=env)
    assert d.returncode == 0, d.stderr
    lines = dict(line.split(None, 1) for line in d.stdout.splitlines() if line and not line.startswith(" ")
                 and not line.endswith(":"))
    assert lines["base"] == "300" and lines["dim"] == "8" and lines["queries"] == "10"
    assert "{" not in d.stdout  # no Python reprs
