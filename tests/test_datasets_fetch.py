"""Resumable fetch against a local threaded HTTP server with Range support (127.0.0.1 only)."""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
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
from bench.datasets.fetch import VDBB_LABEL_FILES, datasets_dir
from bench.errors import UserError


@dataclass
class ServerState:
    files: dict[str, bytes]
    ranges: bool = True  # honour Range requests
    cuts: list[int] = field(default_factory=list)  # per response, in order: bytes sent before the connection drops
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    content_type: str = "application/octet-stream"
    announce: int | None = None  # a Content-Length other than the body's (a server that lies about the size)
    trickle: tuple[int, float] | None = None  # send (bytes, every seconds) instead of all at once ...
    trickle_for_s: float = 20.0  # ... for at most this long, then drop the connection


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
        self.send_header("Content-Length", str(st.announce if st.announce is not None else len(body) - start))
        self.send_header("Content-Type", st.content_type)
        self.end_headers()
        payload = body[start:]
        if st.trickle:
            self._trickle(payload, *st.trickle, st.trickle_for_s)
            return
        if st.cuts:
            self.wfile.write(payload[: st.cuts.pop(0)])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(payload)

    def _trickle(self, payload: bytes, step: int, every_s: float, for_s: float) -> None:
        end = time.monotonic() + for_s
        try:
            for i in range(0, len(payload), step):
                if time.monotonic() > end:
                    break
                self.wfile.write(payload[i:i + step])
                self.wfile.flush()
                time.sleep(every_s)
        except OSError:
            pass  # the client gave up
        self.close_connection = True

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


def h5_body(path: Path, nbytes: int, seed: int = 0) -> bytes:
    """A real HDF5 file of about `nbytes` (one float32 dataset of random values): fetch keeps only whole files of
    the catalog's format, so the bodies served must be HDF5."""
    rows = max(1, nbytes // 512)
    with h5py.File(path, "w") as f:
        f.create_dataset("train", data=np.random.default_rng(seed).random((rows, 128), dtype=np.float32))
    return path.read_bytes()


FAST = {"progress": False, "timeout": 10.0, "retry_wait": 0.01}


def test_cut_connection_is_resumed_with_a_range_request(tmp_path: Path) -> None:
    body = h5_body(tmp_path / "src.h5", 3 << 20, 1)
    with serve_files({"/f.hdf5": body}, cuts=[1_000_000]) as (url, st):
        folder = fetch("sift-128-euclidean", tmp_path, url_override=url + "/f.hdf5", **FAST)
    got = folder / "sift-128-euclidean.hdf5"
    assert got.read_bytes() == body
    assert st.requests == [("/f.hdf5", None), ("/f.hdf5", "bytes=1000000-")]
    assert not list(folder.glob("*.part"))
    assert '"sha256": "' + hashlib.sha256(body).hexdigest() in (folder / "source.json").read_text()


def test_resume_in_a_later_call_continues_the_part_file(tmp_path: Path) -> None:
    body = h5_body(tmp_path / "src.h5", 2 << 20, 2)
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
    body = h5_body(tmp_path / "src.h5", 1 << 20, 3)
    with serve_files({"/f": body}, ranges=False, cuts=[300_000]) as (url, st):
        fetch("nytimes-256-angular", tmp_path, url_override=url + "/f", **FAST)
    assert (tmp_path / "nytimes-256-angular" / "nytimes-256-angular.hdf5").read_bytes() == body
    assert len(st.requests) == 2


def test_checksum_and_size_mismatch_are_user_errors(tmp_path: Path) -> None:
    body = h5_body(tmp_path / "src.h5", 100_000, 4)
    good = hashlib.sha256(body).hexdigest()
    with serve_files({"/f": body}) as (url, _):
        with pytest.raises(UserError, match=f"has sha256 {good}, not the expected {'0' * 64}; the file was removed"):
            fetch("glove-100-angular", tmp_path, url_override=url + "/f", sha256="0" * 64, **FAST)
        folder = tmp_path / "glove-100-angular"
        assert not list(folder.glob("*.hdf5*"))  # neither the file nor a .part is left
        with pytest.raises(UserError, match=f"offers .* with {len(body):,} bytes but 99,999 were expected"):
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
    labels = [f"/cohere/{f}" for f in VDBB_LABEL_FILES]  # optional: asked for, not served, skipped
    assert sorted(p for p, _ in st.requests) == sorted([*files, *labels])
    ds = load(DatasetSpec(source="cohere-768-100k", n=200, queries=5, ground_truth="file"), cache, progress=False)
    assert ds.metric == "cosine" and np.array_equal(ds.ground_truth(10), nb)


# -- nothing bad is kept, nothing hangs -------------------------------------------------------------------------

def _nothing_kept(folder: Path) -> None:
    left = [p.name for p in folder.iterdir() if p.name != "source.json"] if folder.exists() else []
    assert left == [], left


def test_an_error_page_is_never_stored_as_the_dataset(tmp_path: Path) -> None:
    page = b"<!DOCTYPE html><html><body>Service temporarily unavailable</body></html>" * 20
    folder = tmp_path / "sift-128-euclidean"
    with serve_files({"/f": page}, content_type="text/html; charset=utf-8") as (url, _):
        with pytest.raises(UserError, match=r"answered .* with an HTML page \(Content-Type text/html\)"):
            fetch("sift-128-euclidean", tmp_path, url_override=url + "/f", **FAST)
    _nothing_kept(folder)
    with serve_files({"/f": page}) as (url, _):  # the same page sent as a binary type: the contents give it away
        with pytest.raises(UserError, match="was not kept: it is an HTML page"):
            fetch("sift-128-euclidean", tmp_path, url_override=url + "/f", **FAST)
    _nothing_kept(folder)


def test_a_body_longer_than_announced_is_not_kept(tmp_path: Path) -> None:
    """The server announces 1 KB (Content-Length) and sends a 10 MB file: the first KB is not the dataset."""
    body = h5_body(tmp_path / "src.h5", 10 << 20, 5)
    folder = tmp_path / "glove-100-angular"
    with serve_files({"/f": body}, announce=1024) as (url, _):
        with pytest.raises(UserError, match=f"HDF5 file is cut short: it records {len(body):,} bytes but has 1,024"):
            fetch("glove-100-angular", tmp_path, url_override=url + "/f", **FAST)
    _nothing_kept(folder)
    with serve_files({"/f": b"\0" * 1024}) as (url, _):  # something that is not HDF5 at all
        with pytest.raises(UserError, match="not an HDF5 file"):
            fetch("glove-100-angular", tmp_path, url_override=url + "/f", **FAST)
    _nothing_kept(folder)


def test_another_url_replaces_a_file_from_the_first_and_a_damaged_file_is_fetched_again(tmp_path: Path) -> None:
    a, b = h5_body(tmp_path / "a.h5", 50_000, 6), h5_body(tmp_path / "b.h5", 60_000, 7)
    final = tmp_path / "nytimes-256-angular" / "nytimes-256-angular.hdf5"
    with serve_files({"/a": a, "/b": b}) as (url, st):
        fetch("nytimes-256-angular", tmp_path, url_override=url + "/a", **FAST)
        assert final.read_bytes() == a
        fetch("nytimes-256-angular", tmp_path, url_override=url + "/a", **FAST)  # same address: kept
        assert len(st.requests) == 1
        fetch("nytimes-256-angular", tmp_path, url_override=url + "/b", **FAST)  # another address: fetched
        assert final.read_bytes() == b
        final.write_bytes(b[: len(b) // 2])  # damaged in the cache (a disk, an older bench)
        fetch("nytimes-256-angular", tmp_path, url_override=url + "/b", **FAST)
        assert final.read_bytes() == b and len(st.requests) == 3
        # a .part left by a download from another address is not continued with this one's bytes
        part = final.with_name(final.name + ".part")
        final.unlink()
        part.write_bytes(a[:20_000])
        fetch("nytimes-256-angular", tmp_path, url_override=url + "/b", **FAST)
        assert final.read_bytes() == b and st.requests[-1] == ("/b", None)
    assert sorted(p.name for p in final.parent.iterdir()) == ["nytimes-256-angular.hdf5", "source.json"]


def test_a_trickling_server_is_a_stall_not_a_hang(tmp_path: Path) -> None:
    """One byte every 0.2 s never trips a socket timeout; less than 16 KiB in --stall-timeout is a stall."""
    body = h5_body(tmp_path / "src.h5", 1 << 20, 8)
    t0 = time.monotonic()
    with serve_files({"/f": body}, trickle=(1, 0.2), trickle_for_s=20) as (url, _):
        with pytest.raises(UserError, match=r"failed after 2 tries in a row \(stalled: \d+ bytes in the last 1 s\)"):
            fetch("sift-128-euclidean", tmp_path, url_override=url + "/f", progress=False, timeout=1.0,
                  retries=1, retry_wait=0.01)
    assert time.monotonic() - t0 < 8


def test_the_deadline_bounds_a_slow_download_and_the_part_is_continued(tmp_path: Path) -> None:
    body = h5_body(tmp_path / "src.h5", 4 << 20, 9)
    part = tmp_path / "sift-128-euclidean" / "sift-128-euclidean.hdf5.part"
    t0 = time.monotonic()
    with serve_files({"/f": body}, trickle=(64 << 10, 0.1), trickle_for_s=20) as (url, st):  # ~640 KiB/s
        with pytest.raises(UserError, match=r"did not finish within the deadline of 1.5 s; [\d,]+ bytes are kept"):
            fetch("sift-128-euclidean", tmp_path, url_override=url + "/f", deadline=1.5, **FAST)
        assert time.monotonic() - t0 < 5
        kept = part.stat().st_size
        assert 0 < kept < len(body)
        st.trickle = None
        fetch("sift-128-euclidean", tmp_path, url_override=url + "/f", **FAST)
    assert st.requests[-1] == ("/f", f"bytes={kept}-")  # continued where the deadline stopped it
    assert (tmp_path / "sift-128-euclidean" / "sift-128-euclidean.hdf5").read_bytes() == body


def test_retries_are_shown_as_they_happen(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = h5_body(tmp_path / "src.h5", 200_000, 10)
    with serve_files({"/f": body}, cuts=[0, 0]) as (url, _):
        fetch("sift-128-euclidean", tmp_path, url_override=url + "/f", **FAST)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    assert lines[0] == (f"fetch sift-128-euclidean.hdf5: attempt 1 of 6 failed (connection closed after 0 of "
                        f"{len(body):,} bytes); waiting 0.01 s")
    assert lines[1].startswith("fetch sift-128-euclidean.hdf5: attempt 2 of 6 failed (")


def test_a_name_that_does_not_resolve_fails_at_once_in_one_sentence(tmp_path: Path, monkeypatch, capsys) -> None:
    """No network: the old fetch was silent for 33 s, then failed after six tries. Through the real CLI."""
    import socket as socket_mod

    from bench.cli import main

    def no_dns(host, *args, **kw):
        raise socket_mod.gaierror(socket_mod.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket_mod, "getaddrinfo", no_dns)
    monkeypatch.setattr("sys.argv", ["bench", "datasets", "fetch", "sift-128-euclidean", "--dest", str(tmp_path),
                                     "--quiet"])
    t0 = time.monotonic()
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2 and time.monotonic() - t0 < 3
    err = capsys.readouterr().err.strip()
    assert err == ("error: The host name 'ann-benchmarks.com' of http://ann-benchmarks.com/sift-128-euclidean.hdf5 "
                   "does not resolve (Name or service not known): there is no network or the name is wrong; check "
                   "the network, or pass --url with a reachable mirror.")
    _nothing_kept(tmp_path / "sift-128-euclidean")


def test_a_file_of_a_set_fetched_before_a_failure_is_not_fetched_again(tmp_path: Path) -> None:
    files = {}
    for name in ("shuffle_train", "test"):
        pq.write_table(pa.table({"id": np.arange(10)}), tmp_path / f"{name}.parquet")
        files[f"/c/{name}.parquet"] = (tmp_path / f"{name}.parquet").read_bytes()
    with serve_files(files) as (url, st):  # neighbors.parquet is missing: the fetch fails on the third file
        with pytest.raises(UserError, match="answered 404"):
            fetch("cohere-768-100k", tmp_path, url_override=url + "/c/", **FAST)
        st.files["/c/neighbors.parquet"] = files["/c/test.parquet"]
        fetch("cohere-768-100k", tmp_path, url_override=url + "/c/", **FAST)
    assert [p for p, _ in st.requests] == ["/c/shuffle_train.parquet", "/c/test.parquet", "/c/neighbors.parquet",
                                          "/c/neighbors.parquet", *(f"/c/{f}" for f in VDBB_LABEL_FILES)]
