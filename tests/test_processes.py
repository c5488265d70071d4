"""bench.processes: ports and process trees on this machine, checked against real processes."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

from bench.processes import (
    HOST,
    LOOPBACK,
    free_port,
    kill_tree,
    listens,
    pid_on_port,
    port_open,
    process_tree,
    wait_gone,
)

# A parent that listens on PORT and starts a sleeping child: a small process tree with a known listener.
SERVER = """
import socket, subprocess, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


def test_a_listener_is_found_by_its_port_walked_as_a_tree_and_killed_by_pid():
    port = free_port()
    assert HOST in LOOPBACK and not port_open(port) and pid_on_port(port) is None
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        child = int(proc.stdout.readline())
        assert port_open(port) and pid_on_port(port) == proc.pid and listens(proc.pid, port)
        assert not listens(child, port)
        tree = process_tree(proc.pid)
        assert [p.pid for p in tree] == [proc.pid, child]
        assert kill_tree(proc.pid, signal.SIGTERM, wait_s=10) == 2
        proc.wait(10)
        assert wait_gone(tree, 5)
        assert pid_on_port(port) is None and process_tree(proc.pid) == []
    finally:
        proc.kill()


def test_free_port_is_bindable():
    port = free_port()
    with socket.socket() as s:
        s.bind((HOST, port))
