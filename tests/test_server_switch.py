"""The one switch for every server test (tests/backend_options.py): under BENCH_REQUIRE_SERVERS a server that
cannot start or answer fails its test; without it the test is skipped; Qdrant and Weaviate servers, which cannot
run here, skip while no URL names one."""

from __future__ import annotations

import pytest
from backend_options import no_server, server_options, start_private_server


def test_without_the_switch_a_missing_server_skips(monkeypatch):
    monkeypatch.delenv("BENCH_REQUIRE_SERVERS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="pgvector: gone"):
        no_server("pgvector", "gone")


@pytest.mark.parametrize("value", ["1", "pgvector,chroma-server,milvus"])
def test_with_the_switch_a_missing_server_fails(monkeypatch, value):
    monkeypatch.setenv("BENCH_REQUIRE_SERVERS", value)
    with pytest.raises(pytest.fail.Exception, match="pgvector must run"):
        no_server("pgvector", "gone")
    monkeypatch.setenv("BENCH_PGVECTOR_DSN", "postgresql://bench@127.0.0.1:9/bench")  # nothing listens on 9
    with pytest.raises(pytest.fail.Exception, match="no server answers at 127.0.0.1:9"):
        server_options("pgvector")


def test_a_private_server_that_cannot_start_fails_under_the_switch(monkeypatch):
    monkeypatch.setenv("BENCH_REQUIRE_SERVERS", "1")
    with pytest.raises(pytest.fail.Exception, match="private no-such-engine must run"):
        start_private_server("no-such-engine")


@pytest.mark.parametrize("name,var", [("qdrant", "BENCH_QDRANT_URL"), ("weaviate", "BENCH_WEAVIATE_URL")])
def test_servers_that_cannot_run_here_skip_without_a_url_and_fail_with_a_dead_one(monkeypatch, name, var):
    monkeypatch.setenv("BENCH_REQUIRE_SERVERS", "1")
    monkeypatch.delenv(var, raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"{var} is not set"):
        server_options(name)
    monkeypatch.setenv(var, "http://127.0.0.1:9")
    with pytest.raises(pytest.fail.Exception, match=f"{name} must run"):
        server_options(name)
