"""Small network helpers shared by the server adapters (Milvus, Qdrant, Weaviate)."""

from __future__ import annotations

import os
import socket
from functools import cache
from urllib.parse import urlsplit

from bench.errors import ServerUnreachable


def host_port(url: str, default_port: int) -> tuple[str, int]:
    """(host, port) of a URL such as `http://127.0.0.1:19530`, `https://h`, or a bare `host:port`."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    host = parts.hostname or "127.0.0.1"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if parts.scheme == "https" and default_port in (80, 443) else default_port
    return host, port


def tcp_reachable(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """True when something accepts a TCP connection on host:port within `timeout_s`."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def unreachable(backend: str, host: str, port: int, service: str, detail: str = "") -> ServerUnreachable:
    """The ServerUnreachable a server adapter raises: one sentence naming backend and address, with the fix."""
    extra = f" ({detail})" if detail else ""
    return ServerUnreachable(f"The {backend} server at {host}:{port} does not answer{extra}",
                             start_hint(service))


# The servers scripts/services.py installs and runs without Docker (bench.services); the others need compose.
LOCAL_SERVICES = ("pgvector", "chroma", "milvus")


@cache
def docker_daemon_answers() -> bool:
    """True when a Docker daemon accepts a connection on its socket ($DOCKER_HOST: unix:// or tcp://; else
    /var/run/docker.sock). A connect, no request: cheap enough for every hint."""
    url = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        if url.startswith("unix://"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                s.connect(url.removeprefix("unix://"))
            return True
        host, port = host_port(url, 2375)
        return tcp_reachable(host, port, 0.5)
    except OSError:
        return False


def start_hint(service: str) -> str:
    """How to start a compose `service` on this machine: `docker compose up -d NAME` when a Docker daemon
    answers; else `python scripts/services.py up NAME` for the servers it runs without Docker."""
    if docker_daemon_answers() or service not in LOCAL_SERVICES:
        extra = "" if docker_daemon_answers() else " (it needs a Docker daemon; none answers here)"
        return f"start it with `docker compose up -d {service}`{extra}"
    return f"start it with `python scripts/services.py up {service}` (no Docker daemon answers here)"
