"""Scale of the dataset layer: generate 1,000,000 x 768 float32 (3 GB) to disk, then stream it into the null backend.

Measures wall time and peak resident memory of this process in each phase: sampled every 20 ms with psutil
(in a thread), and the kernel's high-water mark (`resource.getrusage(...).ru_maxrss`, which only grows, so the
loading row shows the maximum over both phases). The point: neither phase holds the data in memory.

    python benchmarks/dataset_scale.py                  # 1M x 768 in a temporary folder, removed afterwards
    python benchmarks/dataset_scale.py --n 200000 --keep --cache-dir /tmp/bench-cache

Loading right after generating reads from the page cache (the machine has RAM to spare), so the loading rate
is the harness's own ceiling, not the disk's.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import _smoke
import psutil

from bench.backends.base import CollectionSpec
from bench.backends.null import NullBackend
from bench.datasets import DatasetSpec, load

MiB = 1 << 20


class PeakRss:
    """Samples this process's resident set size in a thread; `peak` is the largest seen."""

    def __init__(self, interval_s: float = 0.02):
        self.proc = psutil.Process()
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakRss:
        self.peak = self.proc.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def ru_maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


@contextmanager
def phase(rows: list[dict[str, object]], name: str, count: int, nbytes: int) -> Iterator[Callable[[], None]]:
    with PeakRss() as rss:
        t0 = time.perf_counter()
        yield lambda: None
        seconds = time.perf_counter() - t0
    rows.append({"phase": name, "seconds": seconds, "rows/s": count / seconds, "MiB/s": nbytes / MiB / seconds,
                 "peak RSS sampled": rss.peak, "ru_maxrss": ru_maxrss_bytes()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--queries", type=int, default=1_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--cache-dir", type=Path, default=None, help="default: a temporary folder")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    _smoke.add(ap, n=2_000, dim=16, queries=20, batch=500)
    args = _smoke.parse(ap)

    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    spec = DatasetSpec(n=args.n, queries=args.queries, dim=args.dim, seed=1)
    nbytes = args.n * args.dim * 4
    rows: list[dict[str, object]] = []
    start_rss = psutil.Process().memory_info().rss
    try:
        with phase(rows, "generate to disk", args.n, nbytes):
            ds = load(spec, cache, progress=False)
        folder = Path(ds.paths["folder"])
        on_disk = sum(p.stat().st_size for p in folder.iterdir())

        backend = NullBackend(NullBackend.Options(), str(cache))
        with phase(rows, f"stream into null ({args.batch:,}/batch)", args.n, nbytes):
            ds = load(spec, cache, progress=False)  # from the cache this time
            backend.create(CollectionSpec(name="scale", dim=ds.dim, metric=ds.metric))
            touched = 0.0
            for ids, vectors in ds.batches(args.batch):
                touched += float(vectors[:, 0].sum())  # touch every batch
                backend.insert(ids, vectors)
            built = backend.wait_indexed(60)
        assert built.total_count == args.n, built
    finally:
        if not args.keep:
            shutil.rmtree(cache if args.cache_dir is None else Path(ds.paths["folder"]), ignore_errors=True)

    print(f"dataset: {args.n:,} x {args.dim} float32 = {nbytes / MiB:,.0f} MiB of vectors, {on_disk / MiB:,.0f} MiB "
          f"on disk in {folder}{' (kept)' if args.keep else ' (removed)'}; hash {ds.content_hash}")
    print(f"RSS before: {start_rss / MiB:,.0f} MiB")
    header = f"{'phase':<34}{'seconds':>9}{'rows/s':>12}{'MiB/s':>9}{'peak RSS':>12}{'ru_maxrss':>12}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['phase']:<34}{r['seconds']:>9.1f}{r['rows/s']:>12,.0f}{r['MiB/s']:>9,.0f}"
              f"{r['peak RSS sampled'] / MiB:>9,.0f} MiB{r['ru_maxrss'] / MiB:>9,.0f} MiB")


if __name__ == "__main__":
    main()
