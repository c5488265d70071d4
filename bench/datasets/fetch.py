"""A catalog of public datasets and a resumable downloader.

`fetch(name, dest_dir)` downloads the files of a catalog set into `dest_dir/name/`: each into a `.part` file
that a later call continues with an HTTP Range request where it stopped (a cut connection is retried at once,
from where it stopped), shown with a rich progress bar, then verified (the expected size and sha256 where known,
the size the server announced, and the format: an HDF5 file whose superblock's end-of-file fits, a parquet file
with its footer) and only then renamed into place atomically; a file that fails is removed, never kept. An HTML
error page is refused when its headers arrive. A name that does not resolve fails at once; a stalled transfer
(less than 16 KiB in the stall timeout) is retried; the whole fetch has a deadline; every retry is reported as
one line. Once fetched into `<cache_dir>/datasets`, a spec with `source = NAME` loads it.

Published addresses:
- ann-benchmarks (Aumüller, Bernhardsson, Faithfull): http://ann-benchmarks.com/NAME.hdf5, HDF5 with 'train',
  'test', 'neighbors' (100 per query), 'distances' and the attribute 'distance'.
- VectorDBBench (Zilliz): https://assets.zilliz.com/benchmark/<folder>/ with shuffle_train.parquet (id, emb; the
  10M and 5M sets in ten shuffle_train-NN-of-10.parquet parts), test.parquet (id, emb: the queries) and
  neighbors.parquet (id, neighbors_id: the top 100); the folder names follow VectorDBBench's dataset.py
  (<name>_<small|medium|large>_<size>), and the sets of its int-filter cases carry their filtered ground truth.
Sizes are approximate (shown, not checked) unless `size`/`sha256` are given; no checksums are published.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import __version__
from bench.datasets import _progress
from bench.datasets._io import ensure_dir, write_json_atomic
from bench.datasets.filtered import LABEL_PERCENTAGES, LABELS_FILE, label_ground_truth_file
from bench.errors import UserError

CHUNK = 1 << 20


class NotPublished(UserError):
    """The server has no such file (404): an optional file of a set is then skipped, a required one fails."""


@dataclass(frozen=True)
class RemoteFile:
    name: str
    url: str
    size: int | None = None  # exact bytes, checked when known
    sha256: str | None = None
    required: bool = True  # False: fetched too, but a set without it still loads (filtered ground truth)


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


# VectorDBBench's int-filter cases ("Filter 1%" / "Filter 99%": id >= int(n * rate)) publish their ground truth
# beside the set: neighbors_head_1p.parquet for rate 0.01 (keeps 99%), neighbors_tail_1p.parquet for 0.99 (keeps 1%)
VDBB_FILTER_GT = ("neighbors_head_1p.parquet", "neighbors_tail_1p.parquet")
# Its label-filter cases (LabelFilterPerformanceCase) read scalar_labels.parquet (id, labels) and publish one ground
# truth per label percentage, neighbors_labels_label_1p.parquet and so on (backend/filter.py's LabelFilter)
VDBB_LABEL_FILES = (LABELS_FILE, *(label_ground_truth_file(p) for p in LABEL_PERCENTAGES))


def _vdb(name: str, folder: str, dim: int, base: int, approx_mb: int, what: str, *, parts: int = 1,
         filtered: bool = False) -> CatalogEntry:
    """A VectorDBBench folder, as its dataset.py names it: <name>_<small|medium|large>_<size>/ holding
    shuffle_train.parquet (or shuffle_train-NN-of-PP.parquet when split), test.parquet (the queries) and
    neighbors.parquet (the top 100 of each, by id); the sets of the filtered cases also their filtered ground truth,
    and every Cohere and OpenAI set (VectorDBBench's with_scalar_labels) its labels and their ground truth."""
    root = f"https://assets.zilliz.com/benchmark/{folder}/"
    train = (["shuffle_train.parquet"] if parts == 1
             else [f"shuffle_train-{i:02d}-of-{parts}.parquet" for i in range(parts)])
    files = tuple(RemoteFile(f, root + f) for f in (*train, "test.parquet", "neighbors.parquet"))
    if filtered:
        files += tuple(RemoteFile(f, root + f, required=False) for f in VDBB_FILTER_GT)
    files += tuple(RemoteFile(f, root + f, required=False) for f in VDBB_LABEL_FILES)  # Cohere, OpenAI: all sizes
    return CatalogEntry(name, "parquet", dim, "cosine", base, None, approx_mb << 20, files, "VectorDBBench", what)


CATALOG: dict[str, CatalogEntry] = {e.name: e for e in (
    _ann("sift-128-euclidean", 128, "l2", 1_000_000, 10_000, 501, "SIFT image descriptors (TEXMEX)"),
    _ann("glove-100-angular", 100, "cosine", 1_183_514, 10_000, 463, "GloVe word vectors, Twitter"),
    _ann("gist-960-euclidean", 960, "l2", 1_000_000, 1_000, 3_600, "GIST image descriptors (TEXMEX)"),
    _ann("fashion-mnist-784-euclidean", 784, "l2", 60_000, 10_000, 217, "Fashion-MNIST images, raw pixels"),
    _ann("nytimes-256-angular", 256, "cosine", 290_000, 10_000, 301, "New York Times bag of words, projected"),
    _vdb("cohere-768-100k", "cohere_small_100k", 768, 100_000, 310, "Cohere wikipedia-22-12 embeddings, 100K"),
    _vdb("cohere-768-1m", "cohere_medium_1m", 768, 1_000_000, 3_100, "Cohere wikipedia-22-12 embeddings, 1M",
         filtered=True),
    _vdb("cohere-768-10m", "cohere_large_10m", 768, 10_000_000, 31_000, "Cohere wikipedia-22-12 embeddings, 10M",
         parts=10, filtered=True),
    _vdb("openai-1536-50k", "openai_small_50k", 1536, 50_000, 310, "OpenAI ada-002 embeddings of C4, 50K"),
    _vdb("openai-1536-500k", "openai_medium_500k", 1536, 500_000, 3_100, "OpenAI ada-002 embeddings of C4, 500K",
         filtered=True),
    _vdb("openai-1536-5m", "openai_large_5m", 1536, 5_000_000, 31_000, "OpenAI ada-002 embeddings of C4, 5M",
         parts=10, filtered=True),
)}


def get_entry(name: str) -> CatalogEntry:
    if name not in CATALOG:
        raise UserError(f"Unknown dataset '{name}'", f"choose one of: {', '.join(CATALOG)}")
    return CATALOG[name]


def datasets_dir(cache_dir: Path) -> Path:
    """Where fetched sets live inside a cache folder."""
    return Path(cache_dir) / "datasets"


def is_complete(entry: CatalogEntry, folder: Path) -> bool:
    return all((folder / f.name).is_file() for f in entry.files if f.required)


DEFAULT_STALL_S = 60.0  # a download that gets less than STALL_BYTES in this long is stalled (and retried)
DEFAULT_DEADLINE_S = 3 * 3600.0  # the whole fetch; the .part file is kept, so running again continues
STALL_BYTES = 16 << 10
RESOLVE_TIMEOUT_S = 10.0


def _say_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class _Limits:
    """How long a fetch may take and how it reports retries."""

    stall_s: float = DEFAULT_STALL_S
    deadline_s: float = DEFAULT_DEADLINE_S
    retries: int = 5
    retry_wait: float = 1.0
    say: Callable[[str], None] = _say_stderr
    ends_at: float = field(default=0.0, init=False)

    def start(self) -> _Limits:
        if not (self.stall_s > 0 and self.deadline_s > 0):
            raise UserError(f"--stall-timeout {self.stall_s:g} and --deadline {self.deadline_s:g} must be positive",
                            "give a number of seconds above 0")
        self.ends_at = time.monotonic() + self.deadline_s
        return self

    def remaining(self) -> float:
        return self.ends_at - time.monotonic()


def fetch(name: str, dest_dir: Path, progress: bool = True, url_override: str | None = None, *,
          sha256: str | None = None, size: int | None = None, timeout: float = DEFAULT_STALL_S, retries: int = 5,
          retry_wait: float = 1.0, deadline: float = DEFAULT_DEADLINE_S,
          say: Callable[[str], None] | None = None) -> Path:
    """Download catalog set `name` into `dest_dir/name/` and return that folder.

    `url_override` replaces the published address: the file's URL for a one-file set, the folder URL (file
    names appended) for a parquet set. `sha256` / `size` add checks for a one-file set. A file is published
    (renamed from its `.part`) only once its size, checksum and format (HDF5 or parquet, whole) are verified;
    one that fails is removed. A file already fetched from the same address is kept; a `.part` of the same
    address is continued. `timeout` is the stall timeout (less than 16 KiB in that many seconds: retried),
    `deadline` bounds the whole fetch. A failed attempt is retried up to `retries` times in a row (the count
    starts again whenever data arrives), waiting `retry_wait` x 2^attempt seconds (30 s at most); each retry
    is reported through `say` (default: a line on stderr).
    """
    entry = get_entry(name)
    if (sha256 or size) and len(entry.files) != 1:
        raise UserError(f"'{name}' has {len(entry.files)} files, so one --sha256/--size cannot check them",
                        "leave the checks out for this set")
    limits = _Limits(timeout, deadline, retries, retry_wait, say or _say_stderr).start()
    folder = ensure_dir(Path(dest_dir) / name)
    before = _read_record(folder)
    record: dict[str, Any] = {"name": name, "origin": entry.origin, "files": {}}
    for f in entry.files:
        url = f.url
        if url_override:
            url = url_override if len(entry.files) == 1 else url_override.rstrip("/") + "/" + f.name
        one = len(entry.files) == 1
        want = _Want(entry.kind, (size or f.size) if one else f.size, (sha256 or f.sha256) if one else f.sha256)
        final = folder / f.name
        digest = _kept(final, url, want, before.get(f.name))
        if digest is None:
            final.unlink(missing_ok=True)  # not what is asked for (another address, size, checksum or damaged)
            try:
                digest = download(url, final, size=want.size, sha256=want.sha256, progress=progress,
                                  kind=entry.kind, limits=limits)
            except NotPublished:
                if f.required:
                    raise
                limits.say(f"{f.name}: not published at {url} (optional, skipped)")
                continue
        record["files"][f.name] = {"url": url, "bytes": final.stat().st_size, "sha256": digest}
        # after every file, so a later failure does not make the next fetch download this one again
        write_json_atomic(folder / "source.json", {**record, "files": {**before, **record["files"]}})
    return folder


@dataclass(frozen=True)
class _Want:
    kind: str
    size: int | None
    sha256: str | None


def _read_record(folder: Path) -> dict[str, dict]:
    try:
        return dict(json.loads((folder / "source.json").read_text()).get("files") or {})
    except (OSError, ValueError, AttributeError):
        return {}


def _kept(final: Path, url: str, want: _Want, recorded: dict | None) -> str | None:
    """The sha256 of an already fetched file that is what is asked for, else None (fetch it again): from the same
    address, of the expected size and checksum, and whole in its format."""
    if not final.is_file() or (recorded or {}).get("url") != url:
        return None
    if want.size is not None and final.stat().st_size != want.size:
        return None
    if _format_problem(final, want.kind) is not None:
        return None
    digest = _sha256_of(final) if want.sha256 else recorded.get("sha256") if recorded else None
    if want.sha256 and digest != want.sha256.lower():
        return None
    return digest or _sha256_of(final)


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK * 8):
            h.update(chunk)
    return h.hexdigest()


# -- what a downloaded file must look like before it is published ------------------------------------------------

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
PARQUET_MAGIC = b"PAR1"


def _format_problem(path: Path, kind: str) -> str | None:
    """Why `path` is not a whole file of `kind` ("hdf5" or "parquet"), or None. An error page, a file cut short
    and a file of another format are all caught here, before the file is published into the cache."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(2048)
        if head.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
            return "it is an HTML page, not a data file"
        if kind == "parquet":
            f.seek(max(0, size - 8))
            tail = f.read(8)
            if head[:4] != PARQUET_MAGIC or tail[4:] != PARQUET_MAGIC:
                return "it is not a parquet file (no PAR1 at its start and end)"
            if int.from_bytes(tail[:4], "little") + 12 > size:
                return "the parquet file is cut short (its footer is longer than the file)"
            return None
        for at in (0, *(512 << i for i in range(12))):  # the superblock is at 0, or after a user block of 2^n bytes
            if at + len(HDF5_SIGNATURE) > size:
                break
            f.seek(at)
            block = f.read(64)
            if block.startswith(HDF5_SIGNATURE):
                return _superblock_problem(block, size)
    return "it is not an HDF5 file (no HDF5 signature at its start)"


def _superblock_problem(block: bytes, size: int) -> str | None:
    """Check that the end-of-file address an HDF5 superblock records fits in the file (a download cut short, or a
    body shorter than the file it belongs to, fails here)."""
    version = block[8]
    if version in (0, 1):
        offsets, base_at = block[13], 24 if version == 0 else 28
    elif version in (2, 3):
        offsets, base_at = block[9], 12
    else:
        return f"its HDF5 superblock has an unknown version {version}"
    if offsets not in (2, 4, 8):
        return f"its HDF5 superblock gives an impossible address size {offsets}"
    eof_at = base_at + 2 * offsets  # base address, then the free-space (v0/1) or extension (v2/3) address
    end = int.from_bytes(block[eof_at:eof_at + offsets], "little")  # the HDF5 library counts a user block in
    if end > size:
        return f"the HDF5 file is cut short: it records {end:,} bytes but has {size:,}"
    return None


# -- the download ---------------------------------------------------------------------------------------------

class _Retry(Exception):
    """A failure worth another attempt (a cut connection, a stall, a server error); the message says which."""


_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def download(url: str, final: Path, *, size: int | None = None, sha256: str | None = None, progress: bool = True,
             kind: str | None = None, limits: _Limits | None = None, timeout: float = DEFAULT_STALL_S,
             retries: int = 5, retry_wait: float = 1.0) -> str:
    """Resumable download of `url` to `final` through `final.part`; verified (size, sha256 and, with `kind`, the
    format) before it is renamed to `final`; returns the file's sha256. A failed check removes the part."""
    limits = limits or _Limits(timeout, DEFAULT_DEADLINE_S, retries, retry_wait).start()
    part = final.with_name(final.name + ".part")
    _check_part_origin(part, url)
    try:
        _resolve(url)
        total = _attempts(url, part, size, progress, limits)
        problem = _verify(part, size, sha256, kind, total)
        if problem is not None:
            _discard(part)
            raise UserError(f"The download of {url} was not kept: {problem}",
                            "check the address (--url); if it is right, the file on the server has changed")
        digest = _sha256_of(part)
        os.replace(part, final)
        return digest
    finally:
        if not part.exists():  # published or discarded: its note goes too
            _origin_note(part).unlink(missing_ok=True)


def _attempts(url: str, part: Path, size: int | None, progress: bool, limits: _Limits) -> int | None:
    """Request until the part is whole; returns the file's total size when known."""
    total, failures = size, 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        if total is not None and have > total:
            _discard(part)
            have = 0
        if total is not None and have == total and have > 0:
            return total
        try:
            return _get(url, part, have, total, size, progress, limits)
        except _Retry as e:
            why = str(e)
        now = part.stat().st_size if part.exists() else 0
        failures = 0 if now - have >= STALL_BYTES else failures + 1
        if failures > limits.retries:
            raise UserError(f"Downloading {url} failed after {failures} tries in a row ({why}); {now:,} bytes are "
                            f"kept in {part}", "run the same command again to continue") from None
        wait = min(30.0, limits.retry_wait * 2 ** (failures - 1)) if failures else 0.0
        if limits.remaining() <= wait:
            _deadline_passed(url, part, limits)
        if failures:
            limits.say(f"fetch {part.name[:-5]}: attempt {failures} of {limits.retries + 1} failed ({why}); "
                       f"waiting {wait:.3g} s")
        else:
            limits.say(f"fetch {part.name[:-5]}: the transfer broke off ({why}); continuing at once from byte "
                       f"{now:,}")
        time.sleep(wait)


def _deadline_passed(url: str, part: Path, limits: _Limits) -> None:
    have = part.stat().st_size if part.exists() else 0
    raise UserError(f"Downloading {url} did not finish within the deadline of {limits.deadline_s:g} s; {have:,} "
                    f"bytes are kept in {part}", "run the same command again to continue, or raise --deadline")


def _verify(part: Path, size: int | None, sha256: str | None, kind: str | None, total: int | None) -> str | None:
    got = part.stat().st_size if part.exists() else 0
    if size is not None and got != size:
        return f"it has {got:,} bytes but {size:,} were expected"
    if total is not None and got != total:
        return f"it has {got:,} bytes but the server announced {total:,}"
    if got == 0:
        return "it is empty"
    if kind is not None:
        problem = _format_problem(part, kind)
        if problem is not None:
            return problem
    if sha256:
        digest = _sha256_of(part)
        if digest.lower() != sha256.lower():
            return f"it has sha256 {digest}, not the expected {sha256.lower()}; the file was removed"
    return None


def _origin_note(part: Path) -> Path:
    return part.with_name(part.name + ".url")


def _check_part_origin(part: Path, url: str) -> None:
    """A `.part` is continued only from the address it came from; one from another address is dropped."""
    note = _origin_note(part)
    if part.exists():
        try:
            same = note.read_text() == url
        except OSError:
            same = False
        if not same:
            part.unlink()
    ensure_dir(part.parent)
    note.write_text(url)


def _discard(part: Path) -> None:
    part.unlink(missing_ok=True)


def _resolve(url: str) -> None:
    """Fail at once, in one sentence, when the host name does not resolve (no network, or a wrong name): no
    retries, no long silence. The lookup runs in a thread so a hanging resolver cannot block past its timeout."""
    host = urllib.parse.urlsplit(url).hostname
    if not host:
        raise UserError(f"'{url}' is not a download address", "give an http:// or https:// URL")
    result: list[BaseException | None] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, None)
            result.append(None)
        except (OSError, UnicodeError) as e:
            result.append(e)

    t = threading.Thread(target=lookup, name="bench-fetch-resolve", daemon=True)
    t.start()
    t.join(RESOLVE_TIMEOUT_S)
    if not result:
        raise UserError(f"The host name '{host}' of {url} did not resolve within {RESOLVE_TIMEOUT_S:g} s",
                        "check the network, or pass --url with a reachable mirror")
    if result[0] is not None:
        why = getattr(result[0], "strerror", None) or result[0]
        raise UserError(f"The host name '{host}' of {url} does not resolve ({why}): there is no network or the name "
                        "is wrong", "check the network, or pass --url with a reachable mirror")


def _get(url: str, part: Path, have: int, total: int | None, size: int | None, progress: bool,
         limits: _Limits) -> int | None:
    """One request: append to (or restart) `part`; returns the file's total size when the server tells it."""
    headers = {"User-Agent": f"bench/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    timeout = min(limits.stall_s, max(limits.remaining(), 0.001))
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
            mode, have, total = _accept(resp, url, part, have, total, size)
            with open(part, mode) as f, _progress.bar(f"fetching {part.name[:-5]}", total, progress, bytes_=True,
                                                      completed=have) as advance:
                _copy(resp, f, advance, url, part, limits, size if size is not None else total)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left after `have`: the part is whole (verified afterwards)
            return total
        if e.code == 404:
            raise NotPublished(f"Downloading {url} failed: the server answered 404 {e.reason}",
                               "check the address, or pass --url with a mirror") from None
        if e.code < 500 and e.code not in (408, 429):
            raise UserError(f"Downloading {url} failed: the server answered {e.code} {e.reason}",
                            "check the address, or pass --url with a mirror") from None
        raise _Retry(f"the server answered {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, socket.gaierror):
            _resolve(url)  # the name stopped resolving: say so in one sentence
        raise _Retry(str(getattr(e, "reason", e))) from None
    except TimeoutError:
        raise _Retry(f"no data for {timeout:g} s") from None
    except (http.client.HTTPException, ConnectionError, OSError) as e:
        raise _Retry(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__) from None
    got = part.stat().st_size
    if total is not None and got < total:
        raise _Retry(f"connection closed after {got:,} of {total:,} bytes")
    return total


def _accept(resp: Any, url: str, part: Path, have: int, total: int | None,
            size: int | None) -> tuple[str, int, int | None]:
    """Check a response before any of its bytes are written: (file mode, bytes kept, total size)."""
    ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if ctype == "text/html":
        _discard(part)
        raise UserError(f"The server answered {url} with an HTML page (Content-Type {ctype}), not a data file",
                        "check the address; a mirror's download link may need another form (--url)")
    mode = "ab"
    if have and resp.status == 206:
        m = _RANGE.match(resp.headers.get("Content-Range", ""))
        if not m or int(m.group(1)) != have:  # an answer we cannot append to: start again
            _discard(part)
            raise _Retry("the server answered another range than the one asked")
        if m.group(3) != "*":
            total = int(m.group(3))
    else:  # 200: the whole file (a server without Range support): start again
        mode, have = "wb", 0
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else total
    if size is not None and total is not None and total != size:
        raise UserError(f"The server offers {url} with {total:,} bytes but {size:,} were expected",
                        "check the address; the file on the server may have changed")
    return mode, have, total


def _copy(resp: Any, f: Any, advance: Callable[[int], None], url: str, part: Path, limits: _Limits,
          limit: int | None) -> None:
    """Copy the body to `f` as it arrives, within the deadline; less than STALL_BYTES in `stall_s` is a stall."""
    window_start, window_bytes, written = time.monotonic(), 0, f.tell()
    while True:
        remaining = limits.remaining()
        if remaining <= 0:
            f.flush()
            _deadline_passed(url, part, limits)
        _read_timeout(resp, min(limits.stall_s, remaining))
        chunk = resp.read1(CHUNK)
        if not chunk:
            return
        written += len(chunk)
        if limit is not None and written > limit:
            f.close()
            _discard(part)
            raise UserError(f"The server sent more of {url} than the {limit:,} bytes expected; nothing was kept",
                            "check the address; the file on the server may have changed")
        f.write(chunk)
        advance(len(chunk))
        window_bytes += len(chunk)
        if time.monotonic() - window_start >= limits.stall_s:
            if window_bytes < STALL_BYTES:
                raise _Retry(f"stalled: {window_bytes:,} bytes in the last {limits.stall_s:g} s")
            window_start, window_bytes = time.monotonic(), 0


def _read_timeout(resp: Any, seconds: float) -> None:
    """Bound the next socket read (the stall timeout, or what is left of the deadline if that is less)."""
    sock = getattr(getattr(resp.fp, "raw", None), "_sock", None) if resp.fp is not None else None
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))
