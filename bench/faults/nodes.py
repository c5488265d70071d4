"""`bench fault --node NODE`: one node of a replicated engine on this machine (`LocalNode`: a server the backend's
configuration names, e.g. pgvector's primary or a replica, killed by its pid and recovered by the configuration's
command), or one node of an engine cluster run by docker compose (docker-compose.yml's cluster
profiles), stopped during the YCSB run and started again, instead of a local server's process tree.

    docker compose -f FILE kill SERVICE     (--node-action kill: SIGKILL, as a crash; or stop: SIGTERM, then kill)
    docker compose -f FILE start SERVICE    the restart; the node is back when compose reports it healthy
    docker compose -f FILE ps --all --format json SERVICE

The commands go through `ComposeNode.run` (subprocess.run by default), so a test can see exactly what is issued.
"""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.backends.base import ServerNode
from bench.errors import UserError

ACTIONS = ("kill", "stop")
Runner = Callable[..., subprocess.CompletedProcess]


@dataclass
class ComposeNode:
    service: str
    compose_file: Path
    action: str = "kill"
    run: Runner = field(default=subprocess.run, repr=False)

    def base(self) -> list[str]:
        return ["docker", "compose", "-f", str(self.compose_file)]

    def stop_command(self) -> list[str]:
        return [*self.base(), self.action, self.service]

    def start_command(self) -> list[str]:
        return [*self.base(), "start", self.service]

    def status_command(self) -> list[str]:
        return [*self.base(), "ps", "--all", "--format", "json", self.service]

    def describe(self) -> str:
        return f"compose service {self.service} of {self.compose_file} (docker compose {self.action})"

    def stop(self, timeout_s: float = 60) -> str | None:
        """Issue the stop; None when compose did it, else why not (one line)."""
        return self._issue(self.stop_command(), timeout_s)

    def start(self, timeout_s: float = 120) -> str | None:
        return self._issue(self.start_command(), timeout_s)

    def _issue(self, cmd: list[str], timeout_s: float) -> str | None:
        try:
            r = self.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"`docker compose {' '.join(cmd[4:])}` failed: {type(e).__name__}: {e}"
        if r.returncode != 0:
            tail = (r.stderr or r.stdout or "").strip().splitlines()[-1:]
            return f"`docker compose {' '.join(cmd[4:])}` exited {r.returncode}: {' '.join(tail)}"
        return None

    def healthy(self) -> bool:
        """True when compose reports the service running, and healthy where it has a health check."""
        try:
            r = self.run(self.status_command(), capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return False
        if r.returncode != 0:
            return False
        states = parse_ps(r.stdout)
        return bool(states) and all(s.get("State") == "running" and s.get("Health") in ("", None, "healthy")
                                    for s in states)


def parse_ps(text: str) -> list[dict[str, Any]]:
    """`docker compose ps --format json`: one JSON array (compose < 2.21) or one object per line (later)."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def compose_node(service: str, compose_file: Path | None, action: str, repo_root: Path,
                 run: Runner = subprocess.run) -> ComposeNode:
    """The node `--node` names, checked before anything is written: docker on PATH, the compose file readable,
    the service in it."""
    if action not in ACTIONS:
        raise UserError(f"--node-action {action!r} is not one of {', '.join(ACTIONS)}", "give kill or stop")
    path = compose_file or next((p for p in (Path("docker-compose.yml"), repo_root / "docker-compose.yml")
                                 if p.exists()), Path("docker-compose.yml"))
    try:
        services = (yaml.safe_load(path.read_text()) or {}).get("services") or {}
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"Cannot read the compose file {path} ({type(e).__name__})",
                        "give --compose-file FILE") from None
    if service not in services:
        raise UserError(f"--node {service} is not a service of {path} (it has: {', '.join(sorted(services))})",
                        "name one node of a cluster profile, e.g. qdrant-node2")
    if run is subprocess.run and shutil.which("docker") is None:
        raise UserError("bench fault --node stops a compose service, but the docker command is not installed here",
                        "run it where `docker compose` manages the cluster")
    return ComposeNode(service, path.resolve(), action, run)


@dataclass
class LocalNode:
    """`bench fault --node NAME` on a replicated engine whose servers run on this machine (Backend.server_nodes,
    e.g. pgvector with replica_dsns): the server listening on the node's port is killed by its pid (SIGKILL of
    its process tree: a crash; --node-action stop: SIGTERM, then SIGKILL), and its recovery command runs: the
    failover (promote a standby) for the primary, a restart for a replica. `probe` says when the node, or for
    the primary the promoted standby, serves again."""

    node: ServerNode
    engine: str
    recover: str  # the shell command, {python} already replaced
    probe: Callable[[], bool] = field(repr=False)
    action: str = "kill"
    killed_pid: int | None = None
    killed_procs: int = 0
    killed_ns: int | None = None  # perf_counter_ns at the signal (after the pid was found: that takes a while)

    @property
    def service(self) -> str:
        return self.node.name

    def stop_command(self) -> list[str]:
        host, port = self.node.address
        return ["kill", "-KILL" if self.action == "kill" else "-TERM", f"(the {self.engine} server on {host}:{port})"]

    def start_command(self) -> list[str]:
        return ["/bin/sh", "-c", self.recover]

    def describe(self) -> str:
        host, port = self.node.address
        what = "failover" if self.node.role == "primary" else "restart"
        return f"{self.node.role} {self.node.name} of {self.engine} on {host}:{port} ({what}: {self.recover})"

    def stop(self, timeout_s: float = 60) -> str | None:
        from bench.processes import identify_engine, pid_on_port, process_tree, signal_tree, wait_gone

        port = self.node.address[1]
        pid = pid_on_port(port)
        if pid is None:
            return f"no process listened on port {port} ({self.node.name}) at the kill time"
        try:
            identify_engine(self.engine, pid)
        except UserError as e:
            return e.sentence()
        procs = process_tree(pid)
        self.killed_ns = time.perf_counter_ns()
        signal_tree(procs, signal.SIGKILL if self.action == "kill" else signal.SIGTERM)
        if not wait_gone(procs, 10 if self.action == "kill" else timeout_s):
            signal_tree(procs, signal.SIGKILL)
            wait_gone(procs, 10)
        self.killed_pid, self.killed_procs = pid, len(procs)
        return None

    def healthy(self) -> bool:
        return self.probe()


def local_node(name: str, nodes: list[ServerNode], engine: str, action: str, restart_cmd: str | None,
               probe: Callable[[ServerNode], bool]) -> LocalNode:
    """The node `--node` names among the engine's configured servers, checked before anything is written: on this
    machine, with a recovery command (the configuration's, or --restart-cmd)."""
    if action not in ACTIONS:
        raise UserError(f"--node-action {action!r} is not one of {', '.join(ACTIONS)}", "give kill or stop")
    by_name = {n.name: n for n in nodes}
    if name not in by_name:
        raise UserError(f"--node {name} is not a server of this {engine} configuration (it has: "
                        f"{', '.join(by_name)})", "name one of them, e.g. --node primary")
    node = by_name[name]
    if node.address[0] not in ("127.0.0.1", "localhost", "::1"):
        raise UserError(f"--node {name} is at {node.address[0]}:{node.address[1]}, not on this machine",
                        "bench fault kills a local server by its pid: run it where the node runs")
    cmd = restart_cmd or node.recover_cmd
    if not cmd:
        key = "promote_cmd" if node.role == "primary" else "node_start_cmd"
        raise UserError(f"the {engine} configuration names no command that recovers from losing {name}",
                        f"set backend.{key} (or give --restart-cmd)")
    cmd = cmd.replace("{python}", shlex.quote(sys.executable))
    return LocalNode(node, engine, cmd, lambda: probe(node), action)
