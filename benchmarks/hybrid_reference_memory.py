"""Memory of the exact hybrid (BM25 + dense) reference (bench.datasets.hybrid.reference) at n records.

The records are the synthetic 768-d set on disk (as `bench run` has them), the texts the hybrid scenario's
synthetic texts. The process's resident set is sampled every 10 ms in a thread while `reference` runs, split into
anonymous pages (the arrays it allocates) and file-backed pages (the base file's pages, where the code maps it);
the figures are the growth over the RSS just before the call. The same script measures any checkout:

    PYTHONPATH=. python benchmarks/hybrid_reference_memory.py --n 100000 --cache-dir /tmp/bench-scale-cache
    PYTHONPATH=/path/to/other/checkout python benchmarks/hybrid_reference_memory.py --n 100000 ...

A checkout whose `reference` takes a `Rows` source is given the dataset's rows (read block by block, as the
hybrid scenario gives them); an older one the memory-mapped base array.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import _smoke
import numpy as np

MiB = 1 << 20


def _status() -> tuple[int, int]:
    anon = file = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                anon = int(line.split()[1]) * 1024
            elif line.startswith("RssFile:"):
                file = int(line.split()[1]) * 1024
    return anon, file


class Peak:
    def __init__(self) -> None:
        self.anon, self.file = _status()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            a, f = _status()
            self.anon, self.file = max(self.anon, a), max(self.file, f)
            self._stop.wait(0.01)

    def __enter__(self) -> Peak:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=256)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--cache-dir", type=Path, help="where the dataset is generated and kept (required)")
    _smoke.add(ap, n=1_000, queries=8, dim=16, candidates=10, cache_dir=_smoke.temp_dir)
    args = _smoke.parse(ap)
    if args.cache_dir is None:
        ap.error("--cache-dir is required")

    from bench.datasets import DatasetSpec, hybrid, load, texts
    from bench.datasets.rows import Rows

    ds = load(DatasetSpec(n=args.n, queries=args.queries, dim=args.dim, seed=7), args.cache_dir, progress=False)
    docs, qtexts = texts.generate(ds.base, ds.queries, texts.TextParams(), seed=7)
    idx = hybrid.build_bm25(docs)
    streamed = "Rows" in str(hybrid.reference.__annotations__.get("base", ""))
    base: np.ndarray | Rows = ds.base_rows if streamed else np.asarray(ds.base)
    anon0, file0 = _status()
    t0 = time.perf_counter()
    with Peak() as peak:
        ref = hybrid.reference(base, ds.queries, ds.metric, idx, qtexts, 10, args.candidates, "rrf", None, None)
    seconds = time.perf_counter() - t0
    print(f"hybrid reference, n={args.n:,} x {args.dim} ({args.n * args.dim * 4 / MiB:,.0f} MiB float32 on disk), "
          f"{args.queries} queries, candidates {args.candidates}, rrf; base given as "
          f"{'Rows (read block by block)' if streamed else 'np.memmap'}")
    print(f"  {seconds:.1f} s; RSS growth while it ran: anonymous {(peak.anon - anon0) / MiB:,.0f} MiB, "
          f"file-backed {(peak.file - file0) / MiB:,.0f} MiB; fused[0] = {ref.fused[0].tolist()}")


if __name__ == "__main__":
    main()
