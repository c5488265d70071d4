"""Resumable fetch against a local threaded HTTP server with Range support (127.0.0.1 only)."""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.datasets import DatasetSpec, exact_topk, fetch, load
from bench.datasets.fetch import datasets_dir
from bench.errors import UserError


@dataclass
class ServerState:
    files: dict[str, bytes]
    ranges: bool = True  # honour Range requests
    cuts: list[int] = field(default_factory=list)  # per response, in order: bytes sent before the connection drops
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        st: ServerState = self.server.state  # type: ignore[attr-defined]
        rng = self.headers.get("Range")
        st.requests.append((self.path, rng))
        body = st.files.get(self.path)
        if body is None:
            self.send_error(404, "not found")
            return
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and st.ranges:
            start = int(m.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        if st.cuts:
            self.wfile.write(payload[: st.cuts.pop(0)])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serve_files(files: dict[str, bytes], **kw: object) -> Iterator[tuple[str, ServerState]]:
    """A threaded HTTP server on 127.0.0.1 serving `files` (path -> bytes); yields (base URL, state)."""
    state = ServerState(files, **kw)  # type: ignore[arg-type]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def tiny_hdf5(path: Path, n: int = 600, nq: int = 20, dim: int = 128) -> bytes:
    rng = np.random.default_rng(5)
    train = rng.integers(0, 120, (n, dim)).astype(np.float32)
    test = rng.integers(0, 120, (nq, dim)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset("train", data=train)
        f.create_dataset("test", data=test)
        f.create_dataset("neighbors", data=exact_topk(train, test, 10, "l2").astype(np.int32))
        f.attrs["distance"] = "euclidean"
    return path.read_bytes()


FAST = {"progress": False, "timeout": 10.0, "retry_wait": 0.01}


def test_cut_connection_is_resumed_with_a_range_request(tmp_path: Path) -> None:
    body = np.random.default_rng(1).bytes(3 << 20)
    with serve_files({"/f.hdf5": body}, cuts=[1_000_000]) as (url, st):
        folder = fetch("sift-128-euclidean", tmp_path, url_override=url + "/f.hdf5", **FAST)
    got = folder / "sift-128-euclidean.hdf5"
    assert got.read_bytes() == body
    assert st.requests == [("/f.hdf5", None), ("/f.hdf5", "bytes=1000000-")]
    assert not list(folder.glob("*.part"))
    assert '"sha256": "' + hashlib.sha256(body).hexdigest() in (folder / "source.json").read_text()


def test_resume_in_a_later_call_continues_the_part_file(tmp_path: Path) -> None:
    body = np.random.default_rng(2).bytes(2 << 20)
    # The first response is cut after 700,000 bytes (progress: no failure counted), the next two carry nothing.
    with serve_files({"/f.hdf5": body}, cuts=[700_000, 0, 0]) as (url, st):
        with pytest.raises(UserError, match="failed after 2 tries in a row.*700,000 bytes are kept") as e:
            fetch("sift-128-euclidean", tmp_path, url_override=url + "/f.hdf5", retries=1, **FAST)
        assert "run the same command again to continue" in str(e.value)
        part = tmp_path / "sift-128-euclidean" / "sift-128-euclidean.hdf5.part"
        assert part.stat().st_size == 700_000
        fetch("sift-128-euclidean", tmp_path, url_override=url + "/f.hdf5", **FAST)
    assert (tmp_path / "sift-128-euclidean" / "sift-128-euclidean.hdf5").read_bytes() == body
    assert [r for _, r in st.requests] == [None] + ["bytes=700000-"] * 3


def test_server_without_range_support_restarts_and_still_completes(tmp_path: Path) -> None:
    body = np.random.default_rng(3).bytes(1 << 20)
    with serve_files({"/f": body}, ranges=False, cuts=[300_000]) as (url, st):
        fetch("nytimes-256-angular", tmp_path, url_override=url + "/f", **FAST)
    assert (tmp_path / "nytimes-256-angular" / "nytimes-256-angular.hdf5").read_bytes() == body
    assert len(st.requests) == 2


def test_checksum_and_size_mismatch_are_user_errors(tmp_path: Path) -> None:
    body = b"x" * 100_000
    good = hashlib.sha256(body).hexdigest()
    with serve_files({"/f": body}) as (url, _):
        with pytest.raises(UserError, match=f"has sha256 {good}, not the expected {'0' * 64}; the file was removed"):
            fetch("glove-100-angular", tmp_path, url_override=url + "/f", sha256="0" * 64, **FAST)
        folder = tmp_path / "glove-100-angular"
        assert not list(folder.glob("*.hdf5*"))  # neither the file nor a .part is left
        with pytest.raises(UserError, match="offers .* with 100,000 bytes but 99,999 were expected"):
            fetch("glove-100-angular", tmp_path, url_override=url + "/f", size=99_999, **FAST)
        fetch("glove-100-angular", tmp_path, url_override=url + "/f", sha256=good.upper(), **FAST)
        assert (folder / "glove-100-angular.hdf5").read_bytes() == body
        with pytest.raises(UserError, match="answered 404"):
            fetch("fashion-mnist-784-euclidean", tmp_path, url_override=url + "/missing", **FAST)
    with pytest.raises(UserError, match="Unknown dataset 'nope'"):
        fetch("nope", tmp_path)


def test_a_fetched_set_loads_by_its_catalog_name(tmp_path: Path) -> None:
    body = tiny_hdf5(tmp_path / "src.hdf5")
    cache = tmp_path / "cache"
    with serve_files({"/sift.hdf5": body}, cuts=[len(body) // 3]) as (url, _):
        fetch("sift-128-euclidean", datasets_dir(cache), url_override=url + "/sift.hdf5", **FAST)
    ds = load(DatasetSpec(source="sift-128-euclidean", n=600, queries=20), cache, progress=False)
    assert ds.name == "sift-128-euclidean" and ds.dim == 128 and ds.metric == "l2"
    assert ds.describe()["published_neighbors"] is True
    assert np.array_equal(ds.ground_truth(10, progress=False), ds.published_ground_truth(10))


def test_parquet_catalog_set_fetches_its_three_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    train, test = rng.standard_normal((200, 768)).astype(np.float32), rng.standard_normal((5, 768)).astype(np.float32)
    files = {}
    for name, ids, vecs in (("shuffle_train", np.arange(200), train), ("test", np.arange(5), test)):
        pq.write_table(pa.table({"id": ids, "emb": pa.array(list(vecs), type=pa.list_(pa.float32()))}),
                       tmp_path / f"{name}.parquet")
        files[f"/cohere/{name}.parquet"] = (tmp_path / f"{name}.parquet").read_bytes()
    nb = exact_topk(train, test, 10, "cosine")
    pq.write_table(pa.table({"id": np.arange(5), "neighbors_id": pa.array([list(r) for r in nb])}),
                   tmp_path / "neighbors.parquet")
    files["/cohere/neighbors.parquet"] = (tmp_path / "neighbors.parquet").read_bytes()
    cache = tmp_path / "cache"
    with serve_files(files) as (url, st):
        fetch("cohere-768-100k", datasets_dir(cache), url_override=url + "/cohere/", **FAST)
    assert sorted(p for p, _ in st.requests) == sorted(files)
    ds = load(DatasetSpec(source="cohere-768-100k", n=200, queries=5, ground_truth="file"), cache, progress=False)
    assert ds.metric == "cosine" and np.array_equal(ds.ground_truth(10), nb)
