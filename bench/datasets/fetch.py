"""A catalog of public datasets and a resumable downloader.

`fetch(name, dest_dir)` downloads the files of a catalog set into `dest_dir/name/`: each into a `.part` file
that a later call continues with an HTTP Range request where it stopped (a cut connection is retried at once,
from where it stopped), shown with a rich progress bar, checked against the expected size and sha256 where
known, then renamed into place atomically. Once fetched into `<cache_dir>/datasets`, a spec with
`source = NAME` loads it.

Published addresses:
- ann-benchmarks (Aumüller, Bernhardsson, Faithfull): http://ann-benchmarks.com/NAME.hdf5, HDF5 with 'train',
  'test', 'neighbors' (100 per query), 'distances' and the attribute 'distance'.
- VectorDBBench (Zilliz): https://assets.zilliz.com/benchmark/<folder>/ with shuffle_train.parquet (id, emb),
  test.parquet (id, emb) and neighbors.parquet (id, neighbors_id); the folder names follow VectorDBBench's
  dataset.py (<name>_<small|medium>_<size>).
Sizes are approximate (shown, not checked) unless `size`/`sha256` are given; no checksums are published.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench import __version__
from bench.datasets import _progress
from bench.datasets._io import ensure_dir
from bench.errors import UserError

CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    name: str
    url: str
    size: int | None = None  # exact bytes, checked when known
    sha256: str | None = None


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    kind: str  # "hdf5" (one ann-benchmarks file) or "parquet" (a VectorDBBench folder)
    dim: int
    metric: str  # bench's name: cosine, l2, ip
    base: int
    queries: int | None
    approx_bytes: int
    files: tuple[RemoteFile, ...]
    origin: str
    description: str

    def local_path(self, folder: Path) -> Path:
        """What a spec with source = NAME loads: the .hdf5 file or the parquet folder."""
        return folder / self.files[0].name if self.kind == "hdf5" else folder


def _ann(name: str, dim: int, metric: str, base: int, queries: int, approx_mb: int, what: str) -> CatalogEntry:
    f = RemoteFile(f"{name}.hdf5", f"http://ann-benchmarks.com/{name}.hdf5")
    return CatalogEntry(name, "hdf5", dim, metric, base, queries, approx_mb << 20, (f,), "ann-benchmarks", what)


def _vdb(name: str, folder: str, dim: int, base: int, approx_mb: int, what: str) -> CatalogEntry:
    root = f"https://assets.zilliz.com/benchmark/{folder}/"
    files = tuple(RemoteFile(f, root + f) for f in ("shuffle_train.parquet", "test.parquet", "neighbors.parquet"))
    return CatalogEntry(name, "parquet", dim, "cosine", base, None, approx_mb << 20, files, "VectorDBBench", what)


CATALOG: dict[str, CatalogEntry] = {e.name: e for e in (
    _ann("sift-128-euclidean", 128, "l2", 1_000_000, 10_000, 501, "SIFT image descriptors (TEXMEX)"),
    _ann("glove-100-angular", 100, "cosine", 1_183_514, 10_000, 463, "GloVe word vectors, Twitter"),
    _ann("gist-960-euclidean", 960, "l2", 1_000_000, 1_000, 3_600, "GIST image descriptors (TEXMEX)"),
    _ann("fashion-mnist-784-euclidean", 784, "l2", 60_000, 10_000, 217, "Fashion-MNIST images, raw pixels"),
    _ann("nytimes-256-angular", 256, "cosine", 290_000, 10_000, 301, "New York Times bag of words, projected"),
    _vdb("cohere-768-100k", "cohere_small_100k", 768, 100_000, 310, "Cohere wikipedia-22-12 embeddings, 100K"),
    _vdb("cohere-768-1m", "cohere_medium_1m", 768, 1_000_000, 3_100, "Cohere wikipedia-22-12 embeddings, 1M"),
    _vdb("openai-1536-50k", "openai_small_50k", 1536, 50_000, 310, "OpenAI ada-002 embeddings of C4, 50K"),
    _vdb("openai-1536-500k", "openai_medium_500k", 1536, 500_000, 3_100, "OpenAI ada-002 embeddings of C4, 500K"),
)}


def get_entry(name: str) -> CatalogEntry:
    if name not in CATALOG:
        raise UserError(f"Unknown dataset '{name}'", f"choose one of: {', '.join(CATALOG)}")
    return CATALOG[name]


def datasets_dir(cache_dir: Path) -> Path:
    """Where fetched sets live inside a cache folder."""
    return Path(cache_dir) / "datasets"


def is_complete(entry: CatalogEntry, folder: Path) -> bool:
    return all((folder / f.name).is_file() for f in entry.files)


def fetch(name: str, dest_dir: Path, progress: bool = True, url_override: str | None = None, *,
          sha256: str | None = None, size: int | None = None, timeout: float = 60.0, retries: int = 5,
          retry_wait: float = 1.0) -> Path:
    """Download catalog set `name` into `dest_dir/name/` and return that folder.

    `url_override` replaces the published address: the file's URL for a one-file set, the folder URL (file
    names appended) for a parquet set. `sha256` / `size` add checks for a one-file set. Files already complete
    are kept; a `.part` file is continued. A cut connection is retried up to `retries` times in a row (the
    count starts again whenever bytes arrive), waiting `retry_wait` x 2^attempt seconds (30 s at most).
    """
    entry = get_entry(name)
    if (sha256 or size) and len(entry.files) != 1:
        raise UserError(f"'{name}' has {len(entry.files)} files, so one --sha256/--size cannot check them",
                        "leave the checks out for this set")
    folder = ensure_dir(Path(dest_dir) / name)
    record: dict[str, object] = {"name": name, "origin": entry.origin, "files": {}}
    for f in entry.files:
        url = f.url
        if url_override:
            url = url_override if len(entry.files) == 1 else url_override.rstrip("/") + "/" + f.name
        want_sha = (sha256 or f.sha256) if len(entry.files) == 1 else f.sha256
        want_size = (size or f.size) if len(entry.files) == 1 else f.size
        final = folder / f.name
        digest = _sha256_of(final) if final.is_file() and want_sha else None
        if final.is_file() and (want_size is None or final.stat().st_size == want_size) and (
                not want_sha or digest == want_sha.lower()):
            pass  # already fetched and as expected
        else:
            if final.is_file():
                final.unlink()  # it does not match what is asked: fetch it again
            digest = download(url, final, size=want_size, sha256=want_sha, progress=progress, timeout=timeout,
                              retries=retries, retry_wait=retry_wait)
        record["files"][f.name] = {"url": url, "bytes": final.stat().st_size, "sha256": digest}  # type: ignore[index]
    (folder / "source.json").write_text(json.dumps(record, indent=2))
    return folder


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK * 8):
            h.update(chunk)
    return h.hexdigest()


class _Incomplete(Exception):
    """The server closed the connection before the whole file arrived (retried from where it stopped)."""


_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def download(url: str, final: Path, *, size: int | None = None, sha256: str | None = None, progress: bool = True,
             timeout: float = 60.0, retries: int = 5, retry_wait: float = 1.0) -> str:
    """Resumable download of `url` to `final` through `final.part`; returns the file's sha256."""
    part = final.with_name(final.name + ".part")
    total = size
    failures = 0
    last_error: Exception | None = None
    while True:
        have = part.stat().st_size if part.exists() else 0
        if total is not None and have > total:
            part.unlink()
            have = 0
        if total is not None and have == total and have > 0:
            break
        headers = {"User-Agent": f"bench/{__version__}"}
        if have:
            headers["Range"] = f"bytes={have}-"
        before = have
        try:
            total = _get(url, part, have, headers, total, size, progress, timeout)
            break
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # nothing left after `have`: the part is whole (checked below)
                break
            if e.code < 500 and e.code not in (408, 429):
                raise UserError(f"Downloading {url} failed: the server answered {e.code} {e.reason}",
                                "check the address, or pass --url with a mirror") from None
            last_error = e
        except (_Incomplete, urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as e:
            last_error = e
        now = part.stat().st_size if part.exists() else 0
        failures = 0 if now > before else failures + 1
        if failures > retries:
            reason = getattr(last_error, "reason", None) or last_error
            raise UserError(f"Downloading {url} failed after {failures} tries in a row ({reason}); "
                            f"{now:,} bytes are kept in {part}", "run the same command again to continue")
        if failures:
            time.sleep(min(30.0, retry_wait * 2 ** (failures - 1)))
    got = part.stat().st_size if part.exists() else 0
    if size is not None and got != size:
        part.unlink(missing_ok=True)
        raise UserError(f"The download of {url} has {got:,} bytes but {size:,} were expected",
                        "run the command again; if it repeats, the file on the server has changed")
    digest = _sha256_of(part)
    if sha256 and digest.lower() != sha256.lower():
        part.unlink(missing_ok=True)
        raise UserError(f"The download of {url} has sha256 {digest}, not the expected {sha256.lower()}; the file "
                        "was removed", "run the command again; if it repeats, the file on the server has changed")
    os.replace(part, final)
    return digest


def _get(url: str, part: Path, have: int, headers: dict[str, str], total: int | None, size: int | None,
         progress: bool, timeout: float) -> int | None:
    """One request: append to (or restart) `part`; returns the file's total size when the server tells it."""
    req = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        mode = "ab"
        if have and resp.status == 206:
            m = _RANGE.match(resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != have:  # an answer we cannot append to: start again
                part.unlink(missing_ok=True)
                raise _Incomplete("the server answered another range than the one asked")
            if m.group(3) != "*":
                total = int(m.group(3))
        else:  # 200: the whole file (a server without Range support): start again
            mode, have = "wb", 0
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else total
        if size is not None and total is not None and total != size:
            raise UserError(f"The server offers {url} with {total:,} bytes but {size:,} were expected",
                            "check the address; the file on the server may have changed")
        with open(part, mode) as f, _progress.bar(f"fetching {part.name[:-5]}", total, progress, bytes_=True,
                                                  completed=have) as advance:
            while chunk := resp.read(CHUNK):
                f.write(chunk)
                advance(len(chunk))
    got = part.stat().st_size
    if total is not None and got < total:
        raise _Incomplete(f"connection closed after {got:,} of {total:,} bytes")
    return total
