"""Processes and ports on this machine, for everything that starts, finds, watches or stops a server: the
loopback names, a free port, which pid listens on a port, a process and its descendants, signalling and stopping
them by pid (never by name), and recognising an engine's server process before signalling it.

Low in the layer order (bench/layers.py): metrics, services, scenarios, load and faults all use it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time

import psutil

from bench.errors import UserError

HOST = "127.0.0.1"
LOOPBACK = ("127.0.0.1", "localhost", "::1")  # a server address on this machine, whose processes bench can see


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def listens(pid: int, port: int) -> bool:
    """True when the process `pid` itself listens on `port`."""
    try:
        return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                   for c in psutil.Process(pid).net_connections(kind="inet"))
    except psutil.Error:
        return False


def pid_on_port(port: int) -> int | None:
    """The pid listening on HOST:port (the server's main process), or None."""
    try:
        for c in psutil.net_connections(kind="inet"):
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
                return int(c.pid)
    except (psutil.Error, OSError):
        pass
    return None


def process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def signal_tree(procs: list[psutil.Process], sig: int = signal.SIGKILL) -> None:
    """Send `sig` to every process of a tree (from `process_tree`), without waiting."""
    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.Error:
            pass


def wait_gone(procs: list[psutil.Process], timeout_s: float = 10.0) -> bool:
    """Wait until every process has exited. A zombie counts as gone: a process whose parent has not reaped it
    yet (a server started by this process) holds no port and no file any more."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = []
        for p in procs:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.Error:
                pass
        if not alive:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def kill_tree(pid: int, sig: int = signal.SIGKILL, wait_s: float = 10.0) -> int:
    """Send `sig` to a process and all its descendants at once (a crash, or a container killed); wait for them.
    Returns how many processes got the signal."""
    procs = process_tree(pid)
    signal_tree(procs, sig)
    wait_gone(procs, wait_s)
    return len(procs)


def port_open(port: int, host: str = HOST, timeout_s: float = 0.5) -> bool:
    """Something accepts a TCP connection at host:port."""
    with socket.socket() as s:
        s.settimeout(timeout_s)
        return s.connect_ex((host, port)) == 0


# What the process listening on an engine's port must be called (its name, executable, or the script an
# interpreter runs) before bench fault or a private server's stop sends it a signal.
ENGINE_PROCESS: dict[str, tuple[str, ...]] = {
    "pgvector": ("postgres", "postmaster"), "chroma-server": ("chroma",), "chroma": ("chroma",),
    "milvus": ("milvus",), "qdrant": ("qdrant",), "weaviate": ("weaviate",)}
_INTERPRETER = re.compile(r"(python[0-9.]*|pypy[0-9.]*|sh|bash|dash|node|java)")


def _names(proc: psutil.Process) -> tuple[list[str], str]:
    """(lower-case names the process goes by, a short description for messages)."""
    with proc.oneshot():
        name = proc.name()
        try:
            exe, cmd = proc.exe(), proc.cmdline()
        except psutil.Error:  # another user's process may hide these
            exe, cmd = "", []
    names = [name, os.path.basename(exe)]
    if cmd:
        names.append(os.path.basename(cmd[0]))
        if _INTERPRETER.fullmatch(os.path.basename(cmd[0])) and len(cmd) > 1 and not cmd[1].startswith("-"):
            names.append(os.path.basename(cmd[1]))  # the script an interpreter runs (chroma is a Python script)
    shown = " ".join(cmd)[:120] or exe or name
    return [n.lower() for n in names if n], f"pid {proc.pid}, {name}: {shown}"


def identify_engine(engine: str, pid: int) -> str:
    """Describe the process `pid` ("pid 4250, postgres: /usr/lib/postgresql/bin/postgres -D ...") when it is
    recognisably `engine`'s server; otherwise a UserError: bench never signals a process it cannot identify (the
    port may belong to a proxy, a tunnel or another program)."""
    patterns = ENGINE_PROCESS.get(engine)
    try:
        names, shown = _names(psutil.Process(pid))
    except psutil.Error as e:
        raise UserError(f"Cannot inspect the process {pid} that listens for {engine} ({type(e).__name__})",
                        "run bench fault as a user who can see the server's process") from None
    if patterns is None or not any(n.startswith(p) for n in names for p in patterns):
        expected = " or ".join(patterns or ("(no known server process)",))
        raise UserError(f"The process listening for {engine} ({shown}) is not a {expected} server, so bench will "
                        "not kill it", "point the backend at the engine's own port on this machine (not a proxy "
                        "or tunnel in front of it)")
    return shown
