"""The options each backend's conformance test runs with, or why it is skipped.

`BACKEND_OPTIONS[name]()` returns the options dict for `cls.Options`, or a string: the reason the backend
cannot be tested here (server not configured or not answering). Server addresses come from the same
environment variables the adapters read, so a test run can point at other servers. Start the local ones with
`python scripts/services.py up`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from urllib.parse import urlparse


def _reachable(url: str, default_port: int) -> str | None:
    """None when something accepts a TCP connection at the URL's host and port within 1 s, else why not."""
    u = urlparse(url if "://" in url else f"tcp://{url}")
    host, port = u.hostname or "127.0.0.1", u.port or default_port
    try:
        with socket.create_connection((host, port), timeout=1):
            return None
    except OSError as e:
        return f"no server answers at {host}:{port} ({e.strerror or e}); start it with `python scripts/services.py up`"


def _pgvector() -> dict | str:
    dsn = os.environ.get("BENCH_PGVECTOR_DSN", "postgresql://bench@127.0.0.1:5432/bench")
    return _reachable(dsn, 5432) or {"dsn": dsn}


def _chroma_server() -> dict | str:
    url = os.environ.get("BENCH_CHROMA_URL", "http://127.0.0.1:8000")
    # A running Chroma server applies ef_search when it loads an index, so the collection is made with the
    # value the conformance searches use (EF in tests/test_conformance.py; see bench/backends/chroma.py).
    return _reachable(url, 8000) or {"url": url, "ef_search": 128}


def _milvus() -> dict | str:
    uri = os.environ.get("BENCH_MILVUS_URI", "http://127.0.0.1:19530")
    # Strong: the conformance suite reads back its own deletes, and Milvus 2.3.5 answers a delete with timestamp 0,
    # so pymilvus cannot advance a Session past it (its own inserts and upserts Session does show)
    return _reachable(uri, 19530) or {"uri": uri, "consistency_level": "Strong"}


def _only_with_env(var: str, default_port: int, engine: str) -> dict | str:
    """Servers this machine cannot run (no Qdrant or Weaviate binary installs from the registries here): tested
    live only when the env var points at one."""
    url = os.environ.get(var)
    if not url:
        return f"{var} is not set; set it to a running {engine} server's URL to test it live"
    return _reachable(url, default_port) or {"url": url}


BACKEND_OPTIONS: dict[str, Callable[[], dict | str]] = {
    "faiss": lambda: {},
    "qdrant-edge": lambda: {},
    "chroma": lambda: {},
    "chroma-server": _chroma_server,
    "pgvector": _pgvector,
    "milvus": _milvus,
    "milvus-lite": lambda: {},  # a .db folder in the test's workdir
    "qdrant": lambda: _only_with_env("BENCH_QDRANT_URL", 6333, "Qdrant"),
    # qdrant-client's local mode: checks the qdrant adapter's logic; a brute-force stand-in, never a Qdrant figure
    "qdrant-local": lambda: {},
    "weaviate": lambda: _only_with_env("BENCH_WEAVIATE_URL", 8080, "Weaviate"),
}
