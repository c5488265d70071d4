"""The host's own load during a trial: load average, CPU steal, and the cores that processes other than the
harness (with its workers) and the engine's server took. A trial measured while something else was busy is
flagged (`host_busy`) and warned about, so a reader can tell the engine's noise from the machine's."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import psutil

from bench.processes import process_tree

BUSY_CORES = 0.5  # other processes using at least half a core on average disturb a measurement


def _tree_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) of a process and its children; 0 when it is gone."""
    if pid is None:
        return 0.0
    total = 0.0
    for q in process_tree(pid):
        try:
            c = q.cpu_times()
            total += c.user + c.system
        except psutil.Error:
            continue
    return total


def _busy(t: psutil._common.scputimes) -> float:
    idle = t.idle + getattr(t, "iowait", 0.0)
    return sum(t) - idle - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)


@dataclass
class HostSampler:
    """Start before a trial, stop after: the host's figures over that window."""

    server_pid: int | None = None
    more_pids: tuple[int, ...] = ()  # further servers of the engine (read replicas): the engine's, not "other"

    def _servers(self) -> float:
        return _tree_cpu(self.server_pid) + sum(_tree_cpu(p) for p in self.more_pids)

    def start(self) -> HostSampler:
        self.t0 = time.perf_counter()
        self.cpu0 = psutil.cpu_times()
        self.own0 = _tree_cpu(os.getpid())
        self.server0 = self._servers()
        return self

    def stop(self) -> dict[str, float | bool | None]:
        dt = max(time.perf_counter() - self.t0, 1e-9)
        cpu1 = psutil.cpu_times()
        busy = _busy(cpu1) - _busy(self.cpu0)
        ours = (_tree_cpu(os.getpid()) - self.own0) + (self._servers() - self.server0)
        other = max(0.0, busy - ours) / dt
        total = sum(cpu1) - sum(self.cpu0)
        steal = getattr(cpu1, "steal", None)
        steal_pct = (100.0 * (steal - self.cpu0.steal) / total) if steal is not None and total > 0 else None
        return {"host_load1": os.getloadavg()[0], "host_other_cores": other, "host_steal_pct": steal_pct,
                "host_busy": other >= BUSY_CORES or (steal_pct is not None and steal_pct >= 5.0)}
