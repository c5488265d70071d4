"""Which server process a trial measured: a local server's pid and start time (psutil), read before and after
each trial. A server that restarted between two trials (a cold cache, empty memory figures) or during one (the
trial measured two servers) must not pass unseen."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import psutil

from bench.processes import pid_on_port


@dataclass(frozen=True)
class ServerIdentity:
    pid: int
    started: float  # the process's start time, seconds since the epoch

    def text(self) -> str:
        when = datetime.fromtimestamp(self.started, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return f"pid {self.pid} started {when}"


def identify(pid: int | None, port: int | None) -> ServerIdentity | None:
    """The server now: the process listening on `port` (else `pid`), or None when bench cannot see it (a remote
    server, a container it cannot look into)."""
    now = pid_on_port(port) if port else None
    for candidate in (now, pid):
        if candidate is None:
            continue
        try:
            return ServerIdentity(candidate, psutil.Process(candidate).create_time())
        except psutil.Error:
            continue
    return None
