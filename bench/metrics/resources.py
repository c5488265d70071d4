"""Resource sampling during each trial, in a background thread; peak and mean are recorded.

- A server process on this machine (found by pid, or by the port it listens on): RSS and CPU with psutil.
- A server in a Docker container (its port published by Docker): `docker stats`, memory and CPU of the
  container, found with `docker ps --filter publish=PORT`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import psutil

from bench.processes import process_tree

_UNITS = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


@dataclass
class ResourceStats:
    rss_peak_bytes: int | None = None
    rss_mean_bytes: float | None = None
    cpu_mean_pct: float | None = None  # percent of one core, summed over the process tree


class Sampler:
    """Samples a process tree every `interval_s` between start() and stop()."""

    def __init__(self, pid: int | None, interval_s: float = 0.25, more: Sequence[int] = ()):
        self.pid = pid
        self.more = tuple(more)  # further servers of the same engine (read replicas), sampled with it
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
        procs = [p for pid in ((self.pid, *self.more) if self.pid else ()) for p in process_tree(pid)]
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
        cpu = sum(self._cpu) / len(self._cpu) if self._cpu else None
        if not self._rss and self.pid and type(self) is Sampler:
            # A trial shorter than one interval: one RSS reading at its end rather than none (no CPU figure,
            # which needs an interval).
            rss = 0
            for p in process_tree(self.pid):
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    continue
            if rss:
                return ResourceStats(rss, float(rss), None)
        if not self._rss:
            return ResourceStats()
        return ResourceStats(max(self._rss), sum(self._rss) / len(self._rss), cpu)


def parse_docker_size(text: str) -> int | None:
    """'123.4MiB' -> bytes (docker stats' MemUsage, before the slash)."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kKmMgGtT]?i?[bB])\s*", text)
    if not m:
        return None
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_docker_stats(line: str) -> tuple[int, float] | None:
    """One line of `docker stats --no-stream --format '{{json .}}'` -> (memory bytes, CPU percent)."""
    try:
        d = json.loads(line)
        mem = parse_docker_size(str(d["MemUsage"]).split("/")[0])
        cpu = float(str(d["CPUPerc"]).rstrip("%"))
    except (ValueError, KeyError, TypeError):
        return None
    return (mem, cpu) if mem is not None else None


def _docker(*args: str, timeout: float = 5.0) -> str | None:
    if shutil.which("docker") is None:
        return None
    try:
        out = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def container_publishing(port: int) -> str | None:
    """The id of the running container that publishes `port`, or None (no Docker, no daemon, no such container)."""
    out = _docker("ps", "--filter", f"publish={port}", "--format", "{{.ID}}")
    return out.splitlines()[0] if out else None


class DockerSampler(Sampler):
    """Samples a container with `docker stats --no-stream` (each call takes about a second)."""

    def __init__(self, container: str, interval_s: float = 0.5):
        super().__init__(None, interval_s)
        self.container = container

    def _loop(self) -> None:
        while not self._stop.is_set():
            out = _docker("stats", "--no-stream", "--format", "{{json .}}", self.container)
            parsed = parse_docker_stats(out.splitlines()[0]) if out else None
            if parsed:
                self._rss.append(parsed[0])
                self._cpu.append(parsed[1])
            if self._stop.wait(self.interval_s):
                break

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._loop, name="bench-docker-sampler", daemon=True)
        self._thread.start()
        return self


def sampler_for(pid: int | None, port: int | None, more: Sequence[int] = ()) -> Sampler:
    """A sampler of the server: its process when it runs here (and the `more` servers of the same engine, its
    read replicas), its container when Docker publishes its port."""
    if pid is not None:
        try:
            name = psutil.Process(pid).name()
        except psutil.Error:
            name = ""
        if not name.startswith("docker-proxy"):
            return Sampler(pid, more=more)
    if port is not None:
        container = container_publishing(port)
        if container:
            return DockerSampler(container)
    return Sampler(None)
