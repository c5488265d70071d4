"""Resource sampling with psutil: a server process on this machine (found by pid, or by the port it listens
on) is sampled for RSS and CPU in a background thread during each trial; peak and mean are recorded."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import psutil


def pid_listening_on(port: int) -> int | None:
    try:
        for c in psutil.net_connections(kind="inet"):
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
                return c.pid
    except (psutil.AccessDenied, OSError):
        return None
    return None


def _tree(pid: int) -> list[psutil.Process]:
    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.Error:
        return []


@dataclass
class ResourceStats:
    rss_peak_bytes: int | None = None
    rss_mean_bytes: float | None = None
    cpu_mean_pct: float | None = None  # percent of one core, summed over the process tree


class Sampler:
    """Samples a process tree every `interval_s` between start() and stop()."""

    def __init__(self, pid: int | None, interval_s: float = 0.25):
        self.pid = pid
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._rss: list[int] = []
        self._cpu: list[float] = []
        self._thread: threading.Thread | None = None

    def _sample_once(self, procs: list[psutil.Process]) -> None:
        rss, cpu = 0, 0.0
        for p in procs:
            try:
                rss += p.memory_info().rss
                cpu += p.cpu_percent(None)
            except psutil.Error:
                continue
        if rss:
            self._rss.append(rss)
            self._cpu.append(cpu)

    def _loop(self) -> None:
        procs = _tree(self.pid) if self.pid else []
        for p in procs:
            try:
                p.cpu_percent(None)  # prime the CPU counters
            except psutil.Error:
                pass
        while not self._stop.wait(self.interval_s):
            self._sample_once(procs)

    def start(self) -> Sampler:
        if self.pid:
            self._thread = threading.Thread(target=self._loop, name="bench-resource-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> ResourceStats:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if not self._rss:
            return ResourceStats()
        return ResourceStats(max(self._rss), sum(self._rss) / len(self._rss), sum(self._cpu) / len(self._cpu))
