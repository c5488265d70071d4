"""Nothing lost, nothing hung, nothing leaked: a user mistake ends in one sentence and exit 2, a crash is never
mistaken for a verdict (exit 3, not 1), concurrent writers keep every run, result files follow the umask, and
inputs that used to crash, hang or run away are refused at load. Through the real `bench` command line where one
can be made."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from backend_options import no_server

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


# -- the real command line --------------------------------------------------------------------------------------

BENCH = [sys.executable, "-m", "bench.cli"]
TINY = ["--set", "dataset.n=1000", "--set", "dataset.queries=40", "--set", "run.min_operations=1", "--set", "dataset.dim=16",
        "--set", "run.warmup_s=0.05", "--quiet"]
FAKE = ["--set", "search.ef_search=[64]", "--set", "run.operations=200", "--trials", "5"]


def _env(cache_dir: Path, **extra: str) -> dict[str, str]:
    root = str(Path(__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "BENCH_CACHE_DIR": str(cache_dir), "PYTHONPATH": path, **extra}


def bench(*args: str | bytes, cwd: Path, cache_dir: Path, timeout: float = 300, umask: int | None = None,
          **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*BENCH, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=_env(cache_dir, **env), preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


def one_sentence(p: subprocess.CompletedProcess, code: int = 2) -> str:
    """The process ended with `code` and one line on stderr, no traceback; returns that line."""
    assert p.returncode == code, (p.returncode, p.stderr[-3000:])
    assert "Traceback" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cache_dir):
    """Two real runs on the fake-slow backend: `fast` (200 us per operation) and `slow` (400 us)."""
    cwd = tmp_path_factory.mktemp("robust")
    for name, us in (("fast", 200), ("slow", 400)):
        p = bench("run", "--backend", "fake-slow", "--workload", "ann-smoke", *TINY, *FAKE, "--set",
                  f"backend.latency_us={us}", "--run-id", name, "--json", cwd=cwd, cache_dir=cache_dir)
        assert p.returncode == 0, p.stderr[-3000:]
    return cwd


# -- concurrent `bench baseline save --append` keeps every run ----------------------------------------------

def test_concurrent_baseline_appends_keep_every_run(runs, cache_dir):
    cwd, results = runs, runs / "results"
    names = [f"night{i}" for i in range(7)]
    for n in names:
        shutil.copytree(results / "fast", results / n)
    p = bench("baseline", "save", names[0], "--name", "nightly", cwd=cwd, cache_dir=cache_dir)
    assert p.returncode == 0, p.stderr
    procs = [subprocess.Popen([*BENCH, "baseline", "save", n, "--name", "nightly", "--append"], cwd=cwd,
                              env=_env(cache_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in names[1:]]  # six at once
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    base = cwd / "baselines" / "nightly"
    note = json.loads((base / "baseline.json").read_text())
    assert sorted(e["folder"] for e in note["runs"]) == names
    assert sorted(d.name for d in base.iterdir() if d.is_dir()) == names
    assert not [d.name for d in (cwd / "baselines").iterdir() if d.name.startswith(".nightly.") and d.is_dir()]


# -- exit codes -- 1 is a verdict, 2 a user mistake, 3 a bug -------------------------------------------------

def test_regress_with_an_unwritable_out_is_a_user_error_not_a_regression(runs, cache_dir):
    p = bench("regress", "--baseline", "fast", "--candidate", "fast", "--out", str(runs / "no-such-dir" / "r.md"),
              cwd=runs, cache_dir=cache_dir)
    line = one_sentence(p, 2)
    assert line.startswith(f"error: Cannot write {runs / 'no-such-dir' / 'r.md'} (No such file or directory)")


@pytest.mark.parametrize(("candidate", "verdict"), [("fast", 0), ("slow", 1)])
def test_regress_into_a_closed_pipe_exits_with_the_verdict(runs, cache_dir, tmp_path, candidate, verdict):
    """`bench regress ... | head`: the reader leaving is not an error; the exit code is still the verdict. (The
    host-load rule is off: the suite's other workers can make `slow` busier than `fast`, which is "unclear".)"""
    cfg = tmp_path / "regress.toml"
    cfg.write_text("host = false\n")
    proc = subprocess.Popen([*BENCH, "regress", "--baseline", "fast", "--candidate", candidate, "--config", str(cfg)],
                            cwd=runs,
                            env=_env(cache_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before bench writes a byte
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == verdict, err
    assert err.strip() == ""


def test_a_bug_exits_3_with_one_line_and_the_traceback_saved(monkeypatch, capsys, tmp_path):
    from bench import cli
    from bench.analysis import regress

    def broken(*args, **kwargs):
        raise RuntimeError("an invariant broke")

    monkeypatch.setattr(regress, "regress", broken)
    monkeypatch.setattr("bench.analysis.load.resolve_results", lambda name, *a: Path(name))
    monkeypatch.setattr("sys.argv", ["bench", "regress", "--baseline", "a", "--candidate", "b"])
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("BENCH_DEBUG", raising=False)
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)  # TMPDIR is read again
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 3
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("internal error (a bug in bench, not a verdict): RuntimeError: an invariant broke; the "
                           f"traceback is saved in {tmp_path}/bench-error-")
    (saved,) = tmp_path.glob("bench-error-*.txt")
    assert "Traceback" in saved.read_text() and "an invariant broke" in saved.read_text()
    monkeypatch.setenv("BENCH_DEBUG", "1")
    with pytest.raises(SystemExit) as e:
        cli.main()
    err = capsys.readouterr().err
    assert e.value.code == 3 and "Traceback (most recent call last)" in err and "RuntimeError: an invariant broke" in err


# -- workload names ----------------------------------------------------------------------------------------

SMOKE = (Path(__file__).resolve().parent.parent / "workloads" / "ann-smoke.toml").read_text()


@pytest.mark.parametrize("name", ["a/b", "../x", "x" * 300, "", ".hidden", "tab\there"])
def test_a_bad_workload_name_is_refused_at_load(tmp_path, cache_dir, name):
    path = tmp_path / "w.toml"
    path.write_text(re.sub(r'(?m)^name = ".*"$', f"name = {json.dumps(name)}", SMOKE))
    p = bench("run", "--backend", "faiss", "--workload", str(path), *TINY, cwd=tmp_path, cache_dir=cache_dir)
    line = one_sentence(p)
    assert "a workload name is 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'" in line
    assert not (tmp_path / "results").exists()


def test_a_workload_name_with_a_byte_that_is_not_utf8_is_refused(tmp_path, cache_dir):
    p = subprocess.run([*BENCH, "run", "--backend", "faiss", *TINY, b'--set', b'name="ab\xffc"'],
                       capture_output=True, text=True, cwd=tmp_path, env=_env(cache_dir), timeout=300)
    assert "a workload name is 1 to 64" in one_sentence(p)


def test_a_plain_workload_name_still_loads():
    from bench.workload_file import load_workload

    assert load_workload("ann-smoke", ["name=\"My.workload_2-b\""]).name == "My.workload_2-b"


# -- inputs that ran away, wrote anywhere, hung or misread ----------------------------------------------------

@pytest.mark.parametrize(("setting", "needle"), [
    ("search.ef_search=[1000000000]", "ef_search values must be between 1 and 100,000"),
    ("search.k=100000", "'search.k' = 100000: input should be less than or equal to 10000"),
])
def test_search_sizes_are_capped(tmp_path, cache_dir, setting, needle):
    p = bench("run", "--backend", "faiss", *TINY, "--set", setting, cwd=tmp_path, cache_dir=cache_dir)
    assert needle in one_sentence(p)


def test_suite_resume_takes_a_run_id_not_a_path(tmp_path, cache_dir):
    suite = tmp_path / "one.toml"
    suite.write_text('name = "one"\nbackends = ["null"]\nworkloads = ["ann-smoke"]\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "results").mkdir()
    for resume in ("../elsewhere", str(elsewhere)):
        p = bench("suite", str(suite), "--resume", resume, cwd=tmp_path, cache_dir=cache_dir)
        assert f"--resume '{resume}' is not a run id" in one_sentence(p)
    (tmp_path / "results" / "plain").mkdir()  # a run folder that is not a suite's
    p = bench("suite", str(suite), "--resume", "plain", cwd=tmp_path, cache_dir=cache_dir)
    assert "holds no suite.json" in one_sentence(p)
    assert list(elsewhere.iterdir()) == [] and list((tmp_path / "results" / "plain").iterdir()) == []


def test_an_fvecs_file_whose_rows_differ_is_refused(tmp_path, cache_dir):
    """First and last rows say 4, the middle ones 3 and 5 (the file size is still a whole number of rows)."""
    def row(dim: int) -> bytes:
        return np.int32(dim).tobytes() + np.arange(dim, dtype=np.float32).tobytes()

    path = tmp_path / "mixed.fvecs"
    path.write_bytes(row(4) + row(3) + row(5) + row(4))
    p = bench("datasets", "describe", str(path), cwd=tmp_path, cache_dir=cache_dir)
    assert "its first row has dimension 4 but row 1 says 3" in one_sentence(p)
    path.write_bytes(row(4) * 4)
    p = bench("datasets", "describe", str(path), "--json", cwd=tmp_path, cache_dir=cache_dir)
    assert p.returncode == 0 and json.loads(p.stdout)["rows"] == 4


def test_a_toml_file_with_a_byte_order_mark_is_read(tmp_path, cache_dir):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + b"trails = 3\n" + SMOKE.encode())  # a BOM, and a real mistake after it
    p = bench("run", "--backend", "faiss", "--workload", str(path), *TINY, cwd=tmp_path, cache_dir=cache_dir)
    line = one_sentence(p)
    assert "unknown key 'trails'" in line and "not valid TOML" not in line


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_not_read(tmp_path, cache_dir):
    fifo = tmp_path / "vectors.npy"
    os.mkfifo(fifo)
    p = bench("datasets", "describe", str(fifo), cwd=tmp_path, cache_dir=cache_dir, timeout=60)
    assert one_sentence(p) == (f"error: The dataset file {fifo} is a FIFO (named pipe), not a regular file; give "
                               "the path of an ordinary file.")
    wl = tmp_path / "w.toml"
    os.mkfifo(wl)
    p = bench("run", "--backend", "faiss", "--workload", str(wl), cwd=tmp_path, cache_dir=cache_dir, timeout=60)
    assert "is a FIFO (named pipe), not a regular file" in one_sentence(p)


# -- file permissions follow the umask ---------------------------------------------------------------------------

def _modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mode & 0o777 for p in folder.rglob("*")}


def test_results_reports_and_baselines_follow_the_umask(runs, cache_dir):
    p = bench("run", "--backend", "fake-slow", "--workload", "ann-smoke", *TINY, "--set", "run.operations=100",
              "--trials", "1", "--run-id", "shared", cwd=runs, cache_dir=cache_dir, umask=0o027)
    assert p.returncode == 0, p.stderr
    modes = _modes(runs / "results" / "shared")
    assert modes and {m for f, m in modes.items() if not f.endswith(("intervals",))} <= {0o640, 0o750}
    assert modes["run.json"] == modes["trials.parquet"] == modes["summary.parquet"] == 0o640
    p = bench("report", "results/shared", "--out", "rep", cwd=runs, cache_dir=cache_dir, umask=0o022)
    assert p.returncode == 0, p.stderr
    modes = _modes(runs / "rep")
    assert modes["index.html"] == 0o644 and all(m == 0o644 for f, m in modes.items() if f.endswith(".png"))
    p = bench("baseline", "save", "shared", "--name", "perm", cwd=runs, cache_dir=cache_dir, umask=0o022)
    assert p.returncode == 0, p.stderr
    base = runs / "baselines" / "perm"
    assert base.stat().st_mode & 0o777 == 0o755
    modes = _modes(base)
    assert modes.pop("baseline.json") == 0o644 and modes.pop("shared") == 0o755
    assert set(modes.values()) == {0o640}  # the copies keep the mode of the run's files


# -- bench fault kills only the engine it was asked to fault --------------------------------------------------------

PROXY = r"""
import socket, sys, threading
listen = socket.create_server(("127.0.0.1", 0))
print(listen.getsockname()[1], flush=True)
target = ("127.0.0.1", int(sys.argv[1]))
def pipe(a, b):
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
while True:
    c, _ = listen.accept()
    u = socket.create_connection(target)
    threading.Thread(target=pipe, args=(c, u), daemon=True).start()
    threading.Thread(target=pipe, args=(u, c), daemon=True).start()
"""


@pytest.fixture
def stranger(tmp_path):
    """A process that is not a database listening on a loopback port: a plain `python -m http.server`."""
    from bench.processes import free_port, pid_on_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while pid_on_port(port) != proc.pid:
        assert proc.poll() is None and time.monotonic() < deadline, "http.server did not start"
        time.sleep(0.05)
    yield port, proc
    proc.terminate()
    proc.wait(timeout=10)


def test_a_private_server_never_signals_a_stranger_on_its_port(tmp_path, stranger):
    from bench.faults.servers import PrivateServer
    from bench.processes import identify_engine

    port, proc = stranger
    with pytest.raises(UserError, match=rf"The process listening for pgvector \(pid {proc.pid}, python[\d.]*: .*"
                                        r"http.server.*\) is not a postgres or postmaster server, so bench will not kill it"):
        identify_engine("pgvector", proc.pid)
    srv = PrivateServer("pgvector", port, tmp_path / "srv", ["true"])
    (tmp_path / "srv").mkdir()
    assert srv.pid() is None and srv.kill() == 0
    srv.stop()
    time.sleep(0.2)
    assert proc.poll() is None  # still serving


@pytest.mark.server
def test_bench_fault_refuses_a_proxy_in_front_of_postgres(tmp_path, cache_dir):
    """The port bench fault was pointed at belongs to a TCP proxy (a python process) forwarding to PostgreSQL: the
    old code SIGKILLed the proxy at --kill-at; now it names what listens and refuses before anything is written."""
    pytest.importorskip("psycopg")
    from bench.backends.pgvector import PgvectorBackend, PgvectorOptions
    from bench.processes import identify_engine, pid_on_port

    base = PgvectorOptions()
    reason = PgvectorBackend.check_available(base)
    if reason:
        no_server("pgvector", reason)
    _, pg_port = PgvectorBackend._address(base.dsn)
    pg_pid = pid_on_port(pg_port)
    if pg_pid is None:
        no_server("pgvector", f"no process visible here listens on its port {pg_port}")
    assert "postgres" in identify_engine("pgvector", pg_pid)  # the real engine is recognised
    proxy = subprocess.Popen([sys.executable, "-c", PROXY, str(pg_port)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proxy.stdout.readline())
        dsn = base.dsn.replace(f":{pg_port}/", f":{port}/")
        assert dsn != base.dsn
        p = bench("fault", "--backend", "pgvector", "--set", f'backend.dsn="{dsn}"', "--restart-cmd", "true",
                  "--kill-at", "1", "--duration", "3", "--set", "dataset.n=300", "--set", "dataset.holdout=100",
                  "--set", "dataset.dim=8", "--set", "dataset.queries=10", "--set", "run.min_operations=1", "--quiet", cwd=tmp_path,
                  cache_dir=cache_dir, timeout=300)
        line = one_sentence(p)
        assert line.startswith(f"error: The process listening for pgvector (pid {proxy.pid}, python")
        assert "is not a postgres or postmaster server, so bench will not kill it" in line
        assert proxy.poll() is None and pid_on_port(pg_port) == pg_pid
        assert not (tmp_path / "results").exists()
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
