"""Small network helpers shared by the server adapters (Milvus, Qdrant, Weaviate)."""

from __future__ import annotations

import socket
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
                             f"start it with `docker compose up -d {service}`")
