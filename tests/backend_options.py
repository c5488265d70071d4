"""The options each backend's tests run with, or why they cannot run; the one switch for every server test.

`BACKEND_OPTIONS[name]()` returns the options dict for `cls.Options`, or a string: the reason the backend
cannot be tested here (server not configured or not answering). Server addresses come from the same
environment variables the adapters read, so a test run can point at other servers. Start the local ones with
`python scripts/services.py up`.

Every test that needs a server goes through `server_options(name)` (a shared server) or the `private_server`
fixture of tests/conftest.py (one it starts and stops), and both end in `no_server`: with BENCH_REQUIRE_SERVERS
set (scripts/test.sh sets it, so CI does), a server that cannot start or answer FAILS the test; without it, the
test is skipped with the reason. Qdrant and Weaviate servers cannot run here: their tests skip with the reason
while no URL names one (BENCH_QDRANT_URL, BENCH_WEAVIATE_URL), switch or not.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import NoReturn
from urllib.parse import urlparse

import pytest

SWITCH = "BENCH_REQUIRE_SERVERS"
# Servers no registry installs here: live only against the URL the variable names.
ONLY_WITH_URL = {"qdrant": "BENCH_QDRANT_URL", "weaviate": "BENCH_WEAVIATE_URL"}


def servers_required() -> bool:
    """The switch: set (to anything but "" or "0"), a server that cannot start or answer fails its test."""
    return os.environ.get(SWITCH, "").strip() not in ("", "0")


def no_server(name: str, reason: str) -> NoReturn:
    """End a test whose server `name` cannot start or answer: a failure under the switch, else a skip."""
    url_var = ONLY_WITH_URL.get(name)
    if servers_required() and not (url_var and not os.environ.get(url_var)):
        pytest.fail(f"{name} must run ({SWITCH} is set) but cannot: {reason}")
    pytest.skip(f"{name}: {reason}")


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


def server_options(name: str) -> dict:
    """The options of the shared `name` server, or the test ends through `no_server`."""
    opts = BACKEND_OPTIONS[name]()
    if isinstance(opts, str):
        no_server(name, opts)
    return opts


def start_private_server(kind: str):
    """A private server of `kind` on its own ports (bench.faults.servers.PrivateServer, for tests that kill,
    freeze or restart it), or the test ends through `no_server`. The caller stops it (or uses the
    `private_server` fixture of tests/conftest.py, which does)."""
    from bench.faults.servers import PrivateServer

    try:
        return PrivateServer.start_new(kind)
    except Exception as e:  # noqa: BLE001 - whatever stops it starting ends the test the one way
        no_server(f"private {kind}", f"{type(e).__name__}: {e}")
