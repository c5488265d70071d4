"""Provenance: harness version and git commit, host (CPU, cores, memory, kernel, OS), Python."""

from __future__ import annotations

import platform
import subprocess
from functools import cache
from pathlib import Path

import psutil

from bench import __version__

REPO = Path(__file__).resolve().parents[2]


@cache
def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@cache
def host() -> dict[str, object]:
    os_name = platform.platform()
    try:
        rel = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
        os_name = rel.get("PRETTY_NAME", os_name).strip('"')
    except OSError:
        pass
    return {
        "host_cpu": cpu_model(),
        "host_cores": psutil.cpu_count(logical=True) or 0,
        "host_mem_bytes": int(psutil.virtual_memory().total),
        "host_kernel": platform.release(),
        "host_os": os_name,
        "python_version": platform.python_version(),
    }


def provenance() -> dict[str, object]:
    return {"harness_version": __version__, "git_commit": git_commit(), **host()}
