"""Chroma specifics: how ef_search is applied (Chroma has no per-query ef), what is read back from the
collection configuration, and the errors of an unreachable server. The embedded tests need only chromadb;
the chroma-server ones a server (`python scripts/services.py up chroma`)."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from backend_options import server_options

from bench.backends.base import CollectionSpec, IndexSpec, SearchParams
from bench.errors import ServerUnreachable, UserError

pytest.importorskip("chromadb")
from bench.backends._net import start_hint
from bench.backends.chroma import (
    ChromaBackend,
    ChromaOptions,
    ChromaServerBackend,
    ChromaServerOptions,
)

# A small, poorly connected graph (M=4, ef_construction=16) on spread-out data, so ef_search visibly matters.
N, DIM, K = 3000, 24, 10
HARD = CollectionSpec("chroma_ef", DIM, "l2", IndexSpec(m=4, ef_construction=16))


def _hard_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, DIM)).astype(np.float32)
    q = rng.standard_normal((60, DIM)).astype(np.float32)
    d = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return x, q, np.argsort(d, axis=1)[:, :K]


def _recall(backend, q: np.ndarray, truth: np.ndarray, ef: int | None) -> float:
    found = [backend.search(v, K, SearchParams(ef_search=ef)) for v in q]
    return float(np.mean([len(set(f) & set(t.tolist())) / K for f, t in zip(found, truth, strict=True)]))


@pytest.fixture
def embedded(tmp_path):
    b = ChromaBackend(ChromaOptions(), str(tmp_path))
    b.connect()
    yield b
    b.drop()
    b.close()


def test_embedded_ef_search_change_reaches_the_engine(embedded: ChromaBackend) -> None:
    x, q, truth = _hard_data()
    embedded.create(HARD)
    embedded.insert(np.arange(N), x)
    built = embedded.wait_indexed(60)
    assert built.kind == "hnsw" and built.params["m"] == 4 and built.params["ef_construction"] == 16
    assert built.params["space"] == "l2" and built.total_count == N
    low = _recall(embedded, q, truth, ef=10)
    assert embedded.info().extra["ef_search"] == 10
    assert embedded._stored_hnsw()["ef_search"] == 10
    high = _recall(embedded, q, truth, ef=400)
    assert embedded.info().extra["ef_search"] == 400
    assert high >= low + 0.05, f"ef_search 10 -> 400 should raise recall, got {low:.3f} -> {high:.3f}"
    again = _recall(embedded, q, truth, ef=10)
    assert again < high - 0.05, "going back to a small ef_search is applied too"
    assert embedded.info().extra["ef_search_changes"] == [10, 400, 10]


def test_embedded_flat_request_is_a_substitution(embedded: ChromaBackend) -> None:
    with pytest.raises(UserError, match="quantization 'int8'"):  # never built unquantized in silence
        embedded.create(CollectionSpec("chroma_q", 8, "cosine", IndexSpec(kind="flat", quantization="int8")))
    embedded.create(CollectionSpec("chroma_flat", 8, "cosine", IndexSpec(kind="flat")))
    embedded.insert(np.arange(50), np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32))
    built = embedded.wait_indexed(10)
    assert built.kind == "hnsw"
    assert any("builds only HNSW" in s for s in built.substitutions)


def test_embedded_info_and_capabilities(embedded: ChromaBackend) -> None:
    assert ChromaBackend.capabilities.in_process and not ChromaBackend.capabilities.server
    embedded.create(CollectionSpec("chroma_info", 4, "ip"))
    embedded.insert(np.arange(3), np.eye(3, 4, dtype=np.float32), [{"a": 1}, None, {"a": 2}])
    info = embedded.info()
    assert info.client_version and info.index_size_bytes and info.index_size_bytes > 0
    assert embedded.get(0).payload == {"a": 1} and embedded.get(1).payload is None


def test_bad_metric_is_a_user_error(embedded: ChromaBackend) -> None:
    with pytest.raises(UserError, match="metric 'hamming'"):
        embedded.create(CollectionSpec("chroma_bad", 4, "hamming"))


# -- chroma-server ------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_a_user_error_with_the_compose_hint(tmp_path) -> None:
    port = _free_port()
    opts = ChromaServerOptions(url=f"http://127.0.0.1:{port}")
    reason = ChromaServerBackend.check_available(opts)
    assert reason and f"127.0.0.1:{port}" in reason and start_hint("chroma") in reason
    with pytest.raises(ServerUnreachable) as e:
        ChromaServerBackend(opts, str(tmp_path)).connect()
    assert f"127.0.0.1:{port}" in str(e.value) and start_hint("chroma") in str(e.value)


def test_bad_url_is_a_user_error(tmp_path) -> None:
    with pytest.raises(UserError, match="not an http"):
        ChromaServerBackend(ChromaServerOptions(url="ftp://127.0.0.1:8000"), str(tmp_path)).connect()


def test_server_refuses_an_ef_search_it_cannot_apply(tmp_path) -> None:
    opts = ChromaServerOptions.model_validate({**server_options("chroma-server"), "ef_search": 48})
    b = ChromaServerBackend(opts, str(tmp_path))
    b.connect()
    try:
        x = np.random.default_rng(3).standard_normal((200, 8)).astype(np.float32)
        b.create(CollectionSpec("chroma_srv_ef", 8, "l2"))
        b.insert(np.arange(200), x)
        built = b.wait_indexed(30)
        assert built.params["ef_search"] == 48, "the collection is created with the configured ef_search"
        assert b.search(x[3], 5, SearchParams(ef_search=48))[0] == 3
        assert b.search(x[4], 5, SearchParams())[0] == 4
        with pytest.raises(UserError, match=r"cannot change ef_search to 64.*--set backend.ef_search=64"):
            b.search(x[3], 5, SearchParams(ef_search=64))
        info = b.info()
        assert info.server_address == ChromaServerBackend._address(opts.url)[:2]
        assert info.server_version.startswith("chroma server ")
    finally:
        b.drop()
        b.close()
